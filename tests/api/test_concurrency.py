"""Many users at once, through a real HTTP server: requests driven concurrently from
creation to certificate, on SQLite (the embedded default) and on PostgreSQL.

Each client is ``tests.walker``: it sends each action as soon as the request lists it in
``allowed_actions``, retries a 503 or a dropped connection with the same Idempotency-Key,
and records every 409 with the request's timeline at that moment.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session

from mutabaqa.db import create_db_engine
from mutabaqa.dev import child_environment
from mutabaqa.devstack import free_port, port_open
from mutabaqa.settings import Settings
from tests.conftest import RunningWorker
from tests.walker import WalkResult, make_people, run_walks

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def base_url(settings: Settings, worker: RunningWorker, tmp_path: Path) -> Iterator[str]:
    """``mutabaqa api`` in a process of its own on a free loopback port, configured like
    the session (the worker runs in this process): API and worker on separate cores, as in
    ``mutabaqa dev`` and a deployment."""
    port = free_port()
    log = tmp_path / "api.log"
    env = child_environment(settings.model_copy(update={"api_host": "127.0.0.1", "api_port": port}))
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mutabaqa", "api", "--log-level", "warning"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not port_open(port):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"the API did not start:\n{log.read_text()}"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def _walk_all(
    settings: Settings, base_url: str, count: int, concurrency: int
) -> list[WalkResult]:
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits) as client:
        people = await make_people(
            client, settings.admin_email, settings.admin_password.get_secret_value()
        )
        return await run_walks(client, people, count, concurrency=concurrency, total_timeout=720)


def _failures(results: list[WalkResult]) -> list[str]:
    return [f"{r.request_id}: {r.errors}" for r in results if not r.ok]


#: Refusals a client is expected to retry: the workflow missed the answer bound, the API
#: process already streams its maximum of uploads (`max_concurrent_uploads`), or the
#: public rate limit (every walk's `/verify` comes from one address; 429 + Retry-After).
DESIGNED = {
    "503": ("problems/workflow-unavailable", "problems/too-many-uploads"),
    "429": ("problems/too-many-requests",),
}
#: How a refused upload may look to a client still sending the file: the early 503 comes
#: with `Connection: close` (api/body_limits.py), and the client may see the reset first.
RESET = ("ReadError", "WriteError", "RemoteProtocolError")


def _unexplained_retries(results: list[WalkResult]) -> list[str]:
    """Every retried call that was not a designed refusal: a 500, a 503 or 429 of another
    kind (an exhausted pool is `database-busy`), a timeout, or a dropped connection on a
    call that is not an upload."""
    unexplained = []
    for line in (line for r in results for line in r.retried):
        what, _, answer = line.partition(": ")
        status = answer.split(" ", 1)[0]
        if any(kind in answer for kind in DESIGNED.get(status, ())):
            continue
        if what.startswith("upload ") and answer.startswith(RESET):
            continue
        unexplained.append(line)
    return unexplained


def _certificate_sequences(settings: Settings) -> tuple[list[int], int]:
    """Every certificate number's sequence in the CTTH series of this year, and the counter."""
    engine = create_db_engine(settings.resolved_database_url)
    try:
        with Session(engine) as session:
            counters = dict(
                session.execute(
                    sa.text("SELECT series, value FROM number_counter WHERE series LIKE 'CERT-%'")
                ).all()
            )
            numbers = session.execute(sa.text("SELECT DISTINCT number FROM certificate")).scalars()
            sequences = sorted(int(re.findall(r"\d+", n)[-1]) for n in numbers if "CTTH" in n)
    finally:
        engine.dispose()
    (counter,) = [v for series, v in counters.items() if "CTTH" in series]
    return sequences, counter


@pytest.mark.concurrency
@pytest.mark.both_databases
async def test_thirty_requests_at_once_are_all_certified(settings: Settings, base_url: str) -> None:
    results = await _walk_all(settings, base_url, count=30, concurrency=30)

    assert _failures(results) == []
    assert all(r.certificate_number for r in results)
    # Thirty clients at once are the normal case: every retried answer must be a designed
    # refusal (`_unexplained_retries`), never a 500 or a dropped connection elsewhere.
    # Thirty grants at once on SQLite (each a serialised write, the PDFs rendered by the
    # same worker on 2 shared cores) miss the workflow's 15 s answer bound a few times a run,
    # more with a core kept busy (python -m tests.repeat saw 4); retried with their key they
    # land once. The counts are printed, not bounded: a workflow that stopped answering would
    # show as a walk that did not finish within its deadline.
    assert _unexplained_retries(results) == []
    unavailable = sum(r.unavailable for r in results)
    print(f"\n30 at once: {unavailable} answers 503, retried")
    assert sum(r.server_errors for r in results) == 0
    numbers = [r.certificate_number for r in results]
    assert len(set(numbers)) == 30
    # Gap-free: the numbers of the series are exactly 1..counter (other tests' included).
    sequences, counter = _certificate_sequences(settings)
    assert sequences == list(range(1, counter + 1))


async def test_offered_actions_are_not_refused(settings: Settings, base_url: str) -> None:
    """100 walks, 20 in flight (some 4,000 actions), each action sent as soon as it is
    offered: a 409 only where the timeline shows another event between the read and the
    action."""
    results = await _walk_all(settings, base_url, count=100, concurrency=20)

    assert _failures(results) == []
    conflicts = [c for r in results for c in r.conflicts]
    unexplained = [
        (c.action, c.seen_status, c.problem) for c in conflicts if not c.intervening_events()
    ]
    assert unexplained == []
    # Never a 500; a designed refusal (the workflow busier than the answer bound, the
    # upload cap) is retried with the same key and lands once: counted, not refused.
    assert _unexplained_retries(results) == []
    unavailable = sum(r.unavailable for r in results)
    print(  # the figures the closing note quotes (run with -s)
        f"\n100 walks at 20 in flight: {len(conflicts)} 409s, all explained by the timeline; "
        f"{unavailable} answers 503, retried"
    )
