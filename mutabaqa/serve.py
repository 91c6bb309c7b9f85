"""Long-running processes: the API server, the worker, and both together for the dev stack."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Generator

import uvicorn
from minio import Minio
from sqlalchemy.engine import Engine

from api.app import create_app
from mutabaqa.clients import connect_temporal
from mutabaqa.settings import Settings
from mutabaqa.worker import run_worker


class _Server(uvicorn.Server):
    """Uvicorn without its own signal handling: the caller decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _until_stopped(stop: asyncio.Event, *tasks: asyncio.Task[None]) -> None:
    """Wait for ``stop`` or for any task to end (a crash stops everything)."""
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({stopper, *tasks}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    stopper.cancel()
    for task in done:
        if task is not stopper and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def serve_api(settings: Settings, *, host: str, port: int) -> None:
    stop = asyncio.Event()
    _stop_on_signals(stop)
    server = _Server(uvicorn.Config(create_app(settings), host=host, port=port, lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        await _until_stopped(stop, task)
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)


async def serve_worker(settings: Settings, engine: Engine, store: Minio) -> None:
    stop = asyncio.Event()
    _stop_on_signals(stop)
    client = await connect_temporal(settings)
    await run_worker(client, settings, engine, store, stop)


async def serve_all(
    settings: Settings, engine: Engine, store: Minio, *, host: str, port: int
) -> None:
    """The API and a worker in one process (the embedded dev stack)."""
    stop = asyncio.Event()
    _stop_on_signals(stop)
    client = await connect_temporal(settings)
    server = _Server(
        uvicorn.Config(
            create_app(settings, temporal=client),
            host=host,
            port=port,
            lifespan="on",
            log_level="warning",
        )
    )
    api_task = asyncio.create_task(server.serve())
    worker_task = asyncio.create_task(run_worker(client, settings, engine, store, stop))
    try:
        await _until_stopped(stop, api_task, worker_task)
    finally:
        server.should_exit = True
        stop.set()
        await asyncio.gather(api_task, worker_task, return_exceptions=True)
