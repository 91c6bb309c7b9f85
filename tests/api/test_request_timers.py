"""Deadlines and stage targets on durable timers, with second-long durations."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from mutabaqa.settings import Settings
from tests.api.helpers import API
from tests.api.requests_helpers import Cast, act, make_cast, to_review, wait_status
from tests.conftest import RunningWorker


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "info_response_seconds": 4.0,
            "info_reminder_fraction": 0.5,
            "sample_receipt_target_seconds": 2.0,
            "testing_target_seconds": 600.0,
        }
    )


@pytest.fixture
def client(fast_settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(fast_settings)) as test_client:
        yield test_client


@pytest.fixture
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


def timeline(client: TestClient, cast: Cast, rid: str) -> list[dict[str, object]]:
    response = client.get(f"{API}/requests/{rid}/timeline", headers=cast.officer_auth)
    assert response.status_code == 200
    return list(response.json()["items"])


def test_unanswered_information_request_is_reminded_then_lapses(
    client: TestClient, cast: Cast
) -> None:
    rid = to_review(client, cast)["id"]
    asked = act(client, cast.officer_auth, rid, "request_info", {"message": "Test report?"})
    assert asked.status_code == 200

    time.sleep(1.0)
    assert [e["action"] for e in timeline(client, cast, rid)].count("reminder") == 0

    lapsed = wait_status(client, cast.maker_auth, rid, "lapsed", timeout=30)
    assert lapsed["allowed_actions"] == []
    events = timeline(client, cast, rid)
    actions = [e["action"] for e in events]
    assert actions.count("reminder") == 1
    assert actions.index("request_info") < actions.index("reminder") < actions.index("lapse")
    lapse = events[actions.index("lapse")]
    assert (lapse["from_status"], lapse["to_status"], lapse["actor"]) == (
        "info_requested",
        "lapsed",
        "system",
    )
    late = act(client, cast.maker_auth, rid, "respond", {"message": "Too late"})
    assert late.status_code == 409
    assert late.json()["request_status"] == "lapsed"


def test_answered_in_time_neither_reminds_nor_lapses(client: TestClient, cast: Cast) -> None:
    rid = to_review(client, cast)["id"]
    assert act(client, cast.officer_auth, rid, "request_info", {"message": "?"}).status_code == 200
    assert act(client, cast.maker_auth, rid, "respond", {"message": "!"}).status_code == 200
    time.sleep(5.0)  # past both the reminder and the deadline
    actions = [e["action"] for e in timeline(client, cast, rid)]
    assert "reminder" not in actions and "lapse" not in actions
    assert wait_status(client, cast.officer_auth, rid, "application_review")


def test_overrun_sample_receipt_escalates_exactly_once(client: TestClient, cast: Cast) -> None:
    rid = to_review(client, cast)["id"]
    assert act(client, cast.officer_auth, rid, "accept", {}).status_code == 200
    time.sleep(5.0)  # more than twice the 2 s target
    events = timeline(client, cast, rid)
    escalations = [e for e in events if e["action"] == "escalation"]
    assert len(escalations) == 1
    assert escalations[0]["detail"]["stage"] == "awaiting_sample"  # type: ignore[index]
    assert escalations[0]["to_status"] == escalations[0]["from_status"] == "awaiting_sample"
    # The state did not change, and receiving the sample works as usual.
    received = act(client, cast.tech_auth, rid, "receive_sample",
                   {"sample_ref": "S-1", "condition": "ok"})  # fmt: skip
    assert received.status_code == 200
    assert received.json()["status"] == "testing"
    time.sleep(1.0)
    assert [e["action"] for e in timeline(client, cast, rid)].count("escalation") == 1


def test_stage_finished_in_time_raises_no_escalation(client: TestClient, cast: Cast) -> None:
    rid = to_review(client, cast)["id"]
    assert act(client, cast.officer_auth, rid, "accept", {}).status_code == 200
    received = act(client, cast.tech_auth, rid, "receive_sample",
                   {"sample_ref": "S-2", "condition": "ok"})  # fmt: skip
    assert received.status_code == 200
    time.sleep(3.0)
    assert "escalation" not in [e["action"] for e in timeline(client, cast, rid)]
    assert received.json()["stage_seconds"]["awaiting_sample"] < 2.0
