"""Helpers for request tests: people, a draft request, documents, actions, polling."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from domain.permissions import Role
from mutabaqa.settings import Settings
from tests.api.helpers import API, Headers, admin_headers, make_org, make_product, make_user

FFP2 = "FFP2-NM-EN-149"
FFP2_DOCUMENTS = (
    "technical_file",
    "declaration_of_conformity",
    "user_instructions",
    "product_photos",
)

PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


@dataclass
class Cast:
    """The people of one scenario, each with their bearer header."""

    admin: Headers
    org: dict[str, Any]
    maker: dict[str, Any]
    maker_auth: Headers
    officer: dict[str, Any]
    officer_auth: Headers
    tech: dict[str, Any]
    tech_auth: Headers
    product: dict[str, Any]
    other_maker_auth: Headers
    other_tech_auth: Headers


def make_cast(client: TestClient, settings: Settings) -> Cast:
    admin = admin_headers(client, settings)
    org = make_org(client, admin)
    maker, maker_auth = make_user(client, admin, [Role.MANUFACTURER], organization_id=org["id"])
    officer, officer_auth = make_user(client, admin, [Role.COMPLIANCE_OFFICER])
    tech, tech_auth = make_user(client, admin, [Role.LAB_TECHNICIAN], centre_code="CTTH")
    other_org = make_org(client, admin)
    _, other_maker_auth = make_user(
        client, admin, [Role.MANUFACTURER], organization_id=other_org["id"]
    )
    _, other_tech_auth = make_user(client, admin, [Role.LAB_TECHNICIAN], centre_code="CETIEV")
    product = make_product(client, maker_auth)
    return Cast(
        admin,
        org,
        maker,
        maker_auth,
        officer,
        officer_auth,
        tech,
        tech_auth,
        product,
        other_maker_auth,
        other_tech_auth,
    )


def create_request(
    client: TestClient, cast: Cast, *, key: str | None = None, scheme: str = FFP2
) -> dict[str, Any]:
    headers = dict(cast.maker_auth)
    if key:
        headers["Idempotency-Key"] = key
    response = client.post(
        f"{API}/requests",
        json={"product_id": cast.product["id"], "scheme_code": scheme, "kind": "certification"},
        headers=headers,
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def upload(
    client: TestClient,
    headers: Headers,
    request_id: str,
    kind: str,
    content: bytes = PDF,
    filename: str = "dossier.pdf",
    content_type: str = "application/pdf",
) -> Any:
    return client.post(
        f"{API}/requests/{request_id}/documents",
        data={"kind": kind},
        files={"file": (filename, content, content_type)},
        headers=headers,
    )


def upload_all(client: TestClient, cast: Cast, request_id: str) -> None:
    for kind in FFP2_DOCUMENTS:
        if kind == "product_photos":
            response = upload(
                client, cast.maker_auth, request_id, kind, PNG, "photo.png", "image/png"
            )
        else:
            response = upload(client, cast.maker_auth, request_id, kind, filename=f"{kind}.pdf")
        assert response.status_code == 201, response.text


def act(
    client: TestClient,
    headers: Headers,
    request_id: str,
    action: str,
    body: dict[str, Any] | None = None,
    key: str | None = None,
) -> Any:
    extra = {"Idempotency-Key": key} if key else {}
    return client.post(
        f"{API}/requests/{request_id}/actions/{action}",
        json=body or {},
        headers=headers | extra,
    )


def get(client: TestClient, headers: Headers, request_id: str) -> dict[str, Any]:
    response = client.get(f"{API}/requests/{request_id}", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_status(
    client: TestClient, headers: Headers, request_id: str, status: str, timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = get(client, headers, request_id)
        if current["status"] == status or time.monotonic() > deadline:
            assert current["status"] == status, current
            return current
        time.sleep(0.1)


def to_review(client: TestClient, cast: Cast) -> dict[str, Any]:
    """A request with its dossier, submitted and through intake (application_review)."""
    request = create_request(client, cast, key=uuid.uuid4().hex)
    upload_all(client, cast, request["id"])
    response = act(client, cast.maker_auth, request["id"], "submit")
    assert response.status_code == 200, response.text
    return wait_status(client, cast.officer_auth, request["id"], "application_review")


def wait_pdf_link(client: TestClient, headers: Headers, number: str, timeout: float = 60) -> Any:
    """The certificate PDF's presigned redirect, once the PDF (rendered in the background
    after the grant) is stored; until then the route answers 404 with ``Retry-After``."""
    deadline = time.monotonic() + timeout
    while True:
        link = client.get(
            f"{API}/certificates/{number}/pdf", headers=headers, follow_redirects=False
        )
        if link.status_code != 404 or time.monotonic() > deadline:
            assert link.status_code == 307, link.text
            return link
        assert link.headers["Retry-After"] == "2"
        time.sleep(0.1)
