"""Accounts: logging in, bearer tokens, roles, the admin routes and their audit trail."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from api.app import create_app
from domain.permissions import Role
from models.accounts import User
from models.audit import ADMIN_CHAIN, AuditEvent
from mutabaqa.bootstrap import ensure_first_admin
from mutabaqa.settings import Settings
from records.audit import verify_chain
from tests.api.helpers import (
    API,
    PASSWORD,
    Headers,
    admin_headers,
    assert_problem,
    assert_unauthenticated,
    login,
    make_org,
    make_user,
    unique_ice,
)

NON_ADMIN_ROLES = [Role.MANUFACTURER, Role.LAB_TECHNICIAN, Role.COMPLIANCE_OFFICER]


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def admin(client: TestClient, settings: Settings) -> Headers:
    return admin_headers(client, settings)


def _user_with_role(
    client: TestClient, admin: Headers, role: Role
) -> tuple[dict[str, Any], Headers]:
    if role is Role.MANUFACTURER:
        org = make_org(client, admin)
        return make_user(client, admin, [role], organization_id=org["id"])
    if role is Role.LAB_TECHNICIAN:
        return make_user(client, admin, [role], centre_code="CTTH")
    return make_user(client, admin, [role])


def admin_events(engine: Engine, object_id: str) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(AuditEvent)
                .where(AuditEvent.chain == ADMIN_CHAIN, AuditEvent.object_id == object_id)
                .order_by(col(AuditEvent.seq))
            ).all()
        )


# --- logging in ----------------------------------------------------------------------------


def test_first_admin_logs_in_and_gets_a_bearer_token(
    client: TestClient, settings: Settings, engine: Engine
) -> None:
    response = client.post(
        f"{API}/auth/token",
        data={
            "username": settings.admin_email.upper(),  # e-mails compare in lower case
            "password": settings.admin_password.get_secret_value(),
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_minutes * 60

    token = body["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(
        token,
        settings.jwt_secret.get_secret_value(),
        algorithms=["HS256"],
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    assert claims["exp"] - claims["iat"] == settings.access_token_minutes * 60
    assert claims["jti"]
    with Session(engine) as session:
        admin_user = session.exec(select(User).where(User.email == settings.admin_email)).one()
    assert claims["sub"] == admin_user.id
    assert admin_user.roles == ["admin"]
    assert admin_user.password_hash.startswith("$argon2id$")

    users = client.get(f"{API}/users", headers={"Authorization": f"Bearer {token}"})
    assert users.status_code == 200, users.text


@pytest.mark.concurrency
def test_first_admin_is_created_once_even_when_processes_race(
    settings: Settings, engine: Engine
) -> None:
    # The session's admin already exists: nothing is created again.
    assert ensure_first_admin(engine, settings) is False

    email = f"root-{uuid.uuid4().hex[:8]}@example.ma"
    fresh = settings.model_copy(
        update={"admin_email": email, "admin_password": settings.admin_password}
    )
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        results.append(ensure_first_admin(engine, fresh))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
    assert ensure_first_admin(engine, fresh) is False

    with Session(engine) as session:
        created = session.exec(select(User).where(User.email == email)).all()
        assert len(created) == 1
        events = admin_events(engine, created[0].id)
        assert [(e.action, e.actor_role) for e in events] == [("user.create", "system")]
        assert verify_chain(session, ADMIN_CHAIN) is None

    with TestClient(create_app(fresh)) as other:
        assert other.get(f"{API}/users", headers=admin_headers(other, fresh)).status_code == 200


def test_wrong_credentials_are_refused(client: TestClient, admin: Headers) -> None:
    user, _ = make_user(client, admin, [Role.COMPLIANCE_OFFICER])
    for username, password in [
        (user["email"], "not the password"),
        (f"nobody-{uuid.uuid4().hex[:8]}@example.ma", PASSWORD),
        (user["email"], ""),
    ]:
        response = client.post(
            f"{API}/auth/token", data={"username": username, "password": password}
        )
        if password:
            assert_unauthenticated(response)
            assert "access_token" not in response.json()
        else:  # an empty form field is a malformed form
            assert_problem(response, 422)


def test_disabled_account_cannot_log_in(client: TestClient, admin: Headers) -> None:
    user, _ = make_user(client, admin, [Role.COMPLIANCE_OFFICER])
    patched = client.patch(f"{API}/users/{user['id']}", json={"disabled": True}, headers=admin)
    assert patched.status_code == 200 and patched.json()["disabled"] is True
    response = client.post(
        f"{API}/auth/token", data={"username": user["email"], "password": PASSWORD}
    )
    assert_unauthenticated(response)


# --- bearer tokens -------------------------------------------------------------------------


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), default=lambda at: int(at.timestamp())).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _claims(settings: Settings, sub: str, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": sub,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": uuid.uuid4().hex,
        "ver": 0,  # a new user's token version
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name)
        else:
            claims[name] = value
    return claims


def _sign(settings: Settings, claims: dict[str, Any], algorithm: str = "HS256") -> str:
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=algorithm)


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def _bad_tokens(settings: Settings, user_id: str, good: str) -> dict[str, str]:
    past = datetime.now(UTC) - timedelta(minutes=10)
    _, payload, _ = good.split(".")
    return {
        "garbage": "not-a-jwt",
        "tampered signature": _tampered(good),
        "tampered payload": ".".join(
            [good.split(".")[0], _b64(_claims(settings, uuid.uuid4().hex)), good.split(".")[2]]
        ),
        "expired": _sign(
            settings, _claims(settings, user_id, iat=past - timedelta(hours=1), exp=past)
        ),
        "HS512 with the same secret": _sign(settings, _claims(settings, user_id), "HS512"),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "wrong audience": _sign(settings, _claims(settings, user_id, aud="someone-else")),
        "wrong issuer": _sign(settings, _claims(settings, user_id, iss="evil")),
        "no expiry": _sign(settings, _claims(settings, user_id, exp=None)),
        "no audience": _sign(settings, _claims(settings, user_id, aud=None)),
        "no version": _sign(settings, _claims(settings, user_id, ver=None)),
        "another version": _sign(settings, _claims(settings, user_id, ver=1)),
        "a version that is not a number": _sign(settings, _claims(settings, user_id, ver="0")),
        "another secret": jwt.encode(
            _claims(settings, user_id), "another-secret-" + "x" * 32, algorithm="HS256"
        ),
        "unknown user": _sign(settings, _claims(settings, uuid.uuid4().hex)),
    }


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512 forgery
def test_bad_tokens_are_refused_with_401(
    client: TestClient, admin: Headers, settings: Settings
) -> None:
    user, headers = make_user(client, admin, [Role.COMPLIANCE_OFFICER])
    good = headers["Authorization"].removeprefix("Bearer ")
    url = f"{API}/technical-centres"

    # The control: a token crafted the way the server crafts them is accepted...
    crafted = _sign(settings, _claims(settings, user["id"]))
    assert client.get(url, headers={"Authorization": f"Bearer {crafted}"}).status_code == 200
    assert client.get(url, headers=headers).status_code == 200

    # ... so each of these fails for the one reason it was built with.
    assert_unauthenticated(client.get(url))
    assert_unauthenticated(client.get(url, headers={"Authorization": f"Basic {good}"}))
    for reason, token in _bad_tokens(settings, user["id"], good).items():
        response = client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, reason
        assert_unauthenticated(response)
    expired = _bad_tokens(settings, user["id"], good)["expired"]
    body = client.get(url, headers={"Authorization": f"Bearer {expired}"}).json()
    assert "expired" in body["detail"]


def test_disabled_users_tokens_stop_working_at_once(client: TestClient, admin: Headers) -> None:
    org = make_org(client, admin)
    user, headers = make_user(client, admin, [Role.MANUFACTURER], organization_id=org["id"])
    assert client.get(f"{API}/products", headers=headers).status_code == 200

    response = client.patch(f"{API}/users/{user['id']}", json={"disabled": True}, headers=admin)
    assert response.status_code == 200, response.text
    assert_unauthenticated(client.get(f"{API}/products", headers=headers))
    assert_unauthenticated(client.get(f"{API}/technical-centres", headers=headers))

    # Enabled again: the tokens issued before the disablement stay revoked; a new login works.
    response = client.patch(f"{API}/users/{user['id']}", json={"disabled": False}, headers=admin)
    assert response.status_code == 200, response.text
    assert_unauthenticated(client.get(f"{API}/products", headers=headers))
    fresh = login(client, user["email"], PASSWORD)
    assert client.get(f"{API}/products", headers=fresh).status_code == 200


def test_role_change_takes_effect_on_the_next_request(client: TestClient, admin: Headers) -> None:
    org = make_org(client, admin)
    user, headers = make_user(client, admin, [Role.MANUFACTURER], organization_id=org["id"])
    assert client.get(f"{API}/products", headers=headers).status_code == 200
    assert_problem(client.get(f"{API}/users", headers=headers), 403, "forbidden")

    response = client.patch(
        f"{API}/users/{user['id']}", json={"roles": ["compliance_officer"]}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["compliance_officer"]
    assert_problem(client.get(f"{API}/products", headers=headers), 403, "forbidden")
    assert client.get(f"{API}/technical-centres", headers=headers).status_code == 200

    client.patch(f"{API}/users/{user['id']}", json={"roles": ["admin"]}, headers=admin)
    assert client.get(f"{API}/users", headers=headers).status_code == 200


# --- admin routes --------------------------------------------------------------------------


def _admin_calls(user_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("POST", "/organizations", {"name": "X", "registration_id": unique_ice(),
                                    "address": "A", "country": "MA"}),
        ("POST", "/organizations", {"bogus": True}),  # 403 before 422
        ("GET", "/organizations", None),
        ("POST", "/users", {"email": f"x-{uuid.uuid4().hex[:6]}@example.ma", "full_name": "X",
                            "password": PASSWORD, "roles": ["admin"]}),
        ("GET", "/users", None),
        ("PATCH", f"/users/{user_id}", {"roles": ["admin"]}),
        ("PATCH", f"/users/{uuid.uuid4().hex}", {"roles": ["admin"]}),  # 403 before 404
        ("POST", "/schemes", {"code": "NOPE"}),
    ]  # fmt: skip


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
def test_admin_routes_are_refused_to_every_other_role(
    client: TestClient, admin: Headers, role: Role
) -> None:
    user, headers = _user_with_role(client, admin, role)
    for method, path, body in _admin_calls(user["id"]):
        response = client.request(method, API + path, json=body, headers=headers)
        problem = assert_problem(response, 403, "forbidden")
        assert "admin" in problem["detail"], (method, path)
        assert_unauthenticated(client.request(method, API + path, json=body))
    # The refused calls changed nothing: the user is still what it was.
    again = client.get(f"{API}/users", headers=admin, params={"limit": 200}).json()["items"]
    assert next(u for u in again if u["id"] == user["id"])["roles"] == [role.value]


def test_organisations_are_validated(client: TestClient, admin: Headers) -> None:
    base = {"name": "Société", "address": "Rue 1, Fès", "country": "MA"}
    for bad_ice in ["12345", "12345678901234A", "1234567890123456"]:
        response = client.post(
            f"{API}/organizations", json=base | {"registration_id": bad_ice}, headers=admin
        )
        problem = assert_problem(response, 422, "invalid-body")
        assert "15 digits" in json.dumps(problem["errors"])

    foreign = client.post(
        f"{API}/organizations",
        json=base | {"country": "FR", "registration_id": f"RCS-{uuid.uuid4().hex[:10]}"},
        headers=admin,
    )
    assert foreign.status_code == 201, foreign.text

    unknown_field = base | {"registration_id": unique_ice(), "verified": True}
    assert_problem(client.post(f"{API}/organizations", json=unknown_field, headers=admin), 422)

    org = make_org(client, admin)
    duplicate = base | {"registration_id": org["registration_id"]}
    assert_problem(client.post(f"{API}/organizations", json=duplicate, headers=admin), 409)


def test_users_are_validated(client: TestClient, admin: Headers) -> None:
    org = make_org(client, admin)

    def body(**changes: Any) -> dict[str, Any]:
        return {
            "email": f"u-{uuid.uuid4().hex[:10]}@example.ma",
            "full_name": "Amina El Idrissi",
            "password": PASSWORD,
            "roles": ["manufacturer"],
            "organization_id": org["id"],
        } | changes

    def post(payload: dict[str, Any]) -> Response:
        response: Response = client.post(f"{API}/users", json=payload, headers=admin)
        return response

    assert_problem(post(body(is_superuser=True)), 422, "invalid-body")
    assert_problem(post(body(roles=["emperor"])), 422)
    assert_problem(post(body(roles=[])), 422)
    assert_problem(post(body(email="not-an-address")), 422)
    assert_problem(post(body(password="short")), 422)
    assert_problem(post(body(password="x" * 11)), 422)  # 12 characters at least
    assert_problem(post(body(organization_id=uuid.uuid4().hex)), 404, "not-found")
    assert_problem(post(body(organization_id=None)), 422, "invalid-body")
    assert_problem(post(body(roles=["lab_technician"], organization_id=None)), 422)
    assert_problem(
        post(body(roles=["lab_technician"], organization_id=None, centre_code="NOPE")),
        404,
        "not-found",
    )

    created = post(body(email="Duplicate-" + uuid.uuid4().hex[:8] + "@Example.MA"))
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["email"] == user["email"].lower()
    assert user["roles"] == ["manufacturer"] and user["organization_id"] == org["id"]
    assert user["disabled"] is False
    assert "password" not in user and "password_hash" not in user
    assert_problem(post(body(email=user["email"].upper())), 409, "conflict")

    tech = post(body(roles=["lab_technician"], organization_id=None, centre_code="CETIEV"))
    assert tech.status_code == 201, tech.text
    assert tech.json()["centre_code"] == "CETIEV"


def test_patching_users(client: TestClient, admin: Headers, engine: Engine) -> None:
    user, old_headers = make_user(client, admin, [Role.COMPLIANCE_OFFICER])
    url = f"{API}/users/{user['id']}"

    assert_problem(client.patch(f"{API}/users/{uuid.uuid4().hex}", json={}, headers=admin), 404)
    assert_problem(client.patch(url, json={"email": "x@example.ma"}, headers=admin), 422)
    assert_problem(client.patch(url, json={"roles": None}, headers=admin), 422)
    assert_problem(client.patch(url, json={"roles": ["manufacturer"]}, headers=admin), 422)
    assert_problem(client.patch(url, json={"centre_code": "NOPE"}, headers=admin), 404)

    new_password = "a brand new passphrase"
    response = client.patch(
        url,
        json={"full_name": "Youssef Benali", "roles": ["compliance_officer", "lab_technician"],
              "centre_code": "CTPC", "password": new_password},
        headers=admin,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["full_name"] == "Youssef Benali"
    assert patched["roles"] == ["compliance_officer", "lab_technician"]
    assert patched["centre_code"] == "CTPC"

    new_headers = login(client, user["email"], new_password)
    old = client.post(f"{API}/auth/token", data={"username": user["email"], "password": PASSWORD})
    assert_unauthenticated(old)
    # The token issued before the password change is revoked; the new one works.
    assert_unauthenticated(client.get(f"{API}/technical-centres", headers=old_headers))
    assert client.get(f"{API}/technical-centres", headers=new_headers).status_code == 200

    events = admin_events(engine, user["id"])
    assert [e.action for e in events] == ["user.create", "user.update"]
    update = events[1].detail
    assert update["changed"] == ["centre_code", "full_name", "password", "roles"]
    assert update["before"]["roles"] == ["compliance_officer"]
    assert update["after"]["roles"] == ["compliance_officer", "lab_technician"]
    for event in events:
        text = json.dumps(event.detail) + event.canonical
        assert PASSWORD not in text and new_password not in text and "$argon2" not in text


def test_an_admin_cannot_lock_themselves_out(client: TestClient, admin: Headers) -> None:
    me, headers = make_user(client, admin, [Role.ADMIN])
    url = f"{API}/users/{me['id']}"
    assert_problem(client.patch(url, json={"disabled": True}, headers=headers), 409)
    assert_problem(client.patch(url, json={"roles": ["manufacturer"]}, headers=headers), 422)
    assert_problem(client.patch(url, json={"roles": ["compliance_officer"]}, headers=headers), 409)
    assert client.get(f"{API}/users", headers=headers).status_code == 200
    # Another admin may do it.
    assert client.patch(url, json={"disabled": True}, headers=admin).status_code == 200
    assert_unauthenticated(client.get(f"{API}/users", headers=headers))


def test_admin_writes_are_on_the_admin_audit_chain(
    client: TestClient, admin: Headers, engine: Engine, settings: Settings
) -> None:
    org = make_org(client, admin)
    user, _ = make_user(client, admin, [Role.MANUFACTURER], organization_id=org["id"])
    client.patch(f"{API}/users/{user['id']}", json={"disabled": True}, headers=admin)
    no_change = client.patch(f"{API}/users/{user['id']}", json={"disabled": True}, headers=admin)
    assert no_change.status_code == 200

    with Session(engine) as session:
        admin_id = session.exec(select(User.id).where(User.email == settings.admin_email)).one()
    [org_event] = admin_events(engine, org["id"])
    assert org_event.action == "organization.create"
    assert org_event.object_type == "organization"
    assert org_event.actor_id == admin_id and org_event.actor_role == "admin"
    assert org_event.detail["after"]["registration_id"] == org["registration_id"]

    created, disabled = admin_events(engine, user["id"])  # the no-op PATCH recorded nothing
    assert created.action == "user.create"
    assert created.detail["after"]["email"] == user["email"]
    assert "password" not in created.detail["after"]
    assert disabled.action == "user.update"
    assert disabled.detail == {
        "changed": ["disabled"],
        "before": {"disabled": False},
        "after": {"disabled": True},
    }
    assert created.seq < disabled.seq

    with Session(engine) as session:
        assert verify_chain(session, ADMIN_CHAIN) is None


# --- lists ---------------------------------------------------------------------------------


def test_user_list_pages_with_a_cursor(client: TestClient, admin: Headers) -> None:
    mine = [make_user(client, admin, [Role.COMPLIANCE_OFFICER])[0]["id"] for _ in range(3)]

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = client.get(f"{API}/users", params=params, headers=admin)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    ids = [u["id"] for u in seen]
    assert len(ids) == len(set(ids)), "a user appeared on two pages"
    keys = [(u["created_at"], u["id"]) for u in seen]
    assert keys == sorted(keys, reverse=True), "not newest first"
    # Newest first: the three just made come first, the last one made at the very top.
    assert ids[:3] == list(reversed(mine))
    assert all("password_hash" not in u for u in seen)

    whole = client.get(f"{API}/users", params={"limit": 200}, headers=admin).json()
    assert [u["id"] for u in whole["items"]] == ids[:200]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 201}, {"limit": "ten"}, {"cursor": "garbage!"},
     {"cursor": base64.urlsafe_b64encode(b'["yesterday","x"]').decode()},
     {"cursor": base64.urlsafe_b64encode(b'["2026-01-01T00:00:00","x"]').decode()},
     {"cursor": base64.urlsafe_b64encode(b'{"a":1}').decode()}],
)  # fmt: skip
def test_bad_paging_parameters_are_422(
    client: TestClient, admin: Headers, params: dict[str, Any]
) -> None:
    for path in ("/users", "/organizations"):
        assert_problem(client.get(API + path, params=params, headers=admin), 422)
    # ... but only after authentication.
    assert_unauthenticated(client.get(f"{API}/users", params=params))


def test_each_user_reads_their_own_account_and_only_with_a_token(
    client: TestClient, admin: Headers
) -> None:
    org = make_org(client, admin)
    user, headers = make_user(client, admin, [Role.MANUFACTURER], org["id"])
    me = client.get(f"{API}/users/me", headers=headers)
    assert me.status_code == 200, me.text
    assert me.json()["id"] == user["id"]
    assert me.json()["roles"] == ["manufacturer"]
    assert me.json()["organization_id"] == org["id"]
    assert "password_hash" not in me.json()
    assert_unauthenticated(client.get(f"{API}/users/me"))
