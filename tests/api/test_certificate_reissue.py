"""A certificate's workflow switching runs (a reissue, or continue-as-new) loses nothing: an
action sent during the switch lands on the new issue, an open surveillance and its deadline
go on in the new run, and the holder hears of the reissue. Second-long durations, through
the HTTP API, on the real Temporal, S3 store and database."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from api.app import create_app
from models.certificate_lifecycle import SurveillanceOutcome
from models.lab import Certificate
from mutabaqa.clients import connect_temporal
from mutabaqa.settings import Settings
from tests.api.helpers import API
from tests.api.lab_helpers import Lab, make_lab
from tests.api.requests_helpers import Cast, make_cast
from tests.api.test_certificate_lifecycle import cert_act, issue, public_status
from tests.api.test_surveillance import run_surveillance, surveillance_request
from tests.conftest import RunningWorker
from tests.smtp import ReceivedMail, SmtpSink

pytestmark = pytest.mark.timers

#: History length past which the certificate's workflow continues as new (the lowest allowed).
THRESHOLD = 20


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


def surveilled_client(settings: Settings, deadline: float, **more: Any) -> TestClient:
    """A client whose certificates open a surveillance 2 s after issue, due ``deadline`` s
    after it opened."""
    update = {"surveillance_interval_seconds": 2.0, "surveillance_deadline_seconds": deadline}
    return TestClient(create_app(settings.model_copy(update=update | more)))


def issues(engine: Engine, number: str) -> list[tuple[int, str]]:
    with Session(engine) as session:
        rows = session.exec(
            select(Certificate).where(Certificate.number == number).order_by(col(Certificate.issue))
        ).all()
        return [(row.issue, row.status.value) for row in rows]


def wait_until(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    """Poll the database (the public page is rate-limited) until ``check`` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.02)


def workflow_state(settings: Settings, number: str) -> dict[str, Any]:
    """What the certificate's current run holds (its ``state`` query)."""

    async def query() -> dict[str, Any]:
        temporal = await connect_temporal(settings)
        state = await temporal.get_workflow_handle(f"certificate-{number}").query("state")
        return dict(state)

    return asyncio.run(query())


def wait_state(
    settings: Settings, number: str, check: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = workflow_state(settings, number)
        if check(state):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.2)


SURVEILLANCE_FIELDS = (
    "surveillance_request",
    "surveillance_due",
    "surveillance_count",
    "next_surveillance_at",
)


def test_an_action_sent_during_a_reissue_lands_on_the_new_issue(
    client: TestClient, cast: Cast, lab: Lab, engine: Engine, settings: Settings
) -> None:
    number = issue(client, cast, lab)
    answers: dict[str, Any] = {}

    def reissue() -> None:
        answers["reissue"] = client.post(
            f"{API}/certificates/{number}/actions/reissue",
            json={"reason": "Revised standard edition"},
            headers=cast.officer_auth,
        )

    thread = threading.Thread(target=reissue)
    thread.start()
    try:
        # The reissue's transaction is committed (the API now reads issue 1) while its
        # workflow run still renders the new PDF and has not switched to the new issue yet.
        wait_until("issue 1 written", lambda: len(issues(engine, number)) == 2)
        suspended = cert_act(client, cast.officer_auth, number, "suspend", "Found at the switch")
    finally:
        thread.join(120)
    reissued = answers["reissue"]
    assert reissued.status_code == 200, reissued.text
    assert suspended.status_code == 200, suspended.text
    assert (suspended.json()["issue"], suspended.json()["status"]) == (1, "suspended")
    assert issues(engine, number) == [(0, "superseded"), (1, "suspended")]
    page = public_status(client, number)
    assert (page["issue"], page["status"]) == (1, "suspended")
    # The workflow's new run holds the same status: the next action starts from it.
    state = wait_state(settings, number, lambda s: s["runs"] >= 2)
    assert state["status"] == "suspended"
    restored = cert_act(client, cast.officer_auth, number, "restore", "Corrective action closed")
    assert restored.status_code == 200, restored.text
    assert issues(engine, number) == [(0, "superseded"), (1, "active")]
    timeline = client.get(f"{API}/certificates/{number}/timeline", headers=cast.officer_auth)
    actions = [(e["action"], e["detail"]["issue"]) for e in timeline.json()["items"]]
    assert actions == [("reissue", 1), ("suspend", 1), ("restore", 1)]


def test_the_holder_is_told_of_the_reissue(
    client: TestClient, cast: Cast, lab: Lab, mailbox: SmtpSink
) -> None:
    number = issue(client, cast, lab)
    reissued = cert_act(client, cast.officer_auth, number, "reissue", "Revised standard edition")
    assert reissued.status_code == 200, reissued.text

    def notice(mail: ReceivedMail) -> bool:
        return (
            mail.message["X-Mutabaqa-Notification"] == "certificate_status"
            and number in str(mail.message["Subject"])
            and "nouvelle édition" in str(mail.message["Subject"])
        )

    mails = mailbox.wait_for(lambda mails: any(notice(m) for m in mails), timeout=30)
    (mail,) = [m for m in mails if notice(m)]
    assert mail.rcpt_tos == [cast.maker["email"]]
    assert "Revised standard edition" in mail.body
    assert f"/verify/{number}" in mail.body
    assert "إصدار جديد" in mail.body  # the Arabic half too


