"""Keys that cannot collide, retries that end (issue 10), through the HTTP API against the
real Temporal, S3 and database.

- A client's ``Idempotency-Key`` equal to a system key (``intake:1``) does not make the
  system step skip.
- ``PUT …/results/{item}`` repeated with the same key makes one revision.
- A key reused with another body is 422 for a request action, a result and a certificate
  action.
- An action whose activity fails for good (a row it needs is gone) fails with a clear
  problem, at once; the request's lock is free again and a later action works.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.app import create_app
from mutabaqa.clients import connect_temporal
from mutabaqa.settings import Settings
from tests.api.helpers import API, assert_problem
from tests.api.lab_helpers import Lab, make_lab, put_result, to_evaluated, to_testing
from tests.api.requests_helpers import (
    Cast,
    act,
    create_request,
    get,
    make_cast,
    to_review,
    upload_all,
    wait_status,
)
from tests.conftest import RunningWorker

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


@pytest.fixture(scope="module")
def lab(client: TestClient, cast: Cast) -> Lab:
    return make_lab(client, cast)


def _keys(engine: Engine, request_id: str) -> list[str]:
    with engine.connect() as conn:
        return sorted(
            conn.execute(
                sa.text("SELECT idempotency_key FROM request_action WHERE request_id = :id"),
                {"id": request_id},
            ).scalars()
        )


def _audit_actions(engine: Engine, request_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT action FROM audit_event WHERE chain = :c ORDER BY seq"),
                {"c": f"request:{request_id}"},
            ).scalars()
        )


# --- namespaces ----------------------------------------------------------------------------


def test_a_client_key_equal_to_a_system_key_does_not_skip_the_system_step(
    client: TestClient, cast: Cast, engine: Engine
) -> None:
    request = create_request(client, cast, key=uuid.uuid4().hex)
    rid = request["id"]
    upload_all(client, cast, rid)
    # ``intake:1`` is the key the workflow's intake records for round 1.
    submitted = act(client, cast.maker_auth, rid, "submit", key="intake:1")
    assert submitted.status_code == 200, submitted.text
    # The record follows the intake: before, the intake found "its" key and wrote nothing,
    # so the record stayed ``submitted`` while the workflow moved on.
    wait_status(client, cast.officer_auth, rid, "application_review")
    assert "intake" in _audit_actions(engine, rid)
    keys = _keys(engine, rid)
    assert "client:intake:1" in keys and "system:intake:1" in keys, keys
    # The same key again is a repeat of the submit, not a refusal or a second write.
    again = act(client, cast.maker_auth, rid, "submit", key="intake:1")
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "application_review"
    assert _audit_actions(engine, rid).count("submit") == 1


# --- results ---------------------------------------------------------------------------------

ITEM = "PEN-NACL"
RESULT = {"values": ["2.1", "1.8", "2.4"], "uncertainty": "0.2", "remarks": "first"}
OTHER = RESULT | {"values": ["2.1", "1.8", "2.5"]}


def _put(client: TestClient, headers: dict[str, str], rid: str, body: Any, key: str) -> Any:
    return client.put(
        f"{API}/requests/{rid}/results/{ITEM}",
        json=body,
        headers=headers | {"Idempotency-Key": key},
    )


def _revisions(engine: Engine, rid: str, item: str) -> list[int]:
    with engine.connect() as conn:
        return sorted(
            conn.execute(
                sa.text(
                    "SELECT revision FROM test_result WHERE request_id = :id AND item_code = :i"
                ),
                {"id": rid, "i": item},
            ).scalars()
        )


def test_a_result_repeated_with_the_same_key_makes_one_revision(
    client: TestClient, cast: Cast, engine: Engine
) -> None:
    rid = to_testing(client, cast)
    key = f"result-{uuid.uuid4().hex}"
    first = _put(client, cast.tech_auth, rid, RESULT, key)
    assert first.status_code == 201, first.text
    again = _put(client, cast.tech_auth, rid, RESULT, key)  # e.g. after a 503
    assert again.status_code in (200, 201), again.text
    assert again.json()["revision"] == first.json()["revision"] == 1
    assert again.json()["recorded_at"] == first.json()["recorded_at"]
    assert _revisions(engine, rid, ITEM) == [1]
    # The same key with other values: refused, nothing recorded.
    other = _put(client, cast.tech_auth, rid, OTHER, key)
    problem = assert_problem(other, 422, "idempotency-key-reused")
    assert "Idempotency-Key" in problem["detail"]
    assert _revisions(engine, rid, ITEM) == [1]
    # A correction under a new key is a new revision, as before.
    corrected = _put(client, cast.tech_auth, rid, OTHER, uuid.uuid4().hex)
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["revision"] == 2
    assert _revisions(engine, rid, ITEM) == [1, 2]
    # Without a key every PUT is a correction (a new revision).
    plain = put_result(client, cast.tech_auth, rid, ITEM, RESULT)
    assert plain.status_code == 200 and plain.json()["revision"] == 3, plain.text


def test_a_key_of_an_action_reused_for_a_result_is_422(
    client: TestClient, cast: Cast, engine: Engine
) -> None:
    rid = to_testing(client, cast)
    key = f"shared-{uuid.uuid4().hex}"
    # The sample was received by to_testing; reuse a fresh key for a result first, then an
    # action under the same key is another body.
    assert _put(client, cast.tech_auth, rid, RESULT, key).status_code == 201
    response = act(client, cast.tech_auth, rid, "submit_results", key=key)
    assert_problem(response, 422, "idempotency-key-reused")


# --- key reuse with another body --------------------------------------------------------------


def test_an_action_key_reused_with_another_body_is_422(
    client: TestClient, cast: Cast, engine: Engine
) -> None:
    rid = to_review(client, cast)["id"]
    key = f"info-{uuid.uuid4().hex}"
    body = {"message": "Please send the test plan of your supplier."}
    first = act(client, cast.officer_auth, rid, "request_info", body, key=key)
    assert first.status_code == 200, first.text
    repeat = act(client, cast.officer_auth, rid, "request_info", body, key=key)
    assert repeat.status_code == 200, repeat.text
    other = act(client, cast.officer_auth, rid, "request_info", {"message": "Another"}, key=key)
    problem = assert_problem(other, 422, "idempotency-key-reused")
    assert "different body" in problem["detail"]
    assert _audit_actions(engine, rid).count("request_info") == 1


def _cert_act(
    client: TestClient, headers: dict[str, str], number: str, action: str, reason: str, key: str
) -> Any:
    for _ in range(100):  # 503 while the certificate's workflow continues as new
        response = client.post(
            f"{API}/certificates/{number}/actions/{action}",
            json={"reason": reason},
            headers=headers | {"Idempotency-Key": key},
        )
        if response.status_code != 503:
            return response
        time.sleep(0.1)
    return response


def test_a_certificate_action_key_reused_with_another_body_is_422(
    client: TestClient, cast: Cast, lab: Lab, engine: Engine
) -> None:
    rid = to_evaluated(client, cast, lab)
    granted = act(client, cast.officer_auth, rid, "grant")
    assert granted.status_code == 200, granted.text
    number = granted.json()["certificate_number"]
    key = f"suspend-{uuid.uuid4().hex}"
    suspended = _cert_act(client, cast.officer_auth, number, "suspend", "Finding A", key)
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    repeat = _cert_act(client, cast.officer_auth, number, "suspend", "Finding A", key)
    assert repeat.status_code == 200, repeat.text
    # The same action with another reason: before, only the action was compared (200).
    other = _cert_act(client, cast.officer_auth, number, "suspend", "Finding B", key)
    assert_problem(other, 422, "idempotency-key-reused")
    restored = _cert_act(client, cast.officer_auth, number, "restore", "Finding A", key)
    assert_problem(restored, 422, "idempotency-key-reused")
    with engine.connect() as conn:
        keys = list(
            conn.execute(
                sa.text("SELECT idempotency_key FROM request_action WHERE request_id = :id"),
                {"id": rid},
            ).scalars()
        )
    assert f"certificate:client:{key}" in keys, keys


# --- retries that end -------------------------------------------------------------------------


def _hide_reports(engine: Engine, rid: str, hidden: bool) -> None:
    """The frozen test report a certificate is issued from: superseded (gone from the
    activity's view) or current again."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE test_report SET superseded_at = "
                + ("CURRENT_TIMESTAMP" if hidden else "NULL")
                + " WHERE request_id = :id"
            ),
            {"id": rid},
        )


