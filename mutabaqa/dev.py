"""``mutabaqa dev``: the whole product on one machine, data kept in one directory.

This process supervises. It starts the Temporal dev server and the S3 store unless they are
configured, prepares the data (buckets, migrations, reference data, signing material — once,
so that no two processes race to create keys), then runs the worker and the API as two
child processes, ``mutabaqa worker`` and ``mutabaqa api``, each with its own interpreter,
event loop and database pool, configured by ``MUTABAQA_*`` variables that hold the resolved
settings. Every child logs to ``<data dir>/logs/<name>.log`` and dies with this process
(``PR_SET_PDEATHSIG``) even if it is SIGKILLed.

A child that stops by itself stops the stack: the message names the child, its exit status
and its log (with the log's last lines), and ``mutabaqa dev`` exits with status 1. It is
not restarted: in development a crash is a bug or a misconfiguration to look at, not to
hide, and nothing is lost — the workflows wait in Temporal and carry on when the stack
starts again.

Ctrl-C or SIGTERM stops the API and the worker together (each bounds its own graceful
shutdown, and is SIGKILLed past ``APPS_STOP_SECONDS``), then the services (SIGKILL past
``SERVICES_STOP_SECONDS``): the stack is down within 10 s, under load too. Started again
right after a crash, a service whose port is still held (an orphan of the killed run,
stopping) waits up to ``PORT_WAIT_SECONDS`` for it, saying so.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field

import typer
from pydantic import SecretStr

from models import search_attributes
from mutabaqa.clients import ensure_buckets, make_object_store
from mutabaqa.db import create_db_engine
from mutabaqa.devstack import (
    LOOPBACK,
    ChildProcess,
    S3Ports,
    StackError,
    TemporalPorts,
    port_open,
    spawn,
    start_s3,
    start_temporal,
    stop_together,
    wait_ports_free,
)
from mutabaqa.migrate import upgrade
from mutabaqa.seed import seed
from mutabaqa.settings import Settings, SettingsError
from mutabaqa.trust import ensure_signing_material

#: The API and the worker get this long to stop (their own bounds are shorter).
APPS_STOP_SECONDS = 5.0
#: Then Temporal and the S3 store get this long.
SERVICES_STOP_SECONDS = 3.0
#: How long the API may take to listen once started.
API_READY_SECONDS = 60.0


@dataclass(frozen=True)
class DevOptions:
    temporal: TemporalPorts = field(default_factory=TemporalPorts)
    s3: S3Ports = field(default_factory=S3Ports)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment of a child process configured exactly like ``settings``: this
    process's environment without its ``MUTABAQA_*`` variables, plus one variable per
    setting (services resolved to the addresses this stack uses)."""
    settings = settings.model_copy(
        update={
            "data_dir": settings.data_dir.resolve(),
            "database_url": settings.resolved_database_url,
            "temporal_address": settings.resolved_temporal_address,
            "s3_endpoint": settings.resolved_s3_endpoint,
        }
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("MUTABAQA_")}
    as_json = settings.model_dump(mode="json")
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, list | tuple | set | dict):
            text = json.dumps(as_json[name])  # complex settings are JSON in the environment
        else:
            text = str(value)
        env[f"MUTABAQA_{name.upper()}"] = text
    env["PYTHONUNBUFFERED"] = "1"  # a crash's last words reach the log
    return env


