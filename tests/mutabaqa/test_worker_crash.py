"""A worker killed (SIGKILL) while issuing a certificate: the certificate row is committed,
the activity has not reported back. A new worker finishes the request, and nothing is issued,
numbered, recorded or mailed twice.

The workers are real ``mutabaqa worker`` processes on a task queue of this test's own, so
the session's in-process worker never sees these tasks. The first one pauses inside
``issue_certificate`` after its transaction committed (the fault-injection seam
``MUTABAQA_FAULT_PAUSE_AFTER_CERTIFICATE_SECONDS``); the test kills it there.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from httpx import Response
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session

from api.app import create_app
from models.audit import request_chain
from mutabaqa.clients import connect_temporal
from mutabaqa.settings import Settings
from records.audit import verify_chain
from tests.api.lab_helpers import make_lab, to_evaluated
from tests.api.requests_helpers import act, get, make_cast
from tests.smtp import SmtpSink

ROOT = Path(__file__).resolve().parents[2]
#: The first worker sleeps this long after committing the certificate: the window to kill it.
PAUSE_SECONDS = 30
#: The activity's start-to-close timeout (30 s) must pass before Temporal retries it
#: elsewhere, and the workflow's sticky queue on the dead worker must time out: allow both.
RECOVERY_SECONDS = 120


def worker_env(settings: Settings, **overrides: object) -> dict[str, str]:
    """The environment of a ``mutabaqa worker`` configured exactly like ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MUTABAQA_")}
    as_json = settings.model_dump(mode="json")
    for name, value in (settings.model_dump() | overrides).items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, list | tuple | set | dict):
            text = json.dumps(as_json[name])  # complex settings are JSON in the environment
        else:
            text = str(value)
        env[f"MUTABAQA_{name.upper()}"] = text
    return env


def test_the_worker_environment_reproduces_the_settings(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [key for key in os.environ if key.startswith("MUTABAQA_")]:
        monkeypatch.delenv(key)
    for key, value in worker_env(settings).items():
        if key.startswith("MUTABAQA_"):
            monkeypatch.setenv(key, value)
    assert Settings() == settings


def _die_with_parent() -> None:  # in the child, between fork and exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_worker_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mutabaqa", "worker"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (graceful worker shutdown), then SIGKILL; only this process, by its PID."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_for(what: str, predicate: Callable[[], Any], timeout: float, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    raise AssertionError(f"{what}: not within {timeout} s; worker log:\n{tail}")


@pytest.fixture
def crash_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"temporal_task_queue": f"crash-{uuid.uuid4().hex}"})


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every worker process this test starts; whatever happens, each is stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            stop_process(proc)


async def _issue_attempts(settings: Settings, workflow_id: str) -> list[tuple[int, str]]:
    """Each completed ``issue_certificate`` in the history: (attempt, the previous failure)."""
    client = await connect_temporal(settings)
    handle = client.get_workflow_handle(workflow_id)
    # The record says certified as soon as the grant's transaction commits; the workflow
    # follows once the retried activity (after its timeout) has reported back.
    await asyncio.wait_for(handle.result(), RECOVERY_SECONDS)
    history = await handle.fetch_history()
    scheduled = {
        event.event_id
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
        and event.activity_task_scheduled_event_attributes.activity_type.name == "issue_certificate"
    }
    return [
        (attrs.attempt, attrs.last_failure.message)
        for event in history.events
        if event.HasField("activity_task_started_event_attributes")
        and (attrs := event.activity_task_started_event_attributes).scheduled_event_id in scheduled
    ]


def _certificate_numbers(engine: Engine, request_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT number FROM certificate WHERE request_id = :r"), {"r": request_id}
            ).scalars()
        )


