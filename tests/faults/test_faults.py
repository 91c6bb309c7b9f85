"""The fault suite: many requests in flight while the stack's parts fail one after another,
then every invariant checked once. One pass per database: SQLite (the default stack) and
PostgreSQL (a private PostgreSQL 15 cluster the suite starts itself).

Each pass starts Temporal, the S3 store, a worker and the API as separate processes
(``tests/faults/stack.py``), makes ``REQUESTS`` ``tests.walker`` walks through the HTTP API
at once, and, while they run, injects in turn (each when the walks have reached the stage
it aims at, and once the stack has made progress again after the previous one):

1. the S3 store stopped during the document uploads, started again ``S3_DOWN_SECONDS`` later;
2. the worker SIGKILLed (1/3), a new one started at once;
3. the Temporal server SIGKILLed and started again on the same database file;
4. (PostgreSQL) the private cluster stopped (``immediate``: crash recovery) and started;
5. the worker SIGKILLed (2/3);
6. the S3 store stopped while certificates are being issued (PDFs stored), started again;
7. the worker SIGKILLed (3/3).

Afterwards: every request certified; certificate numbers unique and gap-free per centre and
year; every stored file's and certificate PDF's SHA-256 equal to the stored object's; no
object in the buckets without a row and no unfinished multipart upload; the outbox drained
(nothing pending or dead), every mail received, a Message-ID received twice only for a
delivery that was interrupted; ``mutabaqa audit`` verifies every chain against the signed
checkpoints; every workflow history replays with the current code. The suite prints, for
each fault, what it broke and what held.

Run it alone: ``.venv/bin/pytest -m faults -s tests/faults`` (``FAULT_REQUESTS=10`` for a
quicker run while developing).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from minio import Minio
from sqlalchemy.engine import Engine
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from activities.notifications import NotificationActivities, message_id_for
from models.notifications import NotifyInput
from mutabaqa.anchoring import PREFIX as CHECKPOINT_PREFIX
from mutabaqa.clients import connect_temporal, make_object_store
from mutabaqa.codec import data_converter
from mutabaqa.db import create_db_engine
from mutabaqa.dev import child_environment
from mutabaqa.seals import SealCheckingInterceptor, seal_key
from mutabaqa.settings import Settings
from mutabaqa.sweeper import sweep
from mutabaqa.worker import WORKFLOWS
from tests.faults.stack import ROOT, FaultStack, PrivatePostgres
from tests.smtp import SmtpSink
from tests.walker import STATUS_ORDER, WalkResult, make_people, run_walks

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

#: Walks in flight during the faults (``FAULT_REQUESTS`` overrides, e.g. fewer while
#: developing). 50 per pass: both passes in 300 s on the 2-core CI machine (docs/faults.md).
REQUESTS = int(os.environ.get("FAULT_REQUESTS", "50"))
#: Every walk must be done within this, faults and recoveries included.
WALKS_WITHIN = 420.0
#: How long the S3 store stays stopped.
S3_DOWN_SECONDS = 4.0
#: How long the PostgreSQL cluster stays stopped.
PG_DOWN_SECONDS = 3.0
#: Upper bound on waiting for a fault's moment, and for progress after it.
STAGE_WITHIN = 240.0
#: After the walks, the outbox's deliveries must all be done within this.
DRAIN_WITHIN = 120.0


# --- reading the record beside the running stack ------------------------------------------


def _rows(engine: Engine, sql: str) -> list[Any] | None:
    """A query on the stack's database; None while it cannot answer (restarting, busy)."""
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)).all())
    except sa.exc.DBAPIError:
        return None


@dataclass(frozen=True)
class Progress:
    statuses: Counter[str]
    documents: int
    certificates: int
    pdfs: int

    @property
    def score(self) -> int:
        steps = sum(
            STATUS_ORDER.index(s) * n for s, n in self.statuses.items() if s in STATUS_ORDER
        )
        return steps + self.documents + self.certificates + self.pdfs

    def reached(self, status: str) -> int:
        """How many requests are at or past ``status``."""
        at = STATUS_ORDER.index(status)
        return sum(
            n for s, n in self.statuses.items() if s in STATUS_ORDER and STATUS_ORDER.index(s) >= at
        )

    def __str__(self) -> str:
        shown = ", ".join(f"{s} {self.statuses[s]}" for s in STATUS_ORDER if self.statuses[s])
        counts = f"documents {self.documents}, certificates {self.certificates}"
        return f"{shown}; {counts}, PDFs {self.pdfs}"


