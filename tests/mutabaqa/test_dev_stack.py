"""``mutabaqa dev`` as a newcomer runs it: up and healthy, stopped cleanly, restarted with
its data — and a durable timer started before the restart fires after it."""

from __future__ import annotations

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
from mutabaqa.devstack import S3Ports, TemporalPorts, free_port, port_open
from mutabaqa.settings import Settings
from workflows.canary import CanaryWorkflow

pytestmark = pytest.mark.stack

HEALTHY_WITHIN = 60.0  # seconds, from the "done when"


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


def wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path) -> float:
    started = time.monotonic()
    while time.monotonic() - started < HEALTHY_WITHIN:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
                if resp.status == 200:
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


def interrupt(proc: subprocess.Popen[bytes], ports: Ports) -> None:
    """SIGINT, then check no child process and no listening port is left behind."""
    children = descendants(proc.pid)
    assert len(children) >= 2  # the Temporal server and the S3 store at least
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)]
    assert [port for port in ports.all if port_open(port)] == []


def dev_settings(ports: Ports) -> Settings:
    return Settings(
        temporal_address=f"127.0.0.1:{ports.temporal.grpc}",
        s3_endpoint=f"http://127.0.0.1:{ports.s3.s3}",
    )


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
