"""The outbox: side effects never block a lifecycle; failed ones end in a visible dead letter
an operator replays (each delivered once); the grant is one transaction; a surveillance
outcome for a closed certificate workflow changes nothing else.

A worker of its own sends mail to a port where nothing listens (SMTP down) and gives up on
each effect after 3 quick attempts (``outbox_*`` settings)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from activities.notifications import message_id_for
from api.app import create_app
from models.outbox import EffectKind, OutboxStatus, OutboxView
from mutabaqa.clients import connect_temporal
from mutabaqa.settings import Settings
from records.outbox import get, listing
from tests.api.helpers import API
from tests.api.lab_helpers import FAILING_PARAFFIN, Lab, make_lab, record_all, to_evaluated
from tests.api.requests_helpers import Cast, act, make_cast
from tests.api.test_certificate_lifecycle import cert_act
from tests.api.test_surveillance import surveillance_request
from tests.conftest import RunningWorker, start_worker
from tests.smtp import SmtpSink, free_port

pytestmark = pytest.mark.timers

ATTEMPTS = 3


@pytest.fixture(scope="module")
def smtp_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def down(settings: Settings, smtp_port: int) -> Settings:
    return settings.model_copy(
        update={
            "smtp_port": smtp_port,
            "temporal_task_queue": f"outbox-{uuid.uuid4().hex[:8]}",
            "outbox_max_attempts": ATTEMPTS,
            "outbox_initial_interval_seconds": 0.2,
            "outbox_maximum_interval_seconds": 0.5,
            "decision_target_seconds": 2.0,
            "surveillance_interval_seconds": 2.0,
        }
    )


@pytest.fixture(scope="module")
def down_worker(down: Settings) -> Iterator[RunningWorker]:
    running = start_worker(down)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def client(down: Settings, down_worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(down)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


@pytest.fixture(scope="module")
def lab(client: TestClient, cast: Cast) -> Lab:
    return make_lab(client, cast)


def outbox_cli(settings: Settings, *args: str) -> str:
    """``mutabaqa outbox ...`` as an operator runs it; its standard output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUTABAQA_")}
    env |= {
        "MUTABAQA_ENV": "development",  # the test deployment's development keys
        "MUTABAQA_DATABASE_URL": settings.resolved_database_url,
        "MUTABAQA_TEMPORAL_ADDRESS": settings.resolved_temporal_address,
        "MUTABAQA_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "MUTABAQA_OUTBOX_MAX_ATTEMPTS": str(settings.outbox_max_attempts),
        "MUTABAQA_OUTBOX_INITIAL_INTERVAL_SECONDS": str(settings.outbox_initial_interval_seconds),
        "MUTABAQA_OUTBOX_MAXIMUM_INTERVAL_SECONDS": str(settings.outbox_maximum_interval_seconds),
    }
    done = subprocess.run(
        [sys.executable, "-m", "mutabaqa", "outbox", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def replayed(output: str) -> list[str]:
    return sorted(line.strip() for line in output.splitlines()[1:] if line.strip())


def workflow_of(engine: Engine, request_id: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.text("SELECT workflow_id FROM certification_request WHERE id = :id"),
                {"id": request_id},
            ).scalar_one()
        )


def request_status(engine: Engine, request_id: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.text("SELECT status FROM certification_request WHERE id = :id"),
                {"id": request_id},
            ).scalar_one()
        )


def rows_about(engine: Engine, *marks: str) -> list[OutboxView]:
    return [row for row in listing(engine) if any(mark in row.dedupe_key for mark in marks)]


def wait_rows(
    engine: Engine, marks: tuple[str, ...], settled: int, timeout: float = 60
) -> list[OutboxView]:
    """Wait until at least ``settled`` rows about ``marks`` are no longer pending."""
    deadline = time.monotonic() + timeout
    while True:
        rows = rows_about(engine, *marks)
        done = [row for row in rows if row.status is not OutboxStatus.PENDING]
        if len(done) >= settled and len(done) == len(rows):
            return rows
        assert time.monotonic() < deadline, [(r.dedupe_key, r.status) for r in rows]
        time.sleep(0.3)


