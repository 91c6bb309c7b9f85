"""Helpers for API tests: accounts, organisations and products made through the API.

The test database is shared by the whole session, so every helper makes unique e-mails
and registration ids; nothing here depends on what other tests created. Typical use::

    with TestClient(create_app(settings)) as client:
        admin = admin_headers(client, settings)
        org = make_org(client, admin)
        maker, maker_auth = make_user(
            client, admin, [Role.MANUFACTURER], organization_id=org["id"]
        )
        product = make_product(client, maker_auth)
        tech, tech_auth = make_user(client, admin, [Role.LAB_TECHNICIAN], centre_code="CTTH")
        client.get(f"/api/v1/products/{product['id']}", headers=maker_auth)

Every helper asserts the API answered as expected, with the response body in the message.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

from domain.permissions import Role
from mutabaqa.settings import Settings

API = "/api/v1"
#: The password every user made by ``make_user`` gets unless told otherwise.
PASSWORD = "correct horse battery staple"

Headers = dict[str, str]


def assert_problem(response: Response, status: int, kind: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem answer with ``status`` (and ``kind``, the last part of
    its ``type``); returns the problem body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if kind is not None:
        assert body["type"].endswith(f"/problems/{kind}"), body
    return body


def assert_unauthenticated(response: Response) -> None:
    """Assert a 401 problem with the ``WWW-Authenticate: Bearer`` challenge."""
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def login(client: TestClient, email: str, password: str) -> Headers:
    """Log in with the OAuth2 password form; the ``Authorization`` header to send."""
    response = client.post(f"{API}/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def admin_headers(client: TestClient, settings: Settings) -> Headers:
    """The first admin's (``MUTABAQA_ADMIN_EMAIL``, created at start-up) bearer header."""
    return login(client, settings.admin_email, settings.admin_password.get_secret_value())


def unique_ice() -> str:
    """A fresh 15-digit Moroccan ICE."""
    return f"{uuid.uuid4().int % 10**15:015d}"


def make_org(client: TestClient, admin: Headers, **fields: Any) -> dict[str, Any]:
    """Create a Moroccan organisation (unique ICE); ``fields`` override the defaults.
    Returns the organisation as the API answered it (``id``, ``name``, ...)."""
    body = {
        "name": f"Fabricant {uuid.uuid4().hex[:8]}",
        "name_ar": "مصنع تجريبي",
        "registration_id": unique_ice(),
        "address": "Zone industrielle, Casablanca",
        "country": "MA",
    } | fields
    response = client.post(f"{API}/organizations", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return dict(response.json())


def make_user(
    client: TestClient,
    admin: Headers,
    roles: Iterable[Role | str],
    organization_id: str | None = None,
    centre_code: str | None = None,
    *,
    password: str = PASSWORD,
    **fields: Any,
) -> tuple[dict[str, Any], Headers]:
    """Create a user with ``roles`` (unique e-mail) and log them in.

    A ``manufacturer`` needs ``organization_id`` and a ``lab_technician`` needs
    ``centre_code`` (e.g. ``"CTTH"``, a seeded centre). Returns the user as the API
    answered it (``id``, ``email``, ``roles``, ...) and their bearer header.
    """
    body = {
        "email": f"user-{uuid.uuid4().hex[:12]}@example.ma",
        "full_name": f"Test User {uuid.uuid4().hex[:6]}",
        "password": password,
        "roles": [str(role) for role in roles],
        "organization_id": organization_id,
        "centre_code": centre_code,
    } | fields
    response = client.post(f"{API}/users", json=body, headers=admin)
    assert response.status_code == 201, response.text
    user = dict(response.json())
    return user, login(client, user["email"], password)


def make_manufacturer(
    client: TestClient, admin: Headers
) -> tuple[dict[str, Any], dict[str, Any], Headers]:
    """A new organisation and one manufacturer user of it: (organisation, user, header)."""
    org = make_org(client, admin)
    user, headers = make_user(client, admin, [Role.MANUFACTURER], organization_id=org["id"])
    return org, user, headers


def make_product(client: TestClient, headers: Headers, **fields: Any) -> dict[str, Any]:
    """Register a product for the manufacturer whose ``headers`` are given."""
    body = {
        "name": "Demi-masque filtrant FFP2",
        "name_ar": "نصف قناع ترشيحي",
        "brand": "Atlas",
        "model": f"AT-{uuid.uuid4().hex[:6].upper()}",
        "description": "Demi-masque filtrant pliable, sans soupape.",
        "hs_code": "630790",
    } | fields
    response = client.post(f"{API}/products", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())
