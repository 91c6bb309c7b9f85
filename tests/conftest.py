"""Real services for the test session: a Temporal dev server and an S3 store on free ports,
started here and stopped at the end, and a fresh PostgreSQL database on the machine's server.
Nothing needs to be started by hand (PostgreSQL excepted, which the machine provides).

Hypothesis is imported here, at collection: its plugin otherwise imports it lazily at the
end of the run, when background threads are alive, which trips a CPython 3.11.7 bug in
``ast.parse`` (\"AST constructor recursion depth mismatch\") under assertion rewriting.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import hypothesis  # noqa: F401  (imported early: see the note below)
import pytest
from minio import Minio
from sqlalchemy.engine import Engine

from models import search_attributes
from mutabaqa.clients import connect_temporal, make_object_store
from mutabaqa.db import create_db_engine
from mutabaqa.devstack import ChildProcess, S3Ports, TemporalPorts, start_s3, start_temporal
from mutabaqa.settings import Settings
from mutabaqa.worker import run_worker, worker_engine
from tests.databases import PG_ADMIN_DSN, prepare, private_pg_database  # noqa: F401  (re-exported)
from tests.smtp import SmtpSink, smtp_sink  # noqa: F401  (fixture)

#: The suite runs in development (every process it starts inherits this): production, the
#: default, refuses the placeholder secrets and never generates keys. Tests of production
#: say so explicitly.
os.environ["MUTABAQA_ENV"] = "development"

S3_ACCESS_KEY = "mutabaqa-test"
S3_SECRET_KEY = "test-secret-" + uuid.uuid4().hex


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    process: ChildProcess
    ports: S3Ports


def run_s3(data_dir: Path, ports: S3Ports | None = None) -> S3Server:
    """Start a SeaweedFS S3 store (credentials enforced) and wait until it answers."""
    ports = ports or S3Ports.free()
    endpoint = f"http://127.0.0.1:{ports.s3}"
    probe = make_object_store(
        Settings(s3_endpoint=endpoint, s3_access_key=S3_ACCESS_KEY, s3_secret_key=S3_SECRET_KEY),
        timeout=2.0,
        retries=0,
    )
    process = start_s3(
        data_dir,
        ports,
        S3_ACCESS_KEY,
        S3_SECRET_KEY,
        ready=lambda: probe.list_buckets() is not None,
    )
    return S3Server(endpoint, S3_ACCESS_KEY, S3_SECRET_KEY, process, ports)


@pytest.fixture(scope="session")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ports = TemporalPorts.free()
    proc = start_temporal(
        tmp_path_factory.mktemp("temporal"), ports, search_attributes.ALL, ui=False
    )
    try:
        yield f"127.0.0.1:{ports.grpc}"
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def sqlite_temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Temporal server of its own for the SQLite tests: one database, one Temporal, as in a
    deployment (workflow ids such as ``certificate-<number>`` repeat across databases)."""
    ports = TemporalPorts.free()
    proc = start_temporal(
        tmp_path_factory.mktemp("temporal-sqlite"), ports, search_attributes.ALL, ui=False
    )
    try:
        yield f"127.0.0.1:{ports.grpc}"
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = run_s3(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, dropped at the end."""
    with private_pg_database("test") as url:
        yield url


@pytest.fixture(scope="session")
def mailbox() -> Iterator[SmtpSink]:
    """The session's SMTP server: every notification of the suite lands here."""
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


#: The databases an end-to-end test marked ``both_databases`` runs on; every other test runs
#: on PostgreSQL (production). SQLite is what a new user of ``mutabaqa dev`` gets.
DATABASES = ("postgresql", "sqlite")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise the session's ``database`` for every test that uses it, so that each
    database's settings, engine and worker are made once and tests are grouped by them."""
    if "database" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("both_databases") is not None
        metafunc.parametrize(
            "database", DATABASES if both else DATABASES[:1], indirect=True, scope="session"
        )


@pytest.fixture(scope="session")
def database(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", DATABASES[0]))


@pytest.fixture(scope="session")
def settings(
    request: pytest.FixtureRequest,
    database: str,
    tmp_path_factory: pytest.TempPathFactory,
    pg_url: str,
    temporal_address: str,
    s3_server: S3Server,
    mailbox: SmtpSink,
) -> Settings:
    """Settings for the real services, with the schema migrated and reference data seeded:
    PostgreSQL, or SQLite in a file of the session (tests marked ``both_databases``), each
    with its own Temporal server and buckets (numbers, hence ids and keys, repeat)."""
    data_dir = tmp_path_factory.mktemp(f"data-{database}")
    sqlite = database == "sqlite"
    url = f"sqlite:///{data_dir / 'mutabaqa.db'}" if sqlite else pg_url
    suffix = "-sqlite" if sqlite else ""
    result = Settings(
        data_dir=data_dir,
        database_url=url,
        temporal_address=(
            request.getfixturevalue("sqlite_temporal_address") if sqlite else temporal_address
        ),
        s3_evidence_bucket=f"mutabaqa-evidence{suffix}",
        s3_certificates_bucket=f"mutabaqa-certificates{suffix}",
        temporal_task_queue=f"tests-{database}-{uuid.uuid4().hex[:8]}",
        s3_endpoint=s3_server.endpoint,
        s3_access_key=s3_server.access_key,
        s3_secret_key=s3_server.secret_key,
        health_timeout_seconds=3.0,
        **mailbox.settings_update(),
    )
    return prepare(result)


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    db = create_db_engine(settings.resolved_database_url)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture(scope="session")
def store(settings: Settings) -> Minio:
    return make_object_store(settings)


@pytest.fixture
def task_queue() -> str:
    """Each test gets its own task queue, so tests never see each other's work."""
    return f"tq-{uuid.uuid4().hex}"


@dataclass
class RunningWorker:
    task_queue: str
    thread: threading.Thread
    stop: Callable[[], None]


def start_worker(settings: Settings) -> RunningWorker:
    """Run a real worker (every workflow and activity) in a background thread."""
    ready = threading.Event()
    holder: dict[str, object] = {}

    async def main() -> None:
        stop = asyncio.Event()
        holder["loop"] = asyncio.get_running_loop()
        holder["stop"] = stop
        client = await connect_temporal(settings)
        engine = worker_engine(settings)
        try:
            ready.set()
            await run_worker(client, settings, engine, make_object_store(settings), stop)
        finally:
            engine.dispose()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="worker", daemon=True)
    thread.start()
    assert ready.wait(30), "worker did not start"

    def stop() -> None:
        loop = holder["loop"]
        event = holder["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(event, asyncio.Event)
        loop.call_soon_threadsafe(event.set)
        thread.join(60)

    return RunningWorker(settings.temporal_task_queue, thread, stop)


@pytest.fixture(scope="session")
def worker(settings: Settings) -> Iterator[RunningWorker]:
    """A worker on the session's task queue, for tests that drive workflows via the API."""
    running = start_worker(settings)
    try:
        yield running
    finally:
        running.stop()


# --- time per marked group, printed at the end of the run ---------------------------------

#: The marked groups whose time the run prints (a test counts in the first group it has).
TIMED_GROUPS = ("faults", "fuzz", "slow", "stack", "both_databases")
_group_seconds: dict[str, float] = {}
_group_counts: dict[str, int] = {}


def _group_of(item: pytest.Item) -> str:
    return next((name for name in TIMED_GROUPS if item.get_closest_marker(name)), "other")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    started = time.monotonic()
    yield
    group = _group_of(item)
    _group_seconds[group] = _group_seconds.get(group, 0.0) + time.monotonic() - started
    _group_counts[group] = _group_counts.get(group, 0) + 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _group_seconds:
        return
    terminalreporter.section("time per marked group (set-up and tear-down included)")
    for group in (*TIMED_GROUPS, "other"):
        if group in _group_seconds:
            terminalreporter.write_line(
                f"{group:>15}: {_group_seconds[group]:7.1f} s over {_group_counts[group]} tests"
            )
