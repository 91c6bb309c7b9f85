"""The whole embedded stack SIGKILLed with twenty requests in flight, started again at once on
the same data: every request still reaches ``certified``, with one certificate each, and
every audit chain is intact. And a worker stuck in an activity still stops within its
shutdown bound.

``mutabaqa dev`` runs with its defaults (SQLite in its data directory) on free ports. Twenty
``tests.walker`` clients drive a request each through the HTTP API; when the first
certificate is committed — the other requests are then spread over the steps before and
around the grant — every process of the stack (``mutabaqa dev``, Temporal, the S3 store,
the worker and the API, their PIDs read from ``/proc``) is SIGKILLed back to back and the
stack is started again on the same data directory. The walkers retry what failed with the
same ``Idempotency-Key`` and carry on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.engine import Engine

from api.app import create_app
from mutabaqa.settings import Settings
from mutabaqa.worker import WORKER_SHUTDOWN_SECONDS
from tests.api.lab_helpers import make_lab, to_evaluated
from tests.api.requests_helpers import act, make_cast
from tests.mutabaqa.test_dev_stack import (
    Ports,
    alive,
    descendants,
    interrupt,
    stack_processes,
    start_dev,
    wait_healthy,
)
from tests.mutabaqa.test_worker_crash import (
    _certificate_numbers,
    start_worker_process,
    stop_process,
    wait_for,
    worker_env,
)
from tests.walker import make_people, run_walks

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REQUESTS = 20
#: Every walk must be done within this (the kill and the restart included).
WALKS_WITHIN = 600.0
ROOT = Path(__file__).resolve().parents[2]


def _read(db: Path, sql: str) -> list[tuple[object, ...]]:
    """A query on the stack's SQLite database, read-only, beside the running stack."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return list(conn.execute(sql).fetchall())
    except sqlite3.OperationalError:  # not created yet, or busy: ask again
        return []


async def _first_certificate(db: Path, walks: asyncio.Task[object], within: float) -> None:
    deadline = time.monotonic() + within
    while not _read(db, "SELECT 1 FROM certificate LIMIT 1"):
        assert not walks.done(), "the walks ended before any certificate was issued"
        assert time.monotonic() < deadline, "no certificate issued in time"
        await asyncio.sleep(0.05)


def _kill_every_process(proc: subprocess.Popen[bytes]) -> list[int]:
    """SIGKILL ``mutabaqa dev`` and each of its children, by PID, back to back."""
    pids = [proc.pid, *sorted(descendants(proc.pid))]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    return pids