def test_smtp_and_webhook_down_block_nothing_and_replay_delivers_once(
    client: TestClient,
    cast: Cast,
    lab: Lab,
    down: Settings,
    engine: Engine,
    smtp_port: int,
) -> None:
    # the holder's webhook points where nothing listens
    hook = client.put(
        f"{API}/webhook",
        json={"url": f"http://127.0.0.1:{free_port()}/hook"},
        headers=cast.maker_auth,
    )
    assert hook.status_code == 201, hook.text
    rid = to_evaluated(client, cast, lab)
    started = time.monotonic()
    granted = act(client, cast.officer_auth, rid, "grant")
    assert granted.status_code == 200, granted.text
    number = str(granted.json()["certificate_number"])
    suspended = cert_act(client, cast.officer_auth, number, "suspend")
    assert suspended.status_code == 200, suspended.text
    restored = cert_act(client, cast.officer_auth, number, "restore", "Corrective action closed")
    assert restored.status_code == 200, restored.text
    assert time.monotonic() - started < 15  # at once, although no mail can leave

    async def request_result() -> object:
        client_ = await connect_temporal(down)
        handle = client_.get_workflow_handle(workflow_of(engine, rid))
        return await asyncio.wait_for(handle.result(), timeout=30)

    asyncio.run(request_result())  # the request's workflow has closed

    wid = workflow_of(engine, rid)
    marks = (wid, f"certificate-{number}:")
    # mails of the request (accept, grant...) and of the certificate (suspend, restore), and
    # the certificate's two webhook events: all in the dead letter after bounded retries
    rows = wait_rows(engine, marks, settled=5)
    mails = [row for row in rows if row.kind is EffectKind.EMAIL]
    hooks = [row for row in rows if row.kind is EffectKind.WEBHOOK]
    assert len(hooks) == 2 and all(row.status is OutboxStatus.DEAD for row in hooks)
    dead_mails = [row for row in mails if row.status is OutboxStatus.DEAD]
    assert len(dead_mails) >= 3, [(r.dedupe_key, r.status) for r in mails]
    assert all(row.attempts == ATTEMPTS and row.last_error for row in dead_mails)
    log = client.get(f"{API}/webhook/deliveries", headers=cast.maker_auth).json()["items"]
    assert sorted(d["status"] for d in log if number in d["event_id"]) == ["failed", "failed"]
    listed = outbox_cli(down, "list", "--status", "dead")
    assert all(row.id in listed and "SmtpUnavailable" in listed for row in dead_mails)
    # the PDF and the certificate's workflow were delivered all the same
    assert {r.kind for r in rows if r.status is OutboxStatus.DELIVERED} >= {
        EffectKind.CERTIFICATE_PDF,
        EffectKind.START_CERTIFICATE_WORKFLOW,
    }

    public = client.get(f"/verify/{number}", headers={"Accept": "application/json"}).json()
    assert public["pdf_pending"] is False  # its outbox row is delivered: the PDF is stored
    pdf = client.get(f"{API}/certificates/{number}/pdf", headers=cast.maker_auth,
                     follow_redirects=False)  # fmt: skip
    assert pdf.status_code in (302, 303, 307), pdf.text

    with SmtpSink(port=smtp_port) as sink:  # SMTP is back
        ids = [row.id for row in dead_mails]
        assert replayed(outbox_cli(down, "replay", *ids)) == sorted(ids)
        assert replayed(outbox_cli(down, "replay", *ids)) == []  # pending: not reset twice
        deadline = time.monotonic() + 60
        while not all(
            (row := get(engine, row_id)) is not None and row.status is OutboxStatus.DELIVERED
            for row_id in ids
        ):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert replayed(outbox_cli(down, "replay", *ids)) == []  # delivered: never replayed
        time.sleep(1.0)
        wanted = {
            message_id_for(str(row.payload["dedupe_key"]))
            for row in map(lambda i: get(engine, i), ids)
            if row is not None
        }
        received = [str(mail.message["Message-ID"]) for mail in sink.messages]
        assert sorted(received) == sorted(wanted)  # each exactly once
    assert all(
        row.status is OutboxStatus.DEAD
        for row in rows_about(engine, *marks)
        if row.kind is EffectKind.WEBHOOK
    )


