"""A worker killed (SIGKILL) while suspending a certificate: the new status and its audit
event are committed, the activity has not reported back. A new worker finishes the
suspension, and nothing is recorded or mailed twice.

The workers are real ``mutabaqa worker`` processes on a task queue of this test's own. A
first one, without any fault, brings a request to ``certified`` (so the certificate has its
workflow) and is stopped cleanly. The next one pauses inside
``apply_certificate_transition`` after its transaction committed (the fault-injection seam
``MUTABAQA_FAULT_PAUSE_AFTER_CERTIFICATE_SECONDS``); the test kills it there and starts a
third one without the fault.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.app import create_app
from domain.keys import client_key
from models.audit import AuditEvent
from models.lab import Certificate, CertificateStatus
from models.requests import ActionRecord
from mutabaqa.clients import connect_temporal
from mutabaqa.settings import Settings
from records.audit import verify_chain
from records.certificates import certificate_chain, transition_key
from tests.api.helpers import API, Headers
from tests.api.lab_helpers import make_lab, to_evaluated
from tests.api.requests_helpers import act, make_cast
from tests.mutabaqa.test_worker_crash import (
    PAUSE_SECONDS,
    RECOVERY_SECONDS,
    processes,  # noqa: F401  (fixture: every worker started is stopped by its PID)
    start_worker_process,
    stop_process,
    wait_for,
    worker_env,
)
from tests.smtp import ReceivedMail, SmtpSink
from workflows.certificate import certificate_workflow_id

#: The API gives up on the workflow's answer after this long (503 + Retry-After).
ANSWER_SECONDS = 3.0
TRANSITION_ACTIVITY = "apply_certificate_transition"


@pytest.fixture
def crash_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"temporal_task_queue": f"cert-crash-{uuid.uuid4().hex}"})


@dataclass(frozen=True)
class ActivityRun:
    """One scheduled activity in a workflow's history: the attempt that was last started,
    the failure of the attempt before it, and whether it completed."""

    attempt: int
    last_failure: str
    completed: bool


async def _activity_runs(settings: Settings, workflow_id: str, name: str) -> list[ActivityRun]:
    client = await connect_temporal(settings)
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled = {
        event.event_id
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
        and event.activity_task_scheduled_event_attributes.activity_type.name == name
    }
    completed = {
        event.activity_task_completed_event_attributes.scheduled_event_id
        for event in history.events
        if event.HasField("activity_task_completed_event_attributes")
    }
    return [
        ActivityRun(
            attrs.attempt, attrs.last_failure.message, attrs.scheduled_event_id in completed
        )
        for event in history.events
        if event.HasField("activity_task_started_event_attributes")
        and (attrs := event.activity_task_started_event_attributes).scheduled_event_id in scheduled
    ]


async def _workflow_status(settings: Settings, workflow_id: str) -> WorkflowExecutionStatus | None:
    """The workflow's status, or None while it has not been started (the outbox starts a
    certificate's workflow after the grant is committed, so it may still be on its way)."""
    client = await connect_temporal(settings)
    try:
        return (await client.get_workflow_handle(workflow_id).describe()).status
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None
        raise


async def _polling(settings: Settings, pid: int) -> bool:
    """Whether worker process ``pid`` polls the test's task queue for both workflow and
    activity tasks (a worker's default identity is ``<pid>@<host>``)."""
    client = await connect_temporal(settings)
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        described = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=settings.temporal_namespace,
                task_queue=TaskQueue(name=settings.temporal_task_queue),
                task_queue_type=kind,
            )
        )
        if not any(p.identity.startswith(f"{pid}@") for p in described.pollers):
            return False
    return True


