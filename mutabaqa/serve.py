"""Long-running processes: the API server and the worker (``mutabaqa dev`` runs each as a
child process of its own, as production does).

Both stop on SIGINT/SIGTERM within a bound: the API lets requests in flight finish for up to
``API_SHUTDOWN_SECONDS``, the worker lets activities finish for up to
``WORKER_SHUTDOWN_SECONDS`` — below the 10 s that ``mutabaqa dev`` and ``docker compose
stop`` allow before SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Generator

import uvicorn
from minio import Minio
from sqlalchemy.engine import Engine

from api.app import create_app
from mutabaqa.clients import connect_temporal
from mutabaqa.logs import configure_logging, uvicorn_log_config
from mutabaqa.settings import Settings
from mutabaqa.tracing import setup_tracing, shutdown_tracing, worker_runtime
from mutabaqa.worker import WORKER_SHUTDOWN_SECONDS, run_worker

#: Requests in flight at shutdown get this long to finish (uvicorn's graceful timeout).
API_SHUTDOWN_SECONDS = 3
#: How long an idle keep-alive connection stays open. Clients (httpx: 5 s, browsers:
#: longer) expire theirs first, so a request is never sent on a connection the server is
#: closing at that moment (a reset the client sees as a read error); uvicorn's default is 5 s.
KEEP_ALIVE_SECONDS = 75


class _Server(uvicorn.Server):
    """Uvicorn without its own signal handling: the caller decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def api_config(
    settings: Settings,
    *,
    host: str,
    port: int,
    log_level: str = "info",
    shutdown_seconds: int = API_SHUTDOWN_SECONDS,
) -> uvicorn.Config:
    """Uvicorn's configuration of the API. Proxy headers (``X-Forwarded-For``,
    ``X-Forwarded-Proto``) are believed only from the addresses in
    ``MUTABAQA_FORWARDED_ALLOW_IPS`` (none by default): behind such a proxy the client
    address — the key of the public rate limit, the address in the access log — is the
    caller's; from anyone else the headers are ignored."""
    trusted = settings.forwarded_allow_ips_list
    return uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        lifespan="on",
        log_level=log_level,
        # Uvicorn's records go through the root logger's handler (``mutabaqa/logs.py``):
        # the configured format, with the request id.
        log_config=uvicorn_log_config(),
        timeout_graceful_shutdown=shutdown_seconds,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
    )


async def serve_api(
    settings: Settings,
    *,
    host: str,
    port: int,
    log_level: str = "info",
    shutdown_seconds: int = API_SHUTDOWN_SECONDS,
) -> None:
    """Serve the API until SIGINT/SIGTERM (or until the server stops by itself)."""
    configure_logging(settings)
    setup_tracing(settings, "api")
    stop = asyncio.Event()
    _stop_on_signals(stop)
    server = _Server(
        api_config(
            settings,
            host=host,
            port=port,
            log_level=log_level,
            shutdown_seconds=shutdown_seconds,
        )
    )
    task = asyncio.create_task(server.serve())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
    shutdown_tracing()
    task.result()  # a server that could not start (port taken...) raises here
    if not server.started and not stop.is_set():
        raise SystemExit(1)  # uvicorn logged why (e.g. the lifespan start-up failed)


async def serve_worker(
    settings: Settings,
    engine: Engine,
    store: Minio,
    *,
    shutdown_seconds: float = WORKER_SHUTDOWN_SECONDS,
) -> None:
    """Run a worker until SIGINT/SIGTERM, then shut down within ``shutdown_seconds``.

    Past that bound, activity threads still busy (a synchronous activity blocked in the
    database, say) are abandoned: the process exits at once with status 1, and Temporal
    retries those activities after their timeout.
    """
    configure_logging(settings)
    setup_tracing(settings, "worker")
    stop = asyncio.Event()
    _stop_on_signals(stop)
    client = await connect_temporal(settings, runtime=worker_runtime(settings))
    clean = await run_worker(
        client, settings, engine, store, stop, shutdown_seconds=shutdown_seconds
    )
    shutdown_tracing()
    if not clean:
        print(
            f"worker: activities still running {shutdown_seconds:g} s after the stop; "
            "exiting without them (Temporal retries them)",
            file=sys.stderr,
            flush=True,
        )
        logging.shutdown()
        os._exit(1)  # the interpreter would join the busy activity threads at exit
