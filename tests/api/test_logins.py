"""Logins under attack: throttling per account and per client address (counters in the
database, shared by API processes), a bound on concurrent password hashes, 12-character
passwords, logout, and tokens revoked by a password change or a disablement.

Each test logs in from a client address of its own (a documentation IPv6 address), so that
the per-address counter of one test never throttles another. Where two applications are
made on the same database, they stand for two API processes.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from api.app import create_app
from api.passwords import PasswordGate
from domain.permissions import Role
from models.audit import SECURITY_CHAIN, AuditEvent
from mutabaqa.settings import Settings, SettingsError, load_settings
from records.audit import verify_chain
from tests.api.helpers import (
    API,
    PASSWORD,
    admin_headers,
    assert_problem,
    assert_unauthenticated,
    login,
    make_user,
)


def new_address() -> str:
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


@contextmanager
def api(settings: Settings, address: str) -> Iterator[TestClient]:
    """An API process whose callers all come from ``address``."""
    with TestClient(create_app(settings), client=(address, 50000)) as client:
        yield client


def try_login(client: TestClient, email: str, password: str) -> Response:
    form = {"username": email, "password": password}
    response: Response = client.post(f"{API}/auth/token", data=form)
    return response


def hashes(client: TestClient) -> int:
    gate: PasswordGate = client.app.state.ctx.passwords  # type: ignore[attr-defined]
    return gate.computed


def assert_throttled(response: Response) -> int:
    """A 429 problem with ``Retry-After``; returns the seconds to wait."""
    assert_problem(response, 429, "too-many-requests")
    seconds = int(response.headers["retry-after"])
    assert seconds >= 1
    return seconds


def throttle_events(engine: Engine, subject: str) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(AuditEvent)
                .where(AuditEvent.chain == SECURITY_CHAIN, AuditEvent.object_id == subject)
                .order_by(col(AuditEvent.seq))
            ).all()
        )


@pytest.fixture
def officer(settings: Settings) -> dict[str, Any]:
    """A compliance officer (password ``PASSWORD``), made from an address of its own."""
    with api(settings, new_address()) as client:
        user, _ = make_user(client, admin_headers(client, settings), [Role.COMPLIANCE_OFFICER])
    return user


def test_the_21st_wrong_password_within_a_minute_from_one_address_is_429(
    settings: Settings, engine: Engine, officer: dict[str, Any]
) -> None:
    address = new_address()
    with api(settings, address) as first, api(settings, address) as second:
        # 20 failures, each on another account (no account's own delay starts), spread
        # over two API processes: they count together.
        for n in range(20):
            client = first if n % 2 else second
            email = f"nobody-{uuid.uuid4().hex[:8]}@example.ma"
            assert_unauthenticated(try_login(client, email, "wrong password"))

        before = hashes(first) + hashes(second)
        refused = try_login(first, f"nobody-{uuid.uuid4().hex[:8]}@example.ma", "wrong password")
        assert 1 <= assert_throttled(refused) <= 60
        assert "your address" in refused.json()["detail"]
        # Even the right password is not checked from this address for the rest of the
        # minute (checking it would cost a hash)...
        assert_throttled(try_login(second, officer["email"], PASSWORD))
        assert hashes(first) + hashes(second) == before

    # ... while the officer logs in from anywhere else.
    with api(settings, new_address()) as elsewhere:
        login(elsewhere, officer["email"], PASSWORD)

    # One audit event for the address's throttled window, however many attempts it refused.
    [event] = throttle_events(engine, address)
    assert event.action == "login.throttled" and event.object_type == "address"
    assert event.detail["address"] == address and event.detail["failures"] == 20


@pytest.mark.both_databases
@pytest.mark.timers
def test_the_account_delay_grows_and_the_right_password_then_works(
    settings: Settings, engine: Engine, officer: dict[str, Any]
) -> None:
    email = officer["email"]
    # Two API processes, callers at two addresses: the delay belongs to the account.
    with api(settings, new_address()) as client, api(settings, new_address()) as other:
        for _ in range(5):
            assert_unauthenticated(try_login(client, email, "wrong password"))
        # After 5 failures: wait 1 s, then 2 s after the next failure, then 4 s ...
        assert assert_throttled(try_login(client, email, "wrong password")) == 1
        time.sleep(1.1)
        assert_unauthenticated(try_login(client, email, "wrong password"))
        second_wait = assert_throttled(try_login(client, email, "wrong password"))
        assert second_wait == 2
        # The right password inside the wait is refused too, without being checked, from
        # the other address as well.
        before = hashes(client) + hashes(other)
        refused = try_login(client, email, PASSWORD)
        assert_throttled(refused)
        assert "this account" in refused.json()["detail"]
        assert_throttled(try_login(other, email, PASSWORD))
        assert hashes(client) + hashes(other) == before

        time.sleep(second_wait + 0.1)
        # After the delay, the right password works, and the streak is over.
        headers = login(other, email, PASSWORD)
        assert other.get(f"{API}/technical-centres", headers=headers).status_code == 200
        assert_unauthenticated(try_login(other, email, "wrong password"))

    # One audit event for the account's throttled window (four refusals above).
    [event] = throttle_events(engine, email)
    assert event.object_type == "account" and event.detail["account"] == email
    with Session(engine) as session:
        assert verify_chain(session, SECURITY_CHAIN) is None


def test_throttled_attempts_do_not_hash_the_password(
    settings: Settings, officer: dict[str, Any]
) -> None:
    # (The account's own delay refuses without hashing too: see the test above. Here the
    # address's minute, which lasts long enough to count many refusals whatever the load.)
    with api(settings, new_address()) as client:
        start = hashes(client)
        for _ in range(20):
            email = f"nobody-{uuid.uuid4().hex[:8]}@example.ma"
            assert_unauthenticated(try_login(client, email, "wrong password"))
        assert hashes(client) == start + 20  # each judged attempt costs one hash
        for n in range(10):
            email = officer["email"] if n % 2 else f"nobody-{n}@example.ma"
            assert_throttled(try_login(client, email, PASSWORD if n % 2 else "wrong password"))
        assert hashes(client) == start + 20  # the refused ones cost none


@pytest.mark.concurrency
def test_concurrent_hashes_are_bounded_and_the_overflow_is_503(settings: Settings) -> None:
    narrow = settings.model_copy(
        update={"password_hash_concurrency": 1, "password_hash_wait_seconds": 0.05}
    )
    statuses: list[Response] = []
    with api(narrow, new_address()) as client:
        barrier = threading.Barrier(12)

        def attempt() -> None:
            barrier.wait()
            email = f"nobody-{uuid.uuid4().hex[:8]}@example.ma"
            statuses.append(try_login(client, email, "wrong password"))

        threads = [threading.Thread(target=attempt) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        gate: PasswordGate = client.app.state.ctx.passwords  # type: ignore[attr-defined]
        assert gate.peak == 1
        busy = [r for r in statuses if r.status_code == 503]
        assert busy, [r.status_code for r in statuses]
        for response in busy:
            assert_problem(response, 503, "unavailable")
            assert response.headers["retry-after"] == "1"
        assert {r.status_code for r in statuses} == {401, 503}

        # A 503 is not a failed login: only the 401s count towards the address's 20.
        judged = len(statuses) - len(busy)
        for _ in range(20 - judged):
            email = f"nobody-{uuid.uuid4().hex[:8]}@example.ma"
            assert_unauthenticated(try_login(client, email, "wrong password"))
        assert_throttled(try_login(client, "nobody@example.ma", "wrong password"))


def test_a_password_change_revokes_the_tokens_issued_before(settings: Settings) -> None:
    with api(settings, new_address()) as client:
        admin = admin_headers(client, settings)
        user, headers = make_user(client, admin, [Role.COMPLIANCE_OFFICER])
        url = f"{API}/technical-centres"
        assert client.get(url, headers=headers).status_code == 200

        new_password = "another long passphrase"
        patched = client.patch(
            f"{API}/users/{user['id']}", json={"password": new_password}, headers=admin
        )
        assert patched.status_code == 200, patched.text
        response = client.get(url, headers=headers)
        assert_unauthenticated(response)
        assert "revoked" in response.json()["detail"]
        fresh = login(client, user["email"], new_password)
        assert client.get(url, headers=fresh).status_code == 200

        # Other changes (a rename) leave the tokens valid.
        renamed = client.patch(
            f"{API}/users/{user['id']}", json={"full_name": "Nadia Tazi"}, headers=admin
        )
        assert renamed.status_code == 200, renamed.text
        assert client.get(url, headers=fresh).status_code == 200


def test_logout_revokes_every_token_of_the_caller(settings: Settings) -> None:
    with api(settings, new_address()) as client:
        admin = admin_headers(client, settings)
        user, first = make_user(client, admin, [Role.COMPLIANCE_OFFICER])
        second = login(client, user["email"], PASSWORD)
        _, bystander = make_user(client, admin, [Role.COMPLIANCE_OFFICER])
        url = f"{API}/technical-centres"

        response = client.post(f"{API}/auth/logout", headers=first)
        assert response.status_code == 204 and response.content == b""
        assert_unauthenticated(client.get(url, headers=first))
        assert_unauthenticated(client.get(url, headers=second))
        assert_unauthenticated(client.post(f"{API}/auth/logout", headers=first))
        assert_unauthenticated(client.post(f"{API}/auth/logout"))
        # Someone else's tokens are untouched; logging in again works.
        assert client.get(url, headers=bystander).status_code == 200
        assert client.get(url, headers=login(client, user["email"], PASSWORD)).status_code == 200


def test_a_disablement_revokes_the_tokens_even_after_enabling_again(settings: Settings) -> None:
    with api(settings, new_address()) as client:
        admin = admin_headers(client, settings)
        user, headers = make_user(client, admin, [Role.COMPLIANCE_OFFICER])
        url = f"{API}/users/{user['id']}"
        assert client.patch(url, json={"disabled": True}, headers=admin).status_code == 200
        assert_unauthenticated(client.get(f"{API}/technical-centres", headers=headers))
        assert client.patch(url, json={"disabled": False}, headers=admin).status_code == 200
        assert_unauthenticated(client.get(f"{API}/technical-centres", headers=headers))
        fresh = login(client, user["email"], PASSWORD)
        assert client.get(f"{API}/technical-centres", headers=fresh).status_code == 200


def test_passwords_have_at_least_12_characters(settings: Settings, engine: Engine) -> None:
    with api(settings, new_address()) as client:
        admin = admin_headers(client, settings)
        body = {
            "email": f"short-{uuid.uuid4().hex[:8]}@example.ma",
            "full_name": "Karim Alaoui",
            "password": "elevenchars",
            "roles": ["compliance_officer"],
        }
        assert len(body["password"]) == 11
        problem = assert_problem(client.post(f"{API}/users", json=body, headers=admin), 422)
        assert "12" in str(problem["errors"])
        listed = client.get(f"{API}/users", params={"limit": 200}, headers=admin).json()
        assert all(u["email"] != body["email"] for u in listed["items"])  # nothing created

        user, headers = make_user(client, admin, [Role.COMPLIANCE_OFFICER], password="twelve chars")
        url = f"{API}/users/{user['id']}"
        assert_problem(client.patch(url, json={"password": "elevenchars"}, headers=admin), 422)
        # The refused change changed nothing: the old password and token still work.
        assert client.get(f"{API}/technical-centres", headers=headers).status_code == 200
        login(client, user["email"], "twelve chars")

    with pytest.raises(SettingsError, match=r"MUTABAQA_ADMIN_PASSWORD.*12"):
        load_settings(admin_password="elevenchars")