async def _workflow_facts(settings: Settings, engine: Engine, rid: str) -> dict[str, Any]:
    with engine.connect() as conn:
        workflow_id = conn.execute(
            sa.text("SELECT workflow_id FROM certification_request WHERE id = :id"), {"id": rid}
        ).scalar_one()
    temporal = await connect_temporal(settings)
    facts: dict[str, Any] = await temporal.get_workflow_handle(workflow_id).query("facts")
    return facts


def test_a_poison_activity_fails_the_action_clearly_and_frees_the_request(
    client: TestClient, cast: Cast, lab: Lab, engine: Engine, settings: Settings
) -> None:
    rid = to_evaluated(client, cast, lab)
    _hide_reports(engine, rid, hidden=True)
    started = time.monotonic()
    failed = act(client, cast.officer_auth, rid, "grant", key=f"grant-{uuid.uuid4().hex}")
    elapsed = time.monotonic() - started
    problem = assert_problem(failed, 500, "action-failed")
    assert "record-missing" in problem["detail"] and "test report" in problem["detail"]
    assert problem["failure_type"] == "record-missing"
    assert "Traceback" not in failed.text
    assert elapsed < 10, f"a non-retryable failure answers at once, not after {elapsed:.1f} s"
    assert get(client, cast.officer_auth, rid)["status"] == "evaluated"
    # The workflow's stage clock did not stop at the failed grant (its timers still run).
    facts = asyncio.run(_workflow_facts(settings, engine, rid))
    assert facts["status"] == "evaluated" and "evaluated" not in facts["stage_seconds"], facts
    # The lock is free and the workflow is alive: once the row is back, a grant works.
    _hide_reports(engine, rid, hidden=False)
    granted = act(client, cast.officer_auth, rid, "grant", key=f"grant-{uuid.uuid4().hex}")
    assert granted.status_code == 200, granted.text
    assert granted.json()["status"] == "certified"
    assert granted.json()["certificate_number"]