def test_a_reissue_during_an_open_surveillance_keeps_it_and_its_deadline(
    settings: Settings, worker: RunningWorker, cast: Cast, lab: Lab, engine: Engine
) -> None:
    with surveilled_client(settings, deadline=20.0) as short:
        number = issue(short, cast, lab)
        surveillance_request(short, cast, number)
        before = wait_state(settings, number, lambda s: s["surveillance_request"] is not None)
        assert before["surveillance_request"] == f"surveillance-{number}-1"
        reissued = cert_act(short, cast.officer_auth, number, "reissue", "Revised scope")
        assert reissued.status_code == 200, reissued.text
        after = wait_state(settings, number, lambda s: s["runs"] == before["runs"] + 1)
        assert {f: after[f] for f in SURVEILLANCE_FIELDS} == {
            f: before[f] for f in SURVEILLANCE_FIELDS
        }
        assert after["status"] == "active"
        # Nobody runs the surveillance: its deadline fires on the new issue.
        wait_until(
            "the deadline suspends issue 1",
            lambda: issues(engine, number) == [(0, "superseded"), (1, "suspended")],
            timeout=60,
        )
        assert public_status(short, number)["issue"] == 1
        timeline = short.get(f"{API}/certificates/{number}/timeline", headers=cast.officer_auth)
        last = timeline.json()["items"][-1]
        assert (last["action"], last["actor"]) == ("suspend", "system")
        assert last["detail"]["reason"] == "surveillance not completed by its deadline"
        assert last["detail"]["issue"] == 1


def test_continue_as_new_carries_the_status_and_the_open_surveillance(
    settings: Settings, worker: RunningWorker, cast: Cast, lab: Lab, engine: Engine
) -> None:
    with surveilled_client(
        settings, deadline=300.0, certificate_history_threshold=THRESHOLD
    ) as short:
        number = issue(short, cast, lab)
        request = surveillance_request(short, cast, number)
        before = wait_state(settings, number, lambda s: s["surveillance_request"] is not None)
        # Suspend and restore until the workflow has continued as new, then suspend once more.
        for n in range(40):
            action = "suspend" if n % 2 == 0 else "restore"
            response = cert_act(short, cast.officer_auth, number, action, f"cycle {n}")
            assert response.status_code == 200, response.text
            if n % 2 == 0 and workflow_state(settings, number)["runs"] > before["runs"]:
                break
        carried = workflow_state(settings, number)
        assert carried["runs"] > before["runs"]  # it continued as new
        assert carried["status"] == "suspended"
        assert {f: carried[f] for f in SURVEILLANCE_FIELDS} == {
            f: before[f] for f in SURVEILLANCE_FIELDS
        }
        assert carried["suspension_reason"] == f"cycle {n}"
        assert carried["actions_seen"] == n + 1
        # The new run still knows the open surveillance: its failure suspends the certificate.
        restored = cert_act(short, cast.officer_auth, number, "restore", "Corrective action")
        assert restored.status_code == 200, restored.text
        run_surveillance(short, cast, lab, request["id"], passing=False)
        wait_until(
            "the failed surveillance suspends",
            lambda: issues(engine, number) == [(0, "suspended")],
            timeout=60,
        )
        timeline = short.get(f"{API}/certificates/{number}/timeline", headers=cast.officer_auth)
        last = timeline.json()["items"][-1]
        assert (last["action"], last["detail"]["reason"]) == ("suspend", "surveillance failed")


def test_a_surveillance_outcome_during_a_reissue_lands_on_the_new_issue(
    settings: Settings, worker: RunningWorker, cast: Cast, lab: Lab, engine: Engine
) -> None:
    with surveilled_client(settings, deadline=300.0) as short:
        number = issue(short, cast, lab)
        surveillance_request(short, cast, number)
        open_request = wait_state(
            settings, number, lambda s: s["surveillance_request"] is not None
        )["surveillance_request"]
        answers: dict[str, Any] = {}

        def reissue() -> None:
            answers["reissue"] = cert_act(short, cast.officer_auth, number, "reissue", "Scope")

        async def report_failure() -> None:
            temporal = await connect_temporal(settings)
            await temporal.get_workflow_handle(f"certificate-{number}").signal(
                "surveillance_outcome",
                SurveillanceOutcome(request_workflow_id=open_request, passed=False, status="x"),
            )

        thread = threading.Thread(target=reissue)
        thread.start()
        try:
            # As the surveillance request would, while the workflow switches to issue 1.
            wait_until("issue 1 written", lambda: len(issues(engine, number)) == 2)
            asyncio.run(report_failure())
        finally:
            thread.join(120)
        assert answers["reissue"].status_code == 200, answers["reissue"].text
        wait_until(
            "the failed surveillance suspends issue 1",
            lambda: issues(engine, number) == [(0, "superseded"), (1, "suspended")],
        )
        state = wait_state(settings, number, lambda s: s["status"] == "suspended")
        assert state["surveillance_request"] is None and state["pending_outcomes"] == []
        timeline = short.get(f"{API}/certificates/{number}/timeline", headers=cast.officer_auth)
        last = timeline.json()["items"][-1]
        assert (last["action"], last["detail"]["issue"]) == ("suspend", 1)
        assert last["detail"]["reason"] == "surveillance failed"
