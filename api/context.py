"""What the API holds for its lifetime: settings, database engine, store and Temporal clients,
and the public keys that verify certificates (never a private key: workers sign), the bound
on concurrent uploads and on concurrent password hashes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Concatenate, ParamSpec, TypeVar

from minio import Minio
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from api.passwords import PasswordGate
from api.uploads import UploadSlots
from mutabaqa.clients import connect_temporal, make_object_store, make_presigning_store
from mutabaqa.db import create_db_engine, write_session
from mutabaqa.settings import Settings
from mutabaqa.signing import PublicKeySet

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    store: Minio
    health_store: Minio
    presigner: Minio
    #: The published keys, read from public-key files only.
    public_keys: PublicKeySet
    #: Uploads this process streams at once (``MUTABAQA_MAX_CONCURRENT_UPLOADS``).
    upload_slots: UploadSlots
    #: The bound on concurrent password hashes in this process.
    passwords: PasswordGate
    _temporal: Client | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def create(cls, settings: Settings, *, temporal: Client | None = None) -> AppContext:
        public_keys = PublicKeySet.load(settings)  # first: a missing key file stops start-up
        return cls(
            settings=settings,
            engine=create_db_engine(
                settings.resolved_database_url,
                pool_size=settings.api_db_pool_size,
                max_overflow=settings.api_db_max_overflow,
                pool_timeout=settings.db_pool_timeout_seconds,
            ),
            store=make_object_store(settings),
            # Health checks must answer fast when the store is down: no retries.
            health_store=make_object_store(
                settings, timeout=settings.health_timeout_seconds, retries=0
            ),
            presigner=make_presigning_store(settings),
            public_keys=public_keys,
            upload_slots=UploadSlots(settings.max_concurrent_uploads),
            passwords=PasswordGate(
                settings.password_hash_concurrency, settings.password_hash_wait_seconds
            ),
            _temporal=temporal,
        )

    async def temporal(self) -> Client:
        """The Temporal client, connected on first use (the API starts even if Temporal is down)."""
        if self._temporal is None:
            async with self._lock:
                if self._temporal is None:
                    self._temporal = await connect_temporal(self.settings)
        return self._temporal

    def session(self) -> Session:
        """A short-lived read session, for synchronous code (a sync route or dependency)."""
        return Session(self.engine)

    async def read(
        self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(session, ...)`` in the thread pool with a read session of its own, closed
        before this returns: async routes do their database work only through this (or
        :meth:`write`), so no connection, transaction or lock is held while they await
        Temporal or the object store, and the event loop never blocks on the database."""

        def call() -> T:
            with Session(self.engine) as session:
                return fn(session, *args, **kwargs)

        return await run_in_threadpool(call)

    async def write(
        self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like :meth:`read`, in a short write transaction committed when ``fn`` returns."""

        def call() -> T:
            with write_session(self.engine) as session, session.begin():
                return fn(session, *args, **kwargs)

        return await run_in_threadpool(call)

    def close(self) -> None:
        self.engine.dispose()