def start_polling_worker(
    settings: Settings, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    proc = start_worker_process(env, log)
    try:
        wait_for(
            f"worker {proc.pid} polling", lambda: asyncio.run(_polling(settings, proc.pid)), 60, log
        )
    except AssertionError:
        stop_process(proc)
        raise
    return proc


def certificate_status(engine: Engine, number: str) -> CertificateStatus:
    with Session(engine) as session:
        row = session.exec(
            select(Certificate)
            .where(Certificate.number == number)
            .order_by(col(Certificate.issue).desc())
        ).first()
        assert row is not None, f"no certificate {number}"
        return row.status


def suspend(client: TestClient, headers: Headers, number: str, key: str) -> Response:
    response: Response = client.post(
        f"{API}/certificates/{number}/actions/suspend",
        json={"reason": "Non-conforming units found on the market"},
        headers=headers | {"Idempotency-Key": key},
    )
    return response


def status_mails(mailbox: SmtpSink, number: str, status_word: str) -> list[ReceivedMail]:
    """The certificate-status e-mails about ``number`` that announce ``status_word``."""
    return [
        m
        for m in mailbox.messages
        if m.message["X-Mutabaqa-Notification"] == "certificate_status"
        and number in str(m.message["Subject"])
        and status_word in str(m.message["Subject"])
        and number in m.body
        and status_word in m.body
    ]


def test_worker_killed_after_the_suspension_commit_suspends_once(
    crash_settings: Settings,
    engine: Engine,
    mailbox: SmtpSink,
    processes: list[subprocess.Popen[bytes]],  # noqa: F811  (the imported fixture)
    tmp_path: Path,
) -> None:
    log = tmp_path / "workers.log"

    # A certificate, issued by a worker without any fault.
    healthy = start_worker_process(worker_env(crash_settings), log)
    processes.append(healthy)
    with TestClient(create_app(crash_settings)) as client:
        cast = make_cast(client, crash_settings)
        rid = to_evaluated(client, cast, make_lab(client, cast))
        granted = act(client, cast.officer_auth, rid, "grant")
        assert granted.status_code == 200, granted.text
        number = granted.json()["certificate_number"]
        request_number = granted.json()["number"]
    workflow_id = certificate_workflow_id(number)
    assert (
        wait_for(
            "certificate workflow started by the outbox",
            lambda: asyncio.run(_workflow_status(crash_settings, workflow_id)),
            60,
            log,
        )
        is WorkflowExecutionStatus.RUNNING
    )
    mailbox.wait_for(  # the grant's own notification is out: nothing is left in flight
        lambda mails: any(
            m.message["X-Mutabaqa-Request"] == request_number
            and m.message["X-Mutabaqa-Notification"] == "certified"
            for m in mails
        ),
        timeout=30,
    )
    stop_process(healthy)
    assert healthy.returncode == 0  # SIGTERM: a graceful shutdown

    # A worker that pauses after committing a certificate's status change.
    paused = start_polling_worker(
        crash_settings,
        worker_env(crash_settings, fault_pause_after_certificate_seconds=PAUSE_SECONDS),
        log,
    )
    processes.append(paused)

    hasty = crash_settings.model_copy(update={"workflow_answer_seconds": ANSWER_SECONDS})
    with TestClient(create_app(hasty)) as client:
        assert certificate_status(engine, number) is CertificateStatus.ACTIVE
        key = f"suspend-{uuid.uuid4().hex}"
        answers: list[Response] = []
        suspending = threading.Thread(
            target=lambda: answers.append(suspend(client, cast.officer_auth, number, key)),
            daemon=True,
        )
        suspending.start()

        # The suspension is committed and the activity has not completed: kill the worker.
        wait_for(
            "suspension committed",
            lambda: certificate_status(engine, number) is CertificateStatus.SUSPENDED,
            60,
            log,
        )
        os.kill(paused.pid, signal.SIGKILL)
        assert paused.wait(10) == -signal.SIGKILL
        assert status_mails(mailbox, number, "suspendu") == []  # told only once it is done

        # Meanwhile the officer was told to try again later (the workflow could not answer).
        suspending.join(ANSWER_SECONDS + 30)
        assert not suspending.is_alive()
        assert answers[0].status_code == 503, answers[0].text
        assert answers[0].headers["Retry-After"]

        # A new worker (no fault) takes over: the retried activity finds the suspension.
        second = start_polling_worker(crash_settings, worker_env(crash_settings), log)
        processes.append(second)

        # The officer retries with the same Idempotency-Key until the answer is the outcome.
        def retried() -> Response | None:
            response = suspend(client, cast.officer_auth, number, key)
            if response.status_code == 503:
                time.sleep(1)
                return None
            return response

        retry: Response = wait_for("the retry answered", retried, RECOVERY_SECONDS, log)
        assert retry.status_code == 200, retry.text
        assert (retry.json()["number"], retry.json()["status"]) == (number, "suspended")

        public = client.get(f"/verify/{number}", headers={"Accept": "application/json"})
        assert public.status_code == 200, public.text
        assert (public.json()["number"], public.json()["status"]) == (number, "suspended")

        # The workflow finished the suspension: the activity ran a second time (after the
        # first attempt timed out), and that attempt found the committed transaction.
        runs: list[ActivityRun] = wait_for(
            "suspension completed in the workflow",
            lambda: [
                run
                for run in asyncio.run(
                    _activity_runs(crash_settings, workflow_id, TRANSITION_ACTIVITY)
                )
                if run.completed
            ],
            RECOVERY_SECONDS,
            log,
        )
        assert len(runs) == 1, runs
        assert runs[0].attempt >= 2 and "timeout" in runs[0].last_failure.lower(), runs
        assert certificate_status(engine, number) is CertificateStatus.SUSPENDED

    # The suspension is on record once, the key once, and the chain is intact.
    chain = certificate_chain(number)
    with Session(engine) as session:
        events = session.exec(
            select(AuditEvent).where(AuditEvent.chain == chain).order_by(col(AuditEvent.seq))
        ).all()
        assert [e.action for e in events].count("suspend") == 1, [e.action for e in events]
        (event,) = [e for e in events if e.action == "suspend"]
        assert (event.from_status, event.to_status) == ("active", "suspended")
        assert event.actor_id == cast.officer["id"]
        assert verify_chain(session, chain) is None
        recorded = session.exec(
            select(func.count())
            .select_from(ActionRecord)
            .where(ActionRecord.idempotency_key == transition_key(client_key(key)))
        ).one()
        assert recorded == 1

    # The holder is told once.
    mailbox.wait_for(lambda _: len(status_mails(mailbox, number, "suspendu")) >= 1, timeout=30)
    time.sleep(3)  # a duplicate would arrive right behind the first
    mails = status_mails(mailbox, number, "suspendu")
    assert len(mails) == 1, [m.message["Subject"] for m in mails]
    assert mails[0].rcpt_tos == [cast.maker["email"]]

    stop_process(second)
    assert second.returncode == 0  # SIGTERM: a graceful shutdown
