"""The admin pages and the webhook page over plain HTTP: who reaches them (the JSON API's
rules: admins for organisations, users and the outbox; a manufacturer for their
organisation's webhook), CSRF (a POST without its token is 403 and changes nothing), and
that each page does what the JSON API does."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.app import create_app
from domain.effects import EffectKind
from domain.permissions import Role
from models.outbox import OutboxRow, OutboxStatus, outbox_id
from mutabaqa.db import session_scope
from mutabaqa.devstack import free_port
from mutabaqa.settings import Settings
from records.outbox import get
from tests.api.helpers import API, make_user, unique_ice
from tests.api.requests_helpers import Cast, make_cast
from tests.conftest import RunningWorker
from tests.portal.helpers import csrf_of, policy_is_strict, portal_login

ADMIN_PAGES = ("/admin/organizations", "/admin/users", "/admin/outbox")


@pytest.fixture(scope="module")
def cast(settings: Settings, worker: RunningWorker) -> Cast:
    with TestClient(create_app(settings)) as client:
        return make_cast(client, settings)


@pytest.fixture
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def admin(client: TestClient, settings: Settings) -> TestClient:
    """``client``, signed in to the portal as the first admin."""
    answer = portal_login(client, settings.admin_email, settings.admin_password.get_secret_value())
    assert answer.status_code == 303, answer.text
    return client


def _organizations(client: TestClient, cast: Cast) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(
        f"{API}/organizations", params={"limit": 200}, headers=cast.admin
    ).json()["items"]
    return items


def _user(client: TestClient, cast: Cast, email: str) -> dict[str, Any] | None:
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"{API}/users", params=params, headers=cast.admin).json()
        for user in page["items"]:
            if user["email"] == email:
                return dict(user)
        cursor = page["next_cursor"]
        if not cursor:
            return None


def _dead_row(engine: Engine) -> str:
    """A dead outbox row (an e-mail whose every attempt failed), with a marked error."""
    key = f"portal-test-{uuid.uuid4().hex}"
    with session_scope(engine) as session:
        session.add(
            OutboxRow(
                id=outbox_id(key),
                kind=EffectKind.EMAIL,
                dedupe_key=key,
                payload={"dedupe_key": key},
                status=OutboxStatus.DEAD,
                attempts=7,
                last_error=f"marker {key}",
            )
        )
    return outbox_id(key)


# --- reach ---------------------------------------------------------------------------------------


def test_a_visitor_is_sent_to_the_login_page(client: TestClient) -> None:
    for path in (*ADMIN_PAGES, "/webhook"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/", path


def test_a_manufacturer_gets_403_on_admin_pages_and_creates_nothing(
    client: TestClient, cast: Cast, engine: Engine
) -> None:
    assert portal_login(client, cast.maker["email"]).status_code == 303
    home = client.get("/")
    assert 'href="/admin"' not in home.text and 'href="/webhook"' in home.text
    for path in ADMIN_PAGES:
        page = client.get(path)
        assert page.status_code == 403, path
        assert policy_is_strict(page)
        assert 'action="/admin' not in page.text
    # Even with a valid token, the POSTs are refused by the API's rule.
    csrf = csrf_of(home)
    ice = unique_ice()
    org = {"name": "Intrus", "registration_id": ice, "address": "Rabat", "country": "MA"}
    assert client.post("/admin/organizations", data=org | {"csrf": csrf}).status_code == 403
    assert ice not in {o["registration_id"] for o in _organizations(client, cast)}
    email = f"intrus-{uuid.uuid4().hex[:8]}@example.ma"
    user = {"email": email, "full_name": "Intrus", "password": "x" * 20, "roles": "admin"}
    assert client.post("/admin/users", data=user | {"csrf": csrf}).status_code == 403
    assert _user(client, cast, email) is None
    row_id = _dead_row(engine)
    assert client.post(f"/admin/outbox/{row_id}/replay", data={"csrf": csrf}).status_code == 403
    row = get(engine, row_id)
    assert row is not None and row.status is OutboxStatus.DEAD


def test_an_admin_sees_the_admin_pages_but_not_the_webhook(admin: TestClient) -> None:
    home = admin.get("/")
    assert 'href="/admin"' in home.text and 'href="/webhook"' not in home.text
    for path in ADMIN_PAGES:
        page = admin.get(path)
        assert page.status_code == 200, path
        assert policy_is_strict(page) and "style=" not in page.text
    assert admin.get("/webhook").status_code == 403  # the API's rule: manufacturers only


def test_admin_posts_without_their_token_are_403_and_change_nothing(
    admin: TestClient, cast: Cast, engine: Engine
) -> None:
    ice = unique_ice()
    org = {"name": "Sans jeton", "registration_id": ice, "address": "Fès", "country": "MA"}
    assert admin.post("/admin/organizations", data=org).status_code == 403
    assert admin.post("/admin/organizations", data=org | {"csrf": "0" * 64}).status_code == 403
    assert ice not in {o["registration_id"] for o in _organizations(admin, cast)}
    email = f"sans-jeton-{uuid.uuid4().hex[:8]}@example.ma"
    user = {"email": email, "full_name": "Sans jeton", "password": "x" * 20, "roles": "admin"}
    assert admin.post("/admin/users", data=user).status_code == 403
    assert _user(admin, cast, email) is None
    officer = cast.officer
    disable = {"roles": "compliance_officer", "disabled": "on"}
    assert admin.post(f"/admin/users/{officer['id']}", data=disable).status_code == 403
    now = _user(admin, cast, officer["email"])
    assert now is not None and now["disabled"] is False
    row_id = _dead_row(engine)
    assert admin.post(f"/admin/outbox/{row_id}/replay", data={}).status_code == 403
    row = get(engine, row_id)
    assert row is not None and row.status is OutboxStatus.DEAD and row.attempts == 7


# --- what the pages do ---------------------------------------------------------------------------


def test_an_admin_creates_an_organisation_with_errors_next_to_the_fields(
    admin: TestClient, cast: Cast
) -> None:
    page = admin.get("/admin/organizations?lang=fr")
    csrf = csrf_of(page)
    bad = {"name": "Atlas", "registration_id": "123", "address": "Casablanca", "country": "MA"}
    refused = admin.post("/admin/organizations", data=bad | {"csrf": csrf})
    assert refused.status_code == 422
    assert 'aria-describedby="registration_id-error"' in refused.text
    assert 'id="registration_id-error"' in refused.text and "Vérifiez ce champ" in refused.text
    assert 'value="Atlas"' in refused.text  # what was typed is kept
    ice = unique_ice()
    good = bad | {"registration_id": ice, "name": f"Atlas {ice}"}
    created = admin.post("/admin/organizations", data=good | {"csrf": csrf}, follow_redirects=False)
    assert created.status_code == 303
    assert ice in {o["registration_id"] for o in _organizations(admin, cast)}
    assert f"Atlas {ice}" in admin.get("/admin/organizations").text
    again = admin.post("/admin/organizations", data=good | {"csrf": csrf})
    assert again.status_code == 409 and "Cela contredit" in again.text  # the API's 409
    assert 'lang="en" dir="ltr"' in again.text and ice in again.text


def test_an_admin_creates_a_user_then_changes_roles_and_disables_them(
    admin: TestClient, cast: Cast, settings: Settings
) -> None:
    csrf = csrf_of(admin.get("/admin/users?lang=en"))
    email = f"nouveau-{uuid.uuid4().hex[:8]}@example.ma"
    body = {
        "email": email,
        "full_name": "Yasmine Alaoui",
        "password": "correct horse battery staple",
        "roles": ["manufacturer"],
        "csrf": csrf,
    }
    missing = admin.post("/admin/users", data=body)  # a manufacturer needs an organisation
    assert missing.status_code == 422 and "Some information is missing" in missing.text
    assert _user(admin, cast, email) is None
    done = admin.post(
        "/admin/users", data=body | {"organization_id": cast.org["id"]}, follow_redirects=False
    )
    assert done.status_code == 303, done.text
    user = _user(admin, cast, email)
    assert user is not None and user["roles"] == ["manufacturer"]
    assert user["organization_id"] == cast.org["id"]
    change = {"roles": ["manufacturer", "compliance_officer"], "disabled": "on", "csrf": csrf}
    changed = admin.post(f"/admin/users/{user['id']}", data=change, follow_redirects=False)
    assert changed.status_code == 303
    user = _user(admin, cast, email)
    assert user is not None and user["disabled"] is True
    assert user["roles"] == ["manufacturer", "compliance_officer"]
    # The API's self-lockout rule holds here too.
    me = _user(admin, cast, settings.admin_email)
    assert me is not None
    lockout = admin.post(f"/admin/users/{me['id']}", data={"roles": "admin", "disabled": "on",
                                                           "csrf": csrf})  # fmt: skip
    assert lockout.status_code == 409 and "You cannot disable your own account" in lockout.text


def test_an_admin_replays_a_dead_outbox_row(admin: TestClient, engine: Engine) -> None:
    row_id = _dead_row(engine)
    row = get(engine, row_id)
    assert row is not None
    marker = str(row.last_error)
    page = admin.get("/admin/outbox?lang=en")
    assert row_id in page.text and marker in page.text
    assert f'action="/admin/outbox/{row_id}/replay"' in page.text
    answer = admin.post(
        f"/admin/outbox/{row_id}/replay", data={"csrf": csrf_of(page)}, follow_redirects=False
    )
    assert answer.status_code == 303
    # Reset before its delivery started: whatever the delivery does next, the marked
    # failure is gone (pending or delivered; a new failure writes its own error).
    row = get(engine, row_id)
    assert row is not None
    assert not (row.status is OutboxStatus.DEAD and row.last_error == marker)
    assert marker not in admin.get("/admin/outbox").text


# --- the webhook page ----------------------------------------------------------------------------


def test_a_manufacturer_sets_sees_and_deactivates_the_webhook(
    client: TestClient, cast: Cast, settings: Settings
) -> None:
    with TestClient(create_app(settings)) as api:
        maker, bearer = make_user(api, cast.admin, [Role.MANUFACTURER], cast.org["id"])
    assert portal_login(client, maker["email"]).status_code == 303
    page = client.get("/webhook?lang=en")
    assert page.status_code == 200 and "No webhook yet." in page.text
    csrf = csrf_of(page)
    url = f"http://127.0.0.1:{free_port()}/hook"
    assert client.post("/webhook", data={"url": url}).status_code == 403  # no token
    assert client.get(f"{API}/webhook", headers=bearer).status_code == 404
    created = client.post("/webhook", data={"url": url, "csrf": csrf})
    assert created.status_code == 200 and "Store it now" in created.text
    assert url in created.text and 'class="mono secret"' in created.text
    hook = client.get(f"{API}/webhook", headers=bearer).json()
    assert (hook["url"], hook["active"]) == (url, True)
    shown = client.get("/webhook")
    assert url in shown.text and "Store it now" not in shown.text  # the secret, once only
    assert "Recent deliveries" in shown.text
    assert client.post("/webhook/delete", data={}).status_code == 403
    assert client.get(f"{API}/webhook", headers=bearer).json()["active"] is True
    off = client.post("/webhook/delete", data={"csrf": csrf}, follow_redirects=False)
    assert off.status_code == 303
    assert client.get(f"{API}/webhook", headers=bearer).json()["active"] is False
    bad = client.post("/webhook", data={"url": "x" * 3000, "csrf": csrf})
    assert bad.status_code == 422 and 'id="url-error"' in bad.text