def _audit(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """``mutabaqa audit`` on the stack's database, configured as ``mutabaqa dev`` is. The
    chains only: the signed checkpoints live in the stack's S3 store on ports of its own
    (``tests/mutabaqa/test_audit_anchoring.py`` checks them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUTABAQA_")}
    env["MUTABAQA_DATA_DIR"] = str(data_dir)
    env["MUTABAQA_ENV"] = "development"  # as `mutabaqa dev` runs (production is the default)
    return subprocess.run(
        [sys.executable, "-m", "mutabaqa", "audit", "--skip-checkpoints"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _defaults() -> Settings:
    """The settings ``mutabaqa dev`` uses with no MUTABAQA_* variable set."""
    env = {k: v for k, v in os.environ.items() if k.startswith("MUTABAQA_")}
    for key in env:
        del os.environ[key]
    try:
        return Settings(env="development")
    finally:
        os.environ.update(env)


@pytest.mark.stack
async def test_every_request_is_certified_once_across_a_sigkill_of_the_whole_stack(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    db = data_dir / "mutabaqa.db"
    log = tmp_path / "dev.log"
    ports = Ports.free()
    defaults = _defaults()

    proc = start_dev(data_dir, ports, log)
    try:
        await asyncio.to_thread(wait_healthy, proc, ports.api, log)
        assert set(stack_processes(proc.pid)) == {"temporal", "s3", "worker", "api"}
        started = time.monotonic()
        limits = httpx.Limits(max_connections=2 * REQUESTS, max_keepalive_connections=REQUESTS)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ports.api}", limits=limits
        ) as client:
            people = await make_people(
                client, defaults.admin_email, defaults.admin_password.get_secret_value()
            )
            walks = asyncio.create_task(
                run_walks(
                    client, people, REQUESTS, concurrency=REQUESTS, total_timeout=WALKS_WITHIN
                )
            )

            # In flight: the first certificate is committed, the others on their way.
            await _first_certificate(db, walks, within=WALKS_WITHIN / 2)
            at_kill = Counter(
                str(status) for (status,) in _read(db, "SELECT status FROM certification_request")
            )
            killed = _kill_every_process(proc)
            killed_at = time.monotonic()
            print(f"\nSIGKILL of {len(killed)} processes after {killed_at - started:.1f} s")
            print(f"requests at the kill: {dict(at_kill)}")

            # Started again at once, on the same data; the walkers carry on.
            proc = start_dev(data_dir, ports, log)
            healthy = await asyncio.to_thread(wait_healthy, proc, ports.api, log)
            print(f"healthy again {healthy:.1f} s after the restart")
            assert not [pid for pid in killed if alive(pid)]
            results = await walks
        finished = time.monotonic()
        print(
            f"{REQUESTS} walks done {finished - killed_at:.1f} s after the kill "
            f"({finished - started:.1f} s in all); retried calls: "
            f"{sum(len(r.retried) for r in results)}, "
            f"connection errors: {sum(r.connection_errors for r in results)}, "
            f"503: {sum(r.unavailable for r in results)}, 409: "
            f"{sum(r.conflict_count for r in results)}"
        )

        assert [f"{r.request_id}: {r.errors}" for r in results if not r.ok] == []
        ids = {r.request_id for r in results}
        assert len(ids) == REQUESTS and None not in ids
        numbers = [r.certificate_number for r in results]
        assert None not in numbers and len(set(numbers)) == REQUESTS

        # As stored: every request certified, one certificate each, distinct numbers.
        rows = _read(db, "SELECT id, status FROM certification_request")
        assert len(rows) == REQUESTS
        assert {request_id for request_id, _ in rows} == ids
        assert {status for _, status in rows} == {"certified"}
        certificates = _read(db, "SELECT request_id, number, issue FROM certificate")
        assert Counter(request_id for request_id, _, _ in certificates) == Counter(
            dict.fromkeys(ids, 1)
        )
        assert {issue for _, _, issue in certificates} == {0}
        assert {(r.request_id, r.certificate_number) for r in results} == {
            (request_id, number) for request_id, number, _ in certificates
        }

        # Every audit chain intact, as `mutabaqa audit` sees it on the same data.
        audit = await asyncio.to_thread(_audit, data_dir)
        print(audit.stdout.strip())
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert "all intact" in audit.stdout
    finally:
        if proc.poll() is None:
            interrupt(proc, ports)


@pytest.fixture
def own_queue(settings: Settings) -> Settings:
    """The session's settings on a task queue of this test's own (no other worker on it)."""
    return settings.model_copy(update={"temporal_task_queue": f"stuck-{uuid.uuid4().hex}"})


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            stop_process(proc)


def test_a_worker_stuck_in_an_activity_stops_within_its_shutdown_bound(
    own_queue: Settings, engine: Engine, workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """``issue_certificate`` sleeps in the fault seam (a synchronous activity that cannot be
    interrupted) when the worker gets SIGTERM: past its bound, the worker leaves it and
    exits (status 1) instead of holding ``mutabaqa dev`` or ``docker compose stop`` up."""
    log = tmp_path / "worker.log"
    worker = start_worker_process(
        worker_env(own_queue, fault_pause_after_certificate_seconds=120), log
    )
    workers.append(worker)
    with TestClient(create_app(own_queue)) as client:
        cast = make_cast(client, own_queue)
        rid = to_evaluated(client, cast, make_lab(client, cast))
        answers: list[Response] = []
        granting = threading.Thread(
            target=lambda: answers.append(act(client, cast.officer_auth, rid, "grant")),
            daemon=True,
        )
        granting.start()
        wait_for("certificate committed", lambda: _certificate_numbers(engine, rid), 60, log)

        t0 = time.monotonic()
        os.kill(worker.pid, signal.SIGTERM)
        code = worker.wait(WORKER_SHUTDOWN_SECONDS + 10)
        elapsed = time.monotonic() - t0
        print(f"\nworker stuck in an activity stopped {elapsed:.1f} s after SIGTERM")
        assert code == 1, log.read_text()
        assert elapsed < WORKER_SHUTDOWN_SECONDS + 1.5
        assert "activities still running" in log.read_text()

        granting.join(own_queue.workflow_answer_seconds + 30)
        assert answers and answers[0].status_code == 503, answers