def _ignore_stop_signals() -> None:
    """While stopping (bounded anyway), a second Ctrl-C must not cut the stop short."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def _exited(child: ChildProcess) -> StackError:
    code = child.popen.returncode
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    what = f"the {child.name} process (pid {child.pid}) {how}"
    _say(f"\n{what}; stopping the stack (it is not restarted: start it again).")
    tail = child.log_tail(15)
    return StackError(
        f"{what}; see its log {child.log}" + (f"\n--- last lines ---\n{tail}" if tail else "")
    )


def _check_alive(children: list[ChildProcess]) -> None:
    for child in children:
        if child.popen.poll() is not None:
            raise _exited(child)


def _stop(apps: list[ChildProcess], services: list[ChildProcess]) -> None:
    started = time.monotonic()
    groups = ((apps, APPS_STOP_SECONDS), (list(reversed(services)), SERVICES_STOP_SECONDS))
    for group, bound in groups:
        running = [child for child in group if child.popen.poll() is None]
        if not running:
            continue
        _say(f"stopping {', '.join(f'{child.name} (pid {child.pid})' for child in running)}...")
        took = stop_together(running, bound)
        _say(
            "  "
            + ", ".join(
                f"{name} killed (still running {bound:g} s after SIGTERM)"
                if seconds is None
                else f"{name} stopped in {seconds:.1f} s"
                for name, seconds in took.items()
            )
        )
    _say(f"stopped in {time.monotonic() - started:.1f} s.")


def run_dev(settings: Settings, options: DevOptions) -> None:
    """Start what is missing, prepare the data, run the worker and the API as child
    processes, supervise them until SIGINT/SIGTERM (or until one stops: StackError), stop
    every child."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    settings = settings.model_copy(update={"data_dir": data_dir})
    services: list[ChildProcess] = []
    apps: list[ChildProcess] = []
    try:
        ui_url = None
        if not settings.temporal_address:
            _say("starting Temporal dev server...")
            services.append(
                start_temporal(data_dir, options.temporal, search_attributes.ALL, say=_say)
            )
            settings = settings.model_copy(
                update={"temporal_address": f"127.0.0.1:{options.temporal.grpc}"}
            )
            ui_url = f"http://127.0.0.1:{options.temporal.ui}"
        if not settings.s3_endpoint:
            _say("starting S3 store...")
            settings = settings.model_copy(
                update={"s3_endpoint": f"http://127.0.0.1:{options.s3.s3}"}
            )
            probe = make_object_store(settings, timeout=2.0, retries=0)
            services.append(
                start_s3(
                    data_dir,
                    options.s3,
                    settings.s3_access_key,
                    settings.s3_secret_key.get_secret_value(),
                    ready=lambda: probe.list_buckets() is not None,
                    say=_say,
                )
            )
        ensure_buckets(make_object_store(settings), settings)
        upgrade(settings.resolved_database_url, settings=settings)
        engine = create_db_engine(settings.resolved_database_url)
        try:
            report = seed(engine)
        finally:
            engine.dispose()
        try:
            ensure_signing_material(settings)  # here, so the children never race to create it
        except SettingsError as exc:
            raise StackError(str(exc)) from None

        probe_host = (
            settings.api_host if settings.api_host not in ("0.0.0.0", "::", "") else LOOPBACK
        )
        wait_ports_free([settings.api_port], what="API", say=_say)
        env = child_environment(settings)
        python = [sys.executable, "-m", "mutabaqa"]
        apps.append(
            spawn(
                "worker", [*python, "worker"], log=logs / "worker.log", env=env, inherit_env=False
            )
        )
        apps.append(
            spawn(
                "api",
                [*python, "api", "--log-level", "warning"],
                log=logs / "api.log",
                env=env,
                inherit_env=False,
                ports=(settings.api_port,),
            )
        )
        deadline = time.monotonic() + API_READY_SECONDS
        while not port_open(settings.api_port, probe_host):
            _check_alive(services + apps)
            if time.monotonic() > deadline:
                raise StackError(
                    f"the API is not listening after {API_READY_SECONDS:.0f} s; "
                    f"see {logs / 'api.log'}"
                )
            time.sleep(0.1)

        base = f"http://{settings.api_host}:{settings.api_port}"
        admin = f"{settings.admin_email} / {settings.admin_password.get_secret_value()}"
        pids = ", ".join(f"{child.name} {child.pid}" for child in services + apps)
        _say(
            "\nMutabaqa is running\n"
            f"  API docs     {base}/docs\n"
            f"  health       {base}/health\n"
            + (f"  Temporal UI  {ui_url}\n" if ui_url else "")
            + f"  Temporal     {settings.resolved_temporal_address}"
            f" (namespace {settings.temporal_namespace})\n"
            f"  S3           {settings.resolved_s3_endpoint}"
            f" (access key {settings.s3_access_key})\n"
            f"  database     {settings.resolved_database_url}\n"
            f"  admin login  {admin}\n"
            f"  data         {data_dir}"
            + (" (reference data seeded)" if report.changed else "")
            + f"\n  processes    {pids} (logs in {logs})"
            + "\nPress Ctrl-C to stop.\n"
        )
        while True:
            _check_alive(services + apps)
            time.sleep(0.2)
    finally:
        _ignore_stop_signals()
        _stop(apps, services)