def progress(engine: Engine) -> Progress | None:
    statuses = _rows(engine, "SELECT status, count(*) FROM certification_request GROUP BY status")
    documents = _rows(engine, "SELECT count(*) FROM stored_file")
    certificates = _rows(engine, "SELECT count(*), count(pdf_key) FROM certificate")
    if statuses is None or documents is None or certificates is None:
        return None
    return Progress(
        Counter({str(s): int(n) for s, n in statuses}),
        int(documents[0][0]),
        int(certificates[0][0]),
        int(certificates[0][1]),
    )


# --- what the walkers saw ------------------------------------------------------------------


class CountingTransport(httpx.AsyncBaseTransport):
    """Records when each call failed (5xx, or no answer) to tell which fault broke what."""

    def __init__(self, limits: httpx.Limits) -> None:
        self.inner = httpx.AsyncHTTPTransport(limits=limits)
        self.failures: list[tuple[float, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError as exc:
            self.failures.append((time.monotonic(), type(exc).__name__))
            raise
        if response.status_code == 500:  # a bug, not a passing refusal: name the call
            path = re.sub(r"[0-9a-f]{32}", "{id}", request.url.path)
            self.failures.append((time.monotonic(), f"HTTP 500 {request.method} {path}"))
        elif response.status_code > 500:
            self.failures.append((time.monotonic(), f"HTTP {response.status_code}"))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


# --- faults --------------------------------------------------------------------------------


@dataclass
class Fault:
    name: str
    #: Until when (at most) to wait for the moment, and what it is.
    moment: str
    ready: Callable[[Progress], bool]
    inject: Callable[[], Awaitable[str]]
    started: float = 0.0
    ended: float = 0.0
    recovered_after: float | None = None
    at_fault: Progress | None = None
    what: str = ""
    in_flight: bool = False
    broke: Counter[str] = field(default_factory=Counter)


async def _wait_progress(
    engine: Engine, walks: asyncio.Task[Any], ready: Callable[[Progress], bool], within: float
) -> Progress | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and not walks.done():
        seen = progress(engine)
        if seen is not None and ready(seen):
            return seen
        await asyncio.sleep(0.1)
    return None


async def run_faults(engine: Engine, walks: asyncio.Task[Any], faults: list[Fault]) -> None:
    """Each fault at its moment while the walks run; after it, wait until the stack makes
    progress again (a transition, a file, a certificate or a PDF recorded)."""
    for fault in faults:
        seen = await _wait_progress(engine, walks, fault.ready, STAGE_WITHIN)
        if seen is None:
            fault.what = (
                f"not injected: the walks ended (or {STAGE_WITHIN:.0f} s passed) "
                f"before {fault.moment}"
            )
            continue
        fault.at_fault = seen
        fault.in_flight = not walks.done()
        fault.started = time.monotonic()
        fault.what = await fault.inject()
        fault.ended = time.monotonic()
        print(f"  {fault.name} at {seen}: {fault.what}", flush=True)
        before = (progress(engine) or seen).score

        def moved(p: Progress, before: int = before) -> bool:
            return p.score > before

        after = await _wait_progress(engine, walks, moved, STAGE_WITHIN)
        if after is not None or walks.done():  # the walks' end is progress too
            fault.recovered_after = time.monotonic() - fault.ended


def plan(stack: FaultStack, pg: PrivatePostgres | None, n: int) -> list[Fault]:
    async def stop_s3_for_a_while() -> str:
        pid = stack.stop_s3()
        await asyncio.sleep(S3_DOWN_SECONDS)  # the walkers and the worker meet a dead store
        stack.start_s3()
        return f"S3 store (pid {pid}) stopped, started again after {S3_DOWN_SECONDS:.0f} s"

    def kill_worker(count: int) -> Callable[[], Awaitable[str]]:
        async def inject() -> str:
            pid = stack.kill_worker()
            stack.start_worker()
            assert stack.worker is not None
            return f"worker (pid {pid}) SIGKILLed ({count}/3), new worker pid {stack.worker.pid}"

        return inject

    async def kill_temporal() -> str:
        pid = stack.kill_temporal()
        stack.start_temporal()
        assert stack.temporal is not None
        new = stack.temporal.pid
        return f"Temporal (pid {pid}) SIGKILLed, restarted on the same database file (pid {new})"

    async def restart_postgres() -> str:
        assert pg is not None
        pid = pg.pid()
        await asyncio.to_thread(pg.stop, "immediate")
        await asyncio.sleep(PG_DOWN_SECONDS)
        new = await asyncio.to_thread(pg.start)
        return f"PostgreSQL (postmaster pid {pid}) stopped (immediate), started again (pid {new})"

    faults = [
        Fault(
            "S3 store stopped during uploads",
            "documents being uploaded",
            lambda p: p.documents > 0 and p.reached("submitted") < n,
            stop_s3_for_a_while,
        ),
        Fault(
            "worker SIGKILL 1/3",
            "a request in application review",
            lambda p: p.reached("application_review") > 0,
            kill_worker(1),
        ),
        Fault(
            "Temporal SIGKILL + restart",
            "a sample received",
            lambda p: p.reached("testing") > 0,
            kill_temporal,
        ),
    ]
    if pg is not None:
        faults.append(
            Fault(
                "PostgreSQL cluster restart",
                "results being recorded",
                lambda p: p.reached("testing") > n // 4,
                restart_postgres,
            )
        )
    faults += [
        Fault(
            "worker SIGKILL 2/3",
            "results submitted",
            lambda p: p.reached("results_submitted") > 0,
            kill_worker(2),
        ),
        Fault(
            "S3 store stopped during certificate issuance",
            "a certificate issued, PDFs outstanding",
            lambda p: p.certificates > 0 and p.pdfs < n,
            stop_s3_for_a_while,
        ),
        Fault(
            "worker SIGKILL 3/3",
            "certificates being issued",
            lambda p: p.certificates > 0 and p.pdfs < n,
            kill_worker(3),
        ),
    ]
    return faults


# --- invariants ----------------------------------------------------------------------------


def certificate_series_gaps(engine: Engine) -> dict[str, Any]:
    """Per centre and year: the first issues' sequence numbers, when not 1..n, and the
    counter when it disagrees."""
    rows = _rows(engine, "SELECT number, centre_code FROM certificate WHERE issue = 0") or []
    series: dict[str, list[int]] = {}
    for number, _centre in rows:
        prefix_centre_year, seq = str(number).rsplit("-", 1)
        series.setdefault(prefix_centre_year, []).append(int(seq))
    counters = {
        str(s): int(v) for s, v in _rows(engine, "SELECT series, value FROM number_counter") or []
    }
    problems: dict[str, Any] = {}
    for name, seqs in series.items():
        _prefix, centre, year = name.split("-")
        if sorted(seqs) != list(range(1, len(seqs) + 1)):
            problems[name] = sorted(seqs)
        counter = counters.get(f"CERT-{centre}-{year}")
        if counter != len(seqs):
            problems[f"{name} counter"] = (counter, len(seqs))
    return problems


def _sha256(store: Minio, bucket: str, key: str, version_id: str | None) -> str:
    response = store.get_object(bucket, key, version_id=version_id)
    try:
        digest = hashlib.sha256()
        for chunk in response.stream(1024 * 1024):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        response.close()
        response.release_conn()


def stored_objects(engine: Engine) -> list[tuple[str, str, str | None, str, str]]:
    """(bucket, key, version, sha256, what) of every object the record refers to."""
    files = (
        _rows(engine, "SELECT bucket, object_key, version_id, sha256, id FROM stored_file") or []
    )
    pdfs = (
        _rows(
            engine,
            "SELECT pdf_key, pdf_version_id, pdf_sha256, number FROM certificate"
            " WHERE pdf_key IS NOT NULL",
        )
        or []
    )
    return [(b, k, v, s, f"file {i}") for b, k, v, s, i in files] + [
        ("", k, v, s, f"PDF of {n}") for k, v, s, n in pdfs
    ]


def unfinished_uploads(store: Minio, bucket: str) -> list[str]:
    """Multipart uploads begun and neither completed nor aborted (S3 ListMultipartUploads)."""
    result = store._list_multipart_uploads(bucket)
    return [f"{u.object_name} ({u.upload_id})" for u in result.uploads]


async def histories(client: Client) -> AsyncIterator[WorkflowHistory]:
    async for history in client.list_workflows("").map_histories():
        yield history


async def replay_failures(settings: Settings) -> tuple[int, dict[str, str]]:
    client = await connect_temporal(settings)
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=data_converter(settings),
        interceptors=[SealCheckingInterceptor(seal_key(settings), settings.temporal_seals_since)],
    )
    count = 0

    async def counted() -> AsyncIterator[WorkflowHistory]:
        nonlocal count
        async for history in histories(client):
            count += 1
            yield history

    results = await replayer.replay_workflows(counted(), raise_on_replay_failure=False)
    return count, {wid: repr(exc)[:300] for wid, exc in results.replay_failures.items()}


async def interrupted_deliveries(settings: Settings, row_ids: list[str]) -> set[str]:
    """The outbox rows whose delivery activity ran more than once (an attempt failed, timed
    out or its worker died), from the delivery workflows' histories."""
    client = await connect_temporal(settings)
    interrupted: set[str] = set()
    for row_id in row_ids:
        history = await client.get_workflow_handle(f"outbox-{row_id}").fetch_history()
        for event in history.events:
            started = event.activity_task_started_event_attributes
            if event.HasField("activity_task_started_event_attributes") and started.attempt > 1:
                interrupted.add(row_id)
    return interrupted


def mails_expected(engine: Engine, settings: Settings) -> dict[str, tuple[str, str]]:
    """By Message-ID, the (outbox row, notification kind) of every mail that has someone to
    go to (the worker sends none when nobody is concerned), as the worker decides it."""
    notifications = NotificationActivities(engine, settings)
    expected: dict[str, tuple[str, str]] = {}
    for row_id, payload in (
        _rows(engine, "SELECT id, payload FROM outbox WHERE kind = 'email'") or []
    ):
        params = NotifyInput.model_validate(
            json.loads(payload) if isinstance(payload, str) else payload
        )
        _, recipients = notifications._prepare(params)
        if recipients:
            expected[message_id_for(params.dedupe_key)] = (str(row_id), params.kind.value)
    return expected


def logged_errors(log: str) -> dict[str, int]:
    """The exceptions a process logged (tracebacks' last lines), by class."""
    found = re.findall(
        r"^((?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Timeout)): ", log, re.M
    )
    return dict(Counter(found).most_common(8))


def run_audit(settings: Settings) -> subprocess.CompletedProcess[str]:
    """``mutabaqa audit``, configured as the stack is: chains and signed checkpoints."""
    return subprocess.run(
        [sys.executable, "-m", "mutabaqa", "audit"],
        cwd=ROOT,
        env=child_environment(settings),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


# --- the pass ------------------------------------------------------------------------------


@pytest.fixture
def mailbox_of_the_pass() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def private_postgres(request: pytest.FixtureRequest) -> Iterator[PrivatePostgres | None]:
    if request.node.callspec.params["db"] != "postgresql":
        yield None
        return
    cluster = PrivatePostgres()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.close()


def _say(line: str) -> None:
    print(line, flush=True)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
async def test_every_invariant_holds_across_the_faults(
    db: str,
    tmp_path: Path,
    mailbox_of_the_pass: SmtpSink,
    private_postgres: PrivatePostgres | None,
) -> None:
    mailbox = mailbox_of_the_pass
    url = private_postgres.create_database("mutabaqa") if private_postgres else None
    stack = FaultStack(tmp_path, url, mailbox)
    settings = stack.settings
    engine = create_db_engine(settings.resolved_database_url)
    try:
        stack.start()
        await _pass(db, stack, private_postgres, engine, mailbox)
    finally:
        engine.dispose()
        stack.close()


async def _pass(
    db: str,
    stack: FaultStack,
    pg: PrivatePostgres | None,
    engine: Engine,
    mailbox: SmtpSink,
) -> None:
    settings = stack.settings
    n = REQUESTS
    started = time.monotonic()
    limits = httpx.Limits(max_connections=2 * n, max_keepalive_connections=n)
    transport = CountingTransport(limits)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{stack.api_port}", transport=transport
    ) as client:
        people = await make_people(
            client, settings.admin_email, settings.admin_password.get_secret_value()
        )
        walks = asyncio.create_task(
            run_walks(client, people, n, concurrency=n, total_timeout=WALKS_WITHIN)
        )
        faults = plan(stack, pg, n)
        try:
            await run_faults(engine, walks, faults)
        finally:
            results: list[WalkResult] = await walks
    walked = time.monotonic() - started
    _say(f"\n[{db}] {n} walks done in {walked:.1f} s; workers started: {stack.workers_started}")

    # What each fault broke: the calls that failed from its start to the next fault's.
    starts = [f.started for f in faults if f.started] + [float("inf")]
    for fault in faults:
        if fault.started:
            end = next(s for s in starts if s > fault.started)
            fault.broke = Counter(
                what for at, what in transport.failures if fault.started <= at < end
            )

    # --- the outcome, checked once --------------------------------------------------------
    held: dict[str, str] = {}
    failed: list[str] = []

    def check(name: str, ok: bool, good: str, bad: str) -> None:
        held[name] = good if ok else f"BROKEN: {bad}"
        if not ok:
            failed.append(f"{name}: {bad}")

    # Every request at its final state (certified), each walk through.
    statuses = Counter(
        str(s) for (s,) in _rows(engine, "SELECT status FROM certification_request") or []
    )
    not_ok = [f"{r.request_id}: {r.errors}" for r in results if not r.ok]
    check(
        "final state",
        not not_ok and statuses == Counter({"certified": n}),
        f"all {n} requests certified",
        f"statuses {dict(statuses)}; walks failed: {not_ok[:5]}",
    )

    # Certificate numbers unique and gap-free per centre and year.
    numbers = [
        str(x) for (x,) in _rows(engine, "SELECT number FROM certificate WHERE issue = 0") or []
    ]
    gaps = certificate_series_gaps(engine)
    check(
        "certificate numbers",
        len(numbers) == len(set(numbers)) == n and not gaps,
        f"{len(numbers)} numbers, unique, gap-free per centre/year, counters agree",
        f"{len(numbers)} numbers ({len(set(numbers))} distinct); series problems {gaps}",
    )

    # Each stored file and PDF: the object's SHA-256 is the recorded one.
    store = make_object_store(settings)
    objects = stored_objects(engine)
    mismatches = []
    for bucket, key, version, sha, what in objects:
        bucket = bucket or settings.s3_certificates_bucket
        try:
            actual = await asyncio.to_thread(_sha256, store, bucket, key, version)
        except Exception as exc:
            actual = f"unreadable: {exc}"
        if actual != sha:
            mismatches.append(f"{what} {bucket}/{key}: {actual}")
    check(
        "evidence digests",
        not mismatches and bool(objects),
        f"{len(objects)} objects (files and PDFs) match their recorded SHA-256",
        f"{len(mismatches)} mismatches: {mismatches[:5]}",
    )

    # No object without a row, no unfinished multipart upload, once the orphan sweeper
    # (mutabaqa/sweeper.py, run by every worker each MUTABAQA_ORPHAN_SWEEP_INTERVAL_SECONDS
    # on what is older than MUTABAQA_ORPHAN_GRACE_SECONDS) has run: here with no grace,
    # every walk being over.
    swept = await asyncio.to_thread(sweep, settings, engine, store, timedelta(0))
    _say(
        f"  orphan sweeper: {len(swept.removed)} objects without a row removed, "
        f"{len(swept.aborted)} unfinished multipart uploads aborted"
    )
    referenced = {
        (bucket or settings.s3_certificates_bucket, key, version)
        for bucket, key, version, _, _ in objects
    }
    orphans = []
    uploads = []
    for bucket in (settings.s3_evidence_bucket, settings.s3_certificates_bucket):
        for item in store.list_objects(bucket, recursive=True, include_version=True):
            if item.is_delete_marker or str(item.object_name).startswith(CHECKPOINT_PREFIX):
                continue
            if (bucket, item.object_name, item.version_id) not in referenced:
                orphans.append(f"{bucket}/{item.object_name} ({item.version_id})")
        uploads += unfinished_uploads(store, bucket)
    check(
        "no orphans",
        not orphans,
        "every object in the buckets has its row (audit checkpoints aside)",
        f"{len(orphans)} objects without a row, in "
        f"{len({o.split('/')[2] for o in orphans})} requests: {orphans[:5]}",
    )
    check(
        "no unfinished uploads",
        not uploads,
        "no multipart upload left unfinished",
        f"{len(uploads)} unfinished: {uploads[:5]}",
    )

    # The outbox drains: every row delivered, nothing pending or dead.
    deadline = time.monotonic() + DRAIN_WITHIN
    while True:
        outbox = _rows(engine, "SELECT id, dedupe_key, kind, status, attempts FROM outbox") or []
        if all(str(row[3]) == "delivered" for row in outbox) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    pending = Counter(str(row[3]) for row in outbox if str(row[3]) != "delivered")
    check(
        "outbox drained",
        bool(outbox) and not pending,
        f"{len(outbox)} outbox rows, all delivered",
        f"not delivered: {dict(pending)}",
    )

    # Mail: every notification received at least once; a duplicate only where the delivery
    # was interrupted (its activity ran again).
    mail_rows = mails_expected(engine, settings)
    with contextlib.suppress(AssertionError):  # what is missing is reported below
        await asyncio.to_thread(
            mailbox.wait_for,
            lambda ms: set(mail_rows) <= {m.message["Message-ID"] for m in ms},
            30,
        )
    received = Counter(str(m.message["Message-ID"]) for m in mailbox.messages)
    duplicates = {mid: count for mid, count in received.items() if count > 1}
    interrupted = await interrupted_deliveries(
        settings, [str(mail_rows[mid][0]) for mid in duplicates if mid in mail_rows]
    )
    unexplained = [
        mid
        for mid in duplicates
        if mid not in mail_rows or str(mail_rows[mid][0]) not in interrupted
    ]
    missing = set(mail_rows) - set(received)
    _say(
        f"[{db}] mails: {sum(received.values())} received, {len(received)} Message-IDs; duplicates:"
    )
    for mid, count in sorted(duplicates.items()):
        why = "interrupted delivery" if mid not in unexplained else "UNINTERRUPTED delivery"
        _say(f"  {mid} x{count} ({why})")
    if not duplicates:
        _say("  none")
    check(
        "mail at least once",
        not missing and bool(mail_rows),
        f"{len(mail_rows)} notifications, each received (same Message-ID on a resend)",
        f"{len(missing)} never received: {[mail_rows[m][1] for m in list(missing)[:5]]}",
    )
    check(
        "no duplicate without an interruption",
        not unexplained,
        f"{len(duplicates)} duplicates, each after an interrupted delivery",
        f"duplicates of uninterrupted deliveries: {unexplained[:5]}",
    )

    # The audit chains verify, against the signed checkpoints too.
    audit = await asyncio.to_thread(run_audit, settings)
    check(
        "audit chains",
        audit.returncode == 0 and "all intact" in audit.stdout,
        audit.stdout.strip().splitlines()[-1] if audit.stdout.strip() else "intact",
        (audit.stdout + audit.stderr)[-800:],
    )

    # Every recorded history replays with the current workflow code.
    replayed, replay_errors = await replay_failures(settings)
    check(
        "replay",
        replayed > 0 and not replay_errors,
        f"{replayed} workflow histories replay without non-determinism",
        f"{len(replay_errors)} of {replayed} fail: {dict(list(replay_errors.items())[:3])}",
    )

    # --- the report ------------------------------------------------------------------------
    held_line = "; ".join(f"{k}: {v}" for k, v in held.items())
    for fault in faults:
        broke = (
            ", ".join(f"{c} x {what}" for what, c in fault.broke.most_common()) or "no call failed"
        )
        recovered = (
            f"progress again {fault.recovered_after:.1f} s after"
            if fault.recovered_after is not None
            else "NO progress seen after it"
        )
        _say(
            f"[{db}] fault {fault.name}: {fault.what}; at it: {fault.at_fault}; "
            f"broke: {broke}; {recovered}"
        )
    _say(f"[{db}] held: {held_line}")
    _say(
        f"[{db}] walker totals: retried {sum(len(r.retried) for r in results)}, "
        f"503 {sum(r.unavailable for r in results)}, other 5xx "
        f"{sum(r.server_errors for r in results)}, no answer "
        f"{sum(r.connection_errors for r in results)}, 409 {sum(r.conflict_count for r in results)}"
    )

    for name in ("api", "worker"):
        _say(f"[{db}] {name} log, errors by exception: {logged_errors(stack.log_tail(name, 0))}")

    missed = [f"{f.name} ({f.what})" for f in faults if not f.in_flight]
    assert not missed, f"faults not injected with walks in flight: {missed}"
    assert not [f.name for f in faults if f.recovered_after is None], "no progress after a fault"
    assert not failed, "invariants broken:\n" + "\n".join(failed)