def test_verify_never_shows_an_active_certificate_of_a_request_not_certified(
    client: TestClient, cast: Cast, lab: Lab, engine: Engine
) -> None:
    rid = to_evaluated(client, cast, lab)
    seen: list[tuple[str, str]] = []
    recorded: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with engine.connect() as conn:
                found = conn.execute(
                    sa.text(
                        "SELECT c.number, r.status FROM certificate c "
                        "JOIN certification_request r ON r.id = c.request_id WHERE r.id = :id"
                    ),
                    {"id": rid},
                ).first()
            number = None if found is None else found[0]
            if found is not None:
                recorded.append(str(found[1]))  # one snapshot: certificate and request
            if number is not None:
                body = client.get(f"/verify/{number}", headers={"Accept": "application/json"})
                if body.status_code == 200 and body.json()["status"] == "active":
                    seen.append((body.json()["status"], request_status(engine, rid)))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        granted = act(client, cast.officer_auth, rid, "grant")
        assert granted.status_code == 200, granted.text
        time.sleep(0.5)
    finally:
        stop.set()
        watcher.join(10)
    assert seen, "the watcher never saw the certificate"
    assert all(status == "certified" for _, status in seen), seen
    assert recorded and set(recorded) == {"certified"}, recorded
    # the watcher may have used up the public page's rate limit: no further check here


def test_surveillance_outcome_for_a_closed_certificate_changes_nothing_else(
    client: TestClient, cast: Cast, lab: Lab, engine: Engine, down: Settings
) -> None:
    rid = to_evaluated(client, cast, lab)
    granted = act(client, cast.officer_auth, rid, "grant")
    assert granted.status_code == 200, granted.text
    number = str(granted.json()["certificate_number"])
    surveillance = surveillance_request(client, cast, number)
    withdrawn = cert_act(client, cast.officer_auth, number, "withdraw")  # its workflow closes
    assert withdrawn.status_code == 200, withdrawn.text

    async def closed() -> None:
        client_ = await connect_temporal(down)
        await asyncio.wait_for(
            client_.get_workflow_handle(f"certificate-{number}").result(), timeout=30
        )

    asyncio.run(closed())
    sid = surveillance["id"]
    assert (
        act(
            client,
            cast.tech_auth,
            sid,
            "receive_sample",
            {"sample_ref": "SURV-1", "condition": "Bought on the market"},
        ).status_code
        == 200
    )
    record_all(client, cast.tech_auth, sid, {"PEN-PARAFFIN": FAILING_PARAFFIN})
    assert act(client, cast.tech_auth, sid, "submit_results").status_code == 200
    assert act(client, lab.verifier_auth, sid, "verify_results").status_code == 200
    refused = act(client, cast.officer_auth, sid, "refuse", {"reason": "Penetration too high"})
    assert refused.status_code == 200 and refused.json()["status"] == "refused", refused.text

    swid = workflow_of(engine, sid)
    rows = wait_rows(engine, (f"surveillance-outcome:{swid}",), settled=1)
    assert [row.status for row in rows] == [OutboxStatus.DEAD]
    assert "has closed" in (rows[0].last_error or "")
    time.sleep(3.0)  # past the decision target: a workflow stuck in evaluated would escalate

    async def facts() -> dict[str, object]:
        client_ = await connect_temporal(down)
        result: dict[str, object] = await client_.get_workflow_handle(swid).query("facts")
        return result

    assert asyncio.run(facts())["status"] == "refused"
    assert request_status(engine, sid) == "refused"
    timeline = client.get(f"{API}/requests/{sid}/timeline", headers=cast.officer_auth).json()
    actions = [item["action"] for item in timeline["items"]]
    assert "escalation" not in actions[actions.index("refuse") :]  # none afterwards
    status = client.get(f"/verify/{number}", headers={"Accept": "application/json"}).json()
    assert status["status"] == "withdrawn"
