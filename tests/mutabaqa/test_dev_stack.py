"""``mutabaqa dev`` as a newcomer runs it: up and healthy, the API and the worker in
processes of their own, stopped cleanly (within 10 s under load too), restarted with its
data — also right after every process of it was SIGKILLed — and a durable timer started
before the restart fires after it."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from minio import Minio
from minio.error import S3Error

from models.system import CanaryInput, CanaryResult
from mutabaqa.clients import connect_temporal, make_object_store, object_lock_enabled
from mutabaqa.dev import child_environment
from mutabaqa.devstack import S3Ports, TemporalPorts, free_port, listening_pid, port_open
from mutabaqa.settings import Settings
from mutabaqa.worker import ACTIVITY_THREADS, worker_engine
from workflows.canary import CanaryWorkflow

HEALTHY_WITHIN = 60.0  # seconds, from the "done when"
#: Ctrl-C or SIGTERM stops every process of the stack within this, under load too.
STOPPED_WITHIN = 10.0


@dataclass(frozen=True)
class Ports:
    api: int
    temporal: TemporalPorts
    s3: S3Ports

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), TemporalPorts.free(), S3Ports.free())

    @property
    def all(self) -> list[int]:
        t = self.temporal
        return [self.api, t.grpc, t.ui, t.http, t.metrics, *self.s3.all]


def start_dev(data_dir: Path, ports: Ports, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUTABAQA_")}
    argv = [
        sys.executable,
        "-m",
        "mutabaqa",
        "dev",
        "--data-dir",
        str(data_dir),
        "--port",
        str(ports.api),
        "--temporal-port",
        str(ports.temporal.grpc),
        "--temporal-ui-port",
        str(ports.temporal.ui),
        "--temporal-http-port",
        str(ports.temporal.http),
        "--temporal-metrics-port",
        str(ports.temporal.metrics),
        "--s3-port",
        str(ports.s3.s3),
        "--s3-internal-port",
        str(ports.s3.internal_base),
    ]
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def banner_shown(log: Path) -> bool:
    """The start banner of the latest run is in the log (runs append to the same log)."""
    text = log.read_text(errors="replace")
    return text.count("Press Ctrl-C to stop.") >= text.count("starting Temporal dev server...")


def wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path) -> float:
    """Until /health answers 200 and the banner is out (it follows the API's first answer
    by up to a tenth of a second: the supervisor polls the API's port)."""
    started = time.monotonic()
    while time.monotonic() - started < HEALTHY_WITHIN:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
                if resp.status == 200 and banner_shown(log):
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"not healthy within {HEALTHY_WITHIN} s:\n{log.read_text()}")


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def stack_processes(pid: int) -> dict[str, int]:
    """The children of ``mutabaqa dev`` (pid), by role: temporal, s3, worker, api."""
    roles: dict[str, int] = {}
    for child in descendants(pid):
        argv = command_line(child)
        if len(argv) >= 2 and Path(argv[0]).name == "temporal" and argv[1] == "server":
            roles["temporal"] = child
        elif len(argv) >= 2 and Path(argv[0]).name == "weed":
            roles["s3"] = child
        elif argv[1:3] == ["-m", "mutabaqa"] and len(argv) > 3:
            roles[argv[3]] = child
    return roles


def interrupt(proc: subprocess.Popen[bytes], ports: Ports) -> None:
    """SIGINT, then check no child process and no listening port is left behind."""
    children = descendants(proc.pid)
    assert len(children) >= 4  # Temporal, the S3 store, the worker and the API
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)]
    assert [port for port in ports.all if port_open(port)] == []