def test_worker_killed_after_the_certificate_commit_issues_it_once(
    crash_settings: Settings,
    engine: Engine,
    mailbox: SmtpSink,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    log = tmp_path / "workers.log"
    first = start_worker_process(
        worker_env(crash_settings, fault_pause_after_certificate_seconds=PAUSE_SECONDS), log
    )
    processes.append(first)

    with TestClient(create_app(crash_settings)) as client:
        cast = make_cast(client, crash_settings)
        lab = make_lab(client, cast)
        rid = to_evaluated(client, cast, lab)
        number_of_request = get(client, cast.officer_auth, rid)["number"]

        # The officer grants; the call hangs while the worker sits in the seam, then 503s.
        key = f"grant-{uuid.uuid4().hex}"
        answers: list[Response] = []
        granting = threading.Thread(
            target=lambda: answers.append(act(client, cast.officer_auth, rid, "grant", key=key)),
            daemon=True,
        )
        granting.start()

        # The certificate is committed and the activity has not completed: kill the worker.
        numbers = wait_for(
            "certificate row committed", lambda: _certificate_numbers(engine, rid), 60, log
        )
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
        assert numbers and len(numbers) == 1
        number = numbers[0]
        # The grant is recorded with it: one transaction writes the certificate and the
        # request's new status, so the kill cannot fall between them.
        assert get(client, cast.officer_auth, rid)["status"] == "certified"

        # A new worker (no fault) takes over: the retried activity finds the certificate.
        second = start_worker_process(worker_env(crash_settings), log)
        processes.append(second)

        # Meanwhile the officer was told to try again later (the workflow could not answer).
        granting.join(crash_settings.workflow_answer_seconds + 30)
        assert not granting.is_alive()
        assert answers[0].status_code == 503, answers[0].text
        assert answers[0].headers["Retry-After"]

        done = wait_for(
            "request certified",
            lambda: (view := get(client, cast.officer_auth, rid))["status"] == "certified" and view,
            RECOVERY_SECONDS,
            log,
        )
        assert done["certificate_number"] == number
        assert done["allowed_actions"] == []

        # The officer's retry with the same Idempotency-Key answers the outcome, nothing more.
        retry = act(client, cast.officer_auth, rid, "grant", key=key)
        assert retry.status_code == 200, retry.text
        assert (retry.json()["status"], retry.json()["certificate_number"]) == ("certified", number)

    # Exactly one certificate for the request, numbered without a gap in its series.
    assert _certificate_numbers(engine, rid) == [number]
    prefix, centre, year, seq = number.split("-")
    assert (prefix, centre) == (crash_settings.certificate_prefix, "CTTH")
    with engine.connect() as conn:
        issued = conn.execute(  # every first issue of the series, whoever made it
            sa.text(
                "SELECT number FROM certificate WHERE centre_code = :c AND issue = 0 "
                "AND EXTRACT(YEAR FROM issued_on) = :y AND number LIKE :series"
            ),
            # numbers taken from the series (other tests insert rows of their own numbering)
            {"c": centre, "y": int(year), "series": f"{prefix}-{centre}-{year}-%"},
        ).scalars()
        sequences = sorted(int(n.rsplit("-", 1)[1]) for n in issued)
        counter = conn.execute(
            sa.text("SELECT value FROM number_counter WHERE series = :s"),
            {"s": f"CERT-{centre}-{year}"},
        ).scalar_one()
        events = [
            (*row[:4], json.dumps(row.detail, sort_keys=True))
            for row in conn.execute(
                sa.text(
                    "SELECT action, object_id, from_status, to_status, detail FROM audit_event "
                    "WHERE chain = :c ORDER BY seq"
                ),
                {"c": request_chain(rid)},
            )
        ]
    actions = [event[0] for event in events]
    assert sequences == list(range(1, len(sequences) + 1)), sequences
    assert counter == sequences[-1] and int(seq) in sequences

    # Temporal ran the activity a second time (after the first attempt timed out); the
    # second attempt found the certificate the killed worker had committed.
    with engine.connect() as conn:
        workflow_id = conn.execute(
            sa.text("SELECT workflow_id FROM certification_request WHERE id = :r"), {"r": rid}
        ).scalar_one()
    attempts = asyncio.run(_issue_attempts(crash_settings, workflow_id))
    assert len(attempts) == 1
    assert attempts[0][0] == 2 and "timeout" in attempts[0][1].lower(), attempts

    # Each step of the decision is on record once, and the chain is intact.
    assert actions.count("issue_certificate") == 1
    assert actions.count("grant") == 1
    assert actions[-2:] == ["issue_certificate", "grant"]
    with Session(engine) as session:
        assert verify_chain(session, request_chain(rid)) is None
    assert len(set(events)) == len(events), "an event was recorded twice"

    # The manufacturer is told once.
    def certified_mails() -> list[Any]:
        return [
            m
            for m in mailbox.messages
            if m.message["X-Mutabaqa-Request"] == number_of_request
            and m.message["X-Mutabaqa-Notification"] == "certified"
        ]

    mailbox.wait_for(lambda _: len(certified_mails()) >= 1, timeout=30)
    time.sleep(2)  # a duplicate would arrive right behind the first
    mails = certified_mails()
    assert len(mails) == 1
    assert number in mails[0].body
    assert mails[0].rcpt_tos == [cast.maker["email"]]

    stop_process(second)
    assert second.returncode == 0  # SIGTERM: a graceful shutdown
