"""The processes the fault suite starts, each by itself so that each can be killed alone: a
Temporal dev server and an S3 store (SeaweedFS) as ``mutabaqa dev`` starts them, a
``mutabaqa worker`` and a ``mutabaqa api``, and, for the PostgreSQL pass, a private
PostgreSQL 15 cluster (``initdb`` + ``pg_ctl``, never the machine's shared server).

``mutabaqa dev`` itself is not used: it stops the whole stack when one child dies, and the
suite kills children one at a time. Every process is started with ``Popen`` and ended by its
PID.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from models import search_attributes
from mutabaqa.clients import ensure_buckets, make_object_store
from mutabaqa.db import create_db_engine
from mutabaqa.dev import child_environment
from mutabaqa.devstack import (
    ChildProcess,
    S3Ports,
    TemporalPorts,
    free_port,
    port_open,
    start_s3,
    start_temporal,
)
from mutabaqa.migrate import upgrade
from mutabaqa.seed import seed
from mutabaqa.settings import Settings
from mutabaqa.trust import ensure_signing_material
from tests.smtp import SmtpSink

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
#: How long the API may take to listen after it is started.
API_READY_SECONDS = 60.0


def _die_with_parent() -> None:  # in the child, between fork and exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class PrivatePostgres:
    """A PostgreSQL 15 cluster of the suite's own, in a fresh directory under /tmp, on a
    free loopback port. As root, ``initdb`` refuses to run: the cluster then belongs to the
    ``postgres`` user (``runuser``)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mutabaqa-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.as_user: str | None = "postgres" if os.geteuid() == 0 else None
        if self.as_user:
            user = pwd.getpwnam(self.as_user)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.started_pids: list[int] = []

    def _run(self, *argv: str, timeout: float = 120) -> None:
        prefix = ["runuser", "-u", self.as_user, "--"] if self.as_user else []
        done = subprocess.run(
            [*prefix, *argv], capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{argv[0]} failed: {done.stdout}{done.stderr}\n{log}")

    def init(self) -> None:
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> int:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip
        pid = self.pid()
        assert pid is not None, "the cluster started without a postmaster.pid"
        self.started_pids.append(pid)
        return pid

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        """Stop the cluster (by its PID if ``pg_ctl`` cannot) and remove its directory."""
        pid = self.pid()
        if pid is not None:
            try:
                self.stop("fast")
            except (RuntimeError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


class FaultStack:
    """Temporal, the S3 store, one worker and one API on free ports, data in ``root``."""

    def __init__(self, root: Path, database_url: str | None, mailbox: SmtpSink) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.temporal_ports = TemporalPorts.free()
        self.s3_ports = S3Ports.free()
        self.api_port = free_port()
        self.settings = Settings(
            env="development",
            data_dir=self.data_dir,
            database_url=database_url or f"sqlite:///{self.data_dir / 'mutabaqa.db'}",
            temporal_address=f"127.0.0.1:{self.temporal_ports.grpc}",
            s3_endpoint=f"http://127.0.0.1:{self.s3_ports.s3}",
            api_host="127.0.0.1",
            api_port=self.api_port,
            **mailbox.settings_update(),
        )
        self.temporal: ChildProcess | None = None
        self.s3: ChildProcess | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.workers_started = 0

    # --- services --------------------------------------------------------------------------

    def start_temporal(self) -> None:
        self.temporal = start_temporal(
            self.data_dir, self.temporal_ports, search_attributes.ALL, ui=False, timeout=60
        )

    def start_s3(self) -> None:
        settings = self.settings
        probe = make_object_store(settings, timeout=2.0, retries=0)
        self.s3 = start_s3(
            self.data_dir,
            self.s3_ports,
            settings.s3_access_key,
            settings.s3_secret_key.get_secret_value(),
            ready=lambda: probe.list_buckets() is not None,
            timeout=60,
        )

    def prepare(self) -> None:
        """What ``mutabaqa dev`` does before it starts the worker and the API."""
        settings = self.settings
        ensure_buckets(make_object_store(settings), settings)
        upgrade(settings.resolved_database_url, settings=settings)
        engine = create_db_engine(settings.resolved_database_url)
        try:
            seed(engine)
        finally:
            engine.dispose()
        ensure_signing_material(settings)

    def _app(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "mutabaqa", name, *args],
                cwd=ROOT,
                env=child_environment(self.settings),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    def start_worker(self) -> None:
        self.worker = self._app("worker")
        self.workers_started += 1

    def start_api(self) -> None:
        self.api = self._app("api", "--log-level", "warning")
        deadline = time.monotonic() + API_READY_SECONDS
        while not port_open(self.api_port):
            assert self.api.poll() is None, self.log_tail("api")
            assert time.monotonic() < deadline, "the API does not listen: " + self.log_tail("api")
            time.sleep(0.1)

    def start(self) -> None:
        self.start_temporal()
        self.start_s3()
        self.prepare()
        self.start_worker()
        self.start_api()

    # --- faults ----------------------------------------------------------------------------

    def kill_worker(self) -> int:
        """SIGKILL the worker by its PID; returns the PID."""
        assert self.worker is not None and self.worker.poll() is None, self.log_tail("worker")
        pid = self.worker.pid
        os.kill(pid, signal.SIGKILL)
        assert self.worker.wait(10) == -signal.SIGKILL
        return pid

    def kill_temporal(self) -> int:
        assert self.temporal is not None and self.temporal.popen.poll() is None
        pid = self.temporal.pid
        os.kill(pid, signal.SIGKILL)
        assert self.temporal.popen.wait(10) == -signal.SIGKILL
        self.temporal.close_log()
        return pid

    def stop_s3(self) -> int:
        """Stop the S3 store (SIGTERM, SIGKILL after 10 s); returns its PID."""
        assert self.s3 is not None and self.s3.popen.poll() is None
        pid = self.s3.pid
        self.s3.stop()
        return pid

    # --- the end ---------------------------------------------------------------------------

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        text = path.read_text(errors="replace")
        return text[-chars:] if chars else text

    def close(self) -> None:
        """SIGTERM each process this stack started (by PID), SIGKILL what is left."""
        for proc in (self.api, self.worker):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(10)
        for child in (self.s3, self.temporal):
            if child is not None:
                child.stop()