def test_children_get_the_resolved_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        data_dir=Path("relative/data"),
        temporal_address="127.0.0.1:1234",
        s3_endpoint="http://127.0.0.1:5678",
        signing_retired_key_paths=[Path("/keys/old.pem")],
        jwt_secret="s" * 40,
        workflow_answer_seconds=2.5,
        smtp_starttls=True,
    )
    env = child_environment(settings)
    for key in [key for key in os.environ if key.startswith("MUTABAQA_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    seen = Settings()
    assert seen.data_dir == Path("relative/data").resolve()
    assert seen.database_url == settings.resolved_database_url
    assert seen == settings.model_copy(
        update={"data_dir": seen.data_dir, "database_url": seen.database_url}
    )


@pytest.mark.parametrize(
    "url", ["sqlite:////tmp/mutabaqa-pool-check.db", "postgresql+psycopg://u@127.0.0.1/db"]
)
def test_the_worker_pool_has_a_connection_for_every_activity_thread(url: str) -> None:
    engine = worker_engine(Settings(database_url=url))
    try:
        pool = engine.pool
        assert pool.size() >= ACTIVITY_THREADS  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def dev_settings(ports: Ports) -> Settings:
    return Settings(
        temporal_address=f"127.0.0.1:{ports.temporal.grpc}",
        s3_endpoint=f"http://127.0.0.1:{ports.s3.s3}",
    )


@pytest.mark.stack
async def test_dev_stack_runs_stops_cleanly_and_keeps_data_across_restarts(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "dev.log"
    ports = Ports.free()
    settings = dev_settings(ports)

    proc = start_dev(data_dir, ports, log)
    try:
        elapsed = wait_healthy(proc, ports.api, log)
        print(f"first start healthy after {elapsed:.1f} s")
        banner = log.read_text()
        assert f"http://127.0.0.1:{ports.api}/docs" in banner
        assert f"http://127.0.0.1:{ports.temporal.ui}" in banner
        assert settings.admin_email in banner

        # The API and the worker run in processes of their own, children of `mutabaqa dev`.
        roles = stack_processes(proc.pid)
        assert set(roles) == {"temporal", "s3", "worker", "api"}, roles
        assert len({proc.pid, *roles.values()}) == 5
        assert listening_pid(ports.api) == roles["api"]
        for name in ("api", "worker"):
            assert (data_dir / "logs" / f"{name}.log").exists()
            assert f"{name} {roles[name]}" in banner
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(f"http://127.0.0.1:{ports.temporal.ui}/")).status_code == 200

        store = make_object_store(settings)
        bucket = settings.s3_evidence_bucket
        assert object_lock_enabled(store, bucket)
        store.put_object(bucket, "canary/hello.txt", io.BytesIO(b"kept"), 4)
        intruder = Minio(
            f"127.0.0.1:{ports.s3.s3}", access_key="mutabaqa-dev", secret_key="wrong", secure=False
        )
        with pytest.raises(S3Error):
            intruder.list_objects(bucket).__next__()

        client = await connect_temporal(settings)
        canary_id = f"canary-{uuid.uuid4()}"
        await client.start_workflow(
            CanaryWorkflow.run,
            CanaryInput(delay_seconds=6, note="across a restart"),
            id=canary_id,
            task_queue=settings.temporal_task_queue,
            execution_timeout=timedelta(minutes=5),
        )
    finally:
        if proc.poll() is None:
            interrupt(proc, ports)

    proc = start_dev(data_dir, ports, log)
    try:
        wait_healthy(proc, ports.api, log)
        store = make_object_store(settings)
        kept = store.get_object(settings.s3_evidence_bucket, "canary/hello.txt")
        assert kept.read() == b"kept"
        kept.close()

        client = await connect_temporal(settings)
        result = await client.get_workflow_handle(canary_id, result_type=CanaryResult).result()
        assert result.fired_at - result.started_at >= timedelta(seconds=6)
        assert result.stack.database == "ok" and result.stack.object_store == "ok"

        with sqlite3.connect(data_dir / "mutabaqa.db") as db:
            assert db.execute("SELECT count(*) FROM technical_centre").fetchone() == (9,)
            assert db.execute("SELECT count(*) FROM scheme").fetchone() == (2,)
    finally:
        if proc.poll() is None:
            interrupt(proc, ports)


def wait_gone(pids: set[int], deadline: float) -> None:
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


async def _load(port: int, concurrency: int, started: asyncio.Event, stop: asyncio.Event) -> int:
    """``concurrency`` clients GETting /health in a loop until ``stop`` (bounded: 5 000
    requests, 60 s); ``started`` is set once as many answers came back. Returns answers."""
    answered = 0
    budget = 5000
    deadline = time.monotonic() + 60

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal answered, budget
        while not stop.is_set() and budget > 0 and time.monotonic() < deadline:
            budget -= 1
            try:
                await http.get(f"http://127.0.0.1:{port}/health")
                answered += 1
                if answered >= concurrency:
                    started.set()
            except httpx.HTTPError:
                await asyncio.sleep(0.05)  # the API is going away: keep knocking, gently

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=5, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return answered


@pytest.mark.stack
async def test_sigterm_under_load_stops_every_process_within_10_s(tmp_path: Path) -> None:
    ports = Ports.free()
    log = tmp_path / "dev.log"
    proc = start_dev(tmp_path / "data", ports, log)
    try:
        wait_healthy(proc, ports.api, log)
        stack = {proc.pid, *stack_processes(proc.pid).values()}
        assert len(stack) == 5

        started, stop = asyncio.Event(), asyncio.Event()
        load = asyncio.create_task(_load(ports.api, 40, started, stop))
        await asyncio.wait_for(started.wait(), 30)
        await asyncio.sleep(1)  # forty requests in flight, steadily

        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, STOPPED_WITHIN + 5)
        await asyncio.to_thread(wait_gone, stack, t0 + STOPPED_WITHIN + 5)
        elapsed = time.monotonic() - t0
        stop.set()
        answered = await load
        print(f"{answered} requests answered; stopped under load in {elapsed:.1f} s")
        assert code == 0, log.read_text()
        assert not [pid for pid in stack if alive(pid)]
        assert elapsed < STOPPED_WITHIN, log.read_text()
        assert [port for port in ports.all if port_open(port)] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def kill_stack(proc: subprocess.Popen[bytes], only_the_supervisor: bool = False) -> set[int]:
    """SIGKILL ``mutabaqa dev`` and (unless told otherwise) each of its children, by PID,
    back to back; returns the PIDs of the stack."""
    stack = {proc.pid, *descendants(proc.pid)}
    for pid in [proc.pid] if only_the_supervisor else sorted(stack):
        os.kill(pid, signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    return stack


@pytest.mark.stack
@pytest.mark.parametrize("victims", ["every process", "the supervisor only"])
def test_starts_again_right_after_a_sigkill(tmp_path: Path, victims: str) -> None:
    """Killed all at once, the stack starts again at once. With only ``mutabaqa dev``
    killed, its orphaned children take a few seconds to stop (SIGTERM from the kernel):
    the new stack waits for their ports instead of refusing to start."""
    data_dir = tmp_path / "data"
    ports = Ports.free()
    log = tmp_path / "dev.log"
    proc = start_dev(data_dir, ports, log)
    try:
        wait_healthy(proc, ports.api, log)
        old = kill_stack(proc, only_the_supervisor=victims == "the supervisor only")
        restarted = log.stat().st_size

        proc = start_dev(data_dir, ports, log)
        elapsed = wait_healthy(proc, ports.api, log)
        second_run = log.read_text()[restarted:]
        waited = "waiting up to" in second_run
        print(f"healthy again {elapsed:.1f} s after the kill of {victims} (waited: {waited})")
        assert not [pid for pid in old if alive(pid)]  # the orphans are gone
        assert set(stack_processes(proc.pid)) == {"temporal", "s3", "worker", "api"}
    finally:
        if proc.poll() is None:
            interrupt(proc, ports)


@pytest.mark.stack
def test_a_child_that_dies_stops_the_stack_with_a_clear_message(tmp_path: Path) -> None:
    """Not restarted: the stack stops, names the child, its exit and its log, exits 1."""
    ports = Ports.free()
    log = tmp_path / "dev.log"
    proc = start_dev(tmp_path / "data", ports, log)
    try:
        wait_healthy(proc, ports.api, log)
        roles = stack_processes(proc.pid)
        os.kill(roles["worker"], signal.SIGKILL)
        assert proc.wait(STOPPED_WITHIN + 5) == 1
        output = log.read_text()
        assert f"the worker process (pid {roles['worker']}) was killed by signal 9" in output
        assert str(tmp_path / "data" / "logs" / "worker.log") in output
        wait_gone(set(roles.values()), time.monotonic() + 5)
        assert not [pid for pid in roles.values() if alive(pid)]
        assert [port for port in ports.all if port_open(port)] == []
    finally:
        if proc.poll() is None:
            interrupt(proc, ports)
