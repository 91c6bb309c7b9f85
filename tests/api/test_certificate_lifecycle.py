"""The certificate's life after issuance, on its own workflow, with second-long durations:
suspension and restoration, withdrawal after the maximum suspension, expiry by timer,
reissue, termination by the holder, continue-as-new; the public page shows each status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from mutabaqa.clients import connect_temporal
from mutabaqa.settings import Settings
from tests.api.helpers import API, Headers
from tests.api.lab_helpers import Lab, make_lab, to_evaluated
from tests.api.requests_helpers import Cast, act, make_cast
from tests.conftest import RunningWorker
from tests.mutabaqa.test_signing import _b64url_decode, _tiny_jcs

SUSPENSION_MAX = 3.0


@pytest.fixture(scope="module")
def fast(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"suspension_max_seconds": SUSPENSION_MAX, "certificate_history_threshold": 40}
    )


@pytest.fixture(scope="module")
def client(fast: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(fast)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


@pytest.fixture(scope="module")
def lab(client: TestClient, cast: Cast) -> Lab:
    return make_lab(client, cast)


def issue(client: TestClient, cast: Cast, lab: Lab) -> str:
    rid = to_evaluated(client, cast, lab)
    granted = act(client, cast.officer_auth, rid, "grant")
    assert granted.status_code == 200, granted.text
    return str(granted.json()["certificate_number"])


def cert_act(
    client: TestClient,
    headers: Headers,
    number: str,
    action: str,
    reason: str = "Market surveillance finding",
) -> Any:
    """An action; while the workflow continues as new it answers 503 + Retry-After, and the
    client retries with the same Idempotency-Key, as any client should."""
    key = {"Idempotency-Key": f"{action}-{time.monotonic_ns()}"}
    deadline = time.monotonic() + 60  # a switch takes well under a second unloaded
    while True:
        response = client.post(
            f"{API}/certificates/{number}/actions/{action}",
            json={"reason": reason},
            headers=headers | key,
        )
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        assert response.headers["retry-after"].isdigit()
        time.sleep(0.1)


def public_status(client: TestClient, number: str) -> dict[str, Any]:
    response = client.get(f"/verify/{number}", headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_public(
    client: TestClient, number: str, status: str, timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = public_status(client, number)
        if body["status"] == status or time.monotonic() > deadline:
            assert body["status"] == status, body
            return body
        time.sleep(0.2)


def test_suspend_then_restore(client: TestClient, cast: Cast, lab: Lab) -> None:
    number = issue(client, cast, lab)
    assert public_status(client, number)["status"] == "active"
    suspended = cert_act(client, cast.officer_auth, number, "suspend")
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    page = public_status(client, number)
    assert page["status"] == "suspended" and page["status_since"]
    assert "suspended" in client.get(f"/verify/{number}").text  # the HTML page too
    restored = cert_act(client, cast.officer_auth, number, "restore", "Corrective action closed")
    assert restored.status_code == 200 and restored.json()["status"] == "active"
    assert public_status(client, number)["status"] == "active"
    timeline = client.get(f"{API}/certificates/{number}/timeline", headers=cast.maker_auth)
    assert [e["action"] for e in timeline.json()["items"]] == ["suspend", "restore"]
    assert timeline.json()["items"][0]["actor"] == "compliance_officer"  # role, not name


@pytest.mark.timers
def test_suspended_past_the_maximum_is_withdrawn(client: TestClient, cast: Cast, lab: Lab) -> None:
    number = issue(client, cast, lab)
    assert cert_act(client, cast.officer_auth, number, "suspend").status_code == 200
    withdrawn = wait_public(client, number, "withdrawn", timeout=SUSPENSION_MAX + 20)
    assert withdrawn["status_since"]
    late = cert_act(client, cast.officer_auth, number, "restore")
    assert late.status_code == 409
    assert late.json()["certificate_status"] == "withdrawn"


def test_reissue_supersedes_the_old_issue(client: TestClient, cast: Cast, lab: Lab) -> None:
    number = issue(client, cast, lab)
    response = client.post(
        f"{API}/certificates/{number}/actions/reissue",
        json={"reason": "Revised standard edition", "scope": "Filtering half masks, FFP2 NR D"},
        headers=cast.officer_auth,
    )
    assert response.status_code == 200, response.text
    assert (response.json()["issue"], response.json()["status"]) == (1, "active")
    page = public_status(client, number)
    assert (page["issue"], page["status"]) == (1, "active")
    assert page["certificate"]["issue"] == "1"
    assert page["certificate"]["scope"] == "Filtering half masks, FFP2 NR D"
    keys = {k["kid"]: k for k in client.get("/.well-known/mutabaqa-keys.json").json()["keys"]}
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(_b64url_decode(keys[page["key_id"]]["x"]))
    key.verify(_b64url_decode(page["signature"]), _tiny_jcs(page["certificate"]))
    issues = client.get(f"{API}/certificates", headers=cast.maker_auth).json()["items"]
    mine = sorted((c["issue"], c["status"]) for c in issues if c["number"] == number)
    assert mine == [(0, "superseded"), (1, "active")]
    # The new issue has a workflow of its own (continued as new) that still takes actions.
    assert cert_act(client, cast.officer_auth, number, "suspend").status_code == 200
    assert public_status(client, number)["status"] == "suspended"


def test_the_holder_terminates_and_only_the_holder(
    client: TestClient, cast: Cast, lab: Lab
) -> None:
    number = issue(client, cast, lab)
    assert cert_act(client, cast.officer_auth, number, "terminate").status_code == 403
    assert cert_act(client, cast.other_maker_auth, number, "terminate").status_code == 404
    assert cert_act(client, cast.maker_auth, number, "suspend").status_code == 403
    done = cert_act(client, cast.maker_auth, number, "terminate", "Product discontinued")
    assert done.status_code == 200 and done.json()["status"] == "terminated"
    assert public_status(client, number)["status"] == "terminated"


@pytest.mark.timers
def test_expiry_by_timer(settings: Settings, worker: RunningWorker, cast: Cast, lab: Lab) -> None:
    short = settings.model_copy(update={"certificate_validity_seconds": 3.0})
    with TestClient(create_app(short)) as short_client:
        number = issue(short_client, cast, lab)
        assert public_status(short_client, number)["status"] == "active"
        expired = wait_public(short_client, number, "expired", timeout=30)
        assert expired["status_since"]


def test_continue_as_new_keeps_history_bounded_and_state_intact(
    client: TestClient, cast: Cast, lab: Lab, settings: Settings
) -> None:
    number = issue(client, cast, lab)
    for n in range(12):
        action = "suspend" if n % 2 == 0 else "restore"
        response = cert_act(client, cast.officer_auth, number, action, f"cycle {n}")
        assert response.status_code == 200, response.text
    assert public_status(client, number)["status"] == "active"
    assert cert_act(client, cast.officer_auth, number, "suspend", "final").status_code == 200

    async def inspect() -> tuple[int, int, str]:
        temporal = await connect_temporal(settings)
        handle = temporal.get_workflow_handle(f"certificate-{number}")
        history = await handle.fetch_history()
        state = await handle.query("state")
        runs = [w async for w in temporal.list_workflows(f"WorkflowId = 'certificate-{number}'")]
        return len(history.events), len(runs), str(state["status"])

    deadline = time.monotonic() + 30
    length, runs, status = asyncio.run(inspect())
    while (runs < 2 or length > 40 + 40) and time.monotonic() < deadline:
        time.sleep(0.5)
        length, runs, status = asyncio.run(inspect())
    assert runs >= 2  # it continued as new at least once
    assert length <= 40 + 40  # the current run's history stays near the threshold
    assert status == "suspended"
    timeline = client.get(f"{API}/certificates/{number}/timeline", headers=cast.officer_auth)
    assert len(timeline.json()["items"]) == 13  # every action kept on the audit chain
