"""Deadlines and stage targets on durable timers, with second-long durations.

Margins hold on a loaded 2-core machine: what must happen is awaited (polled with a
generous bound), and what must not happen is checked only once the server's own deadline
(read from the API, not assumed) is well past.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from mutabaqa.settings import Settings
from tests.api.helpers import API
from tests.api.requests_helpers import Cast, act, make_cast, to_review, wait_status
from tests.conftest import RunningWorker

pytestmark = pytest.mark.timers

INFO_RESPONSE = 6.0  # the reminder comes at half of it
SAMPLE_TARGET = 3.0
#: Past a deadline, how long the timer's effect gets to show (a loaded machine is slow).
MARGIN = 3.0


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "info_response_seconds": INFO_RESPONSE,
            "info_reminder_fraction": 0.5,
            "sample_receipt_target_seconds": SAMPLE_TARGET,
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


def wait_timeline(
    client: TestClient,
    cast: Cast,
    rid: str,
    done: Callable[[list[str]], bool],
    timeout: float = 60,
) -> list[dict[str, object]]:
    """The timeline, once ``done(actions)`` holds (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        events = timeline(client, cast, rid)
        if done([str(e["action"]) for e in events]) or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def sleep_until(instant: datetime) -> None:
    """Sleep until ``instant`` (a server time on this machine's clock) plus the margin."""
    time.sleep(max(0.0, (instant - datetime.now(UTC)).total_seconds() + MARGIN))


def at(event: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(event["at"]).replace("Z", "+00:00"))


def test_unanswered_information_request_is_reminded_then_lapses(
    client: TestClient, cast: Cast
) -> None:
    rid = to_review(client, cast)["id"]
    asked = act(client, cast.officer_auth, rid, "request_info", {"message": "Test report?"})
    assert asked.status_code == 200
    # Right after the request, no reminder yet (it comes at half of the 6 s).
    assert [e["action"] for e in timeline(client, cast, rid)].count("reminder") == 0

    lapsed = wait_status(client, cast.maker_auth, rid, "lapsed", timeout=60)
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
    asked = act(client, cast.officer_auth, rid, "request_info", {"message": "?"})
    assert asked.status_code == 200
    due = datetime.fromisoformat(asked.json()["info_due_at"].replace("Z", "+00:00"))
    assert act(client, cast.maker_auth, rid, "respond", {"message": "!"}).status_code == 200
    sleep_until(due)  # past both the reminder and the deadline, with a margin
    actions = [e["action"] for e in timeline(client, cast, rid)]
    assert "reminder" not in actions and "lapse" not in actions
    assert wait_status(client, cast.officer_auth, rid, "application_review")


def test_overrun_sample_receipt_escalates_exactly_once(client: TestClient, cast: Cast) -> None:
    rid = to_review(client, cast)["id"]
    assert act(client, cast.officer_auth, rid, "accept", {}).status_code == 200
    events = wait_timeline(client, cast, rid, lambda actions: "escalation" in actions)
    escalations = [e for e in events if e["action"] == "escalation"]
    assert len(escalations) == 1
    assert escalations[0]["detail"]["stage"] == "awaiting_sample"  # type: ignore[index]
    assert escalations[0]["to_status"] == escalations[0]["from_status"] == "awaiting_sample"
    # The state did not change, and receiving the sample works as usual.
    received = act(client, cast.tech_auth, rid, "receive_sample",
                   {"sample_ref": "S-1", "condition": "ok"})  # fmt: skip
    assert received.status_code == 200
    assert received.json()["status"] == "testing"
    # Once more than a whole target has passed since the escalation, still only that one.
    sleep_until(at(escalations[0]) + timedelta(seconds=SAMPLE_TARGET))
    assert [e["action"] for e in timeline(client, cast, rid)].count("escalation") == 1


ROOMY_TARGET = 8.0  # taking the sample fits in it even on a loaded machine


@pytest.fixture
def roomy_client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    roomy = settings.model_copy(update={"sample_receipt_target_seconds": ROOMY_TARGET})
    with TestClient(create_app(roomy)) as test_client:
        yield test_client


def test_stage_finished_in_time_raises_no_escalation(
    roomy_client: TestClient, settings: Settings
) -> None:
    client = roomy_client
    cast = make_cast(client, settings)
    rid = to_review(client, cast)["id"]
    assert act(client, cast.officer_auth, rid, "accept", {}).status_code == 200
    received = act(client, cast.tech_auth, rid, "receive_sample",
                   {"sample_ref": "S-2", "condition": "ok"})  # fmt: skip
    assert received.status_code == 200
    assert received.json()["stage_seconds"]["awaiting_sample"] < ROOMY_TARGET
    accepted = next(e for e in timeline(client, cast, rid) if e["action"] == "accept")
    sleep_until(at(accepted) + timedelta(seconds=ROOMY_TARGET))  # past the target, margin
    assert "escalation" not in [e["action"] for e in timeline(client, cast, rid)]
