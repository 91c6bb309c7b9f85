"""What the API holds for its lifetime: settings, database engine, store and Temporal clients,
and the certificate signing keys."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from minio import Minio
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client

from activities.signing import KeyRing
from mutabaqa.clients import connect_temporal, make_object_store, make_presigning_store
from mutabaqa.db import create_db_engine
from mutabaqa.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    store: Minio
    health_store: Minio
    presigner: Minio
    #: Certificate signing keys (``KeyRing.ensure``: generated on first start in development).
    keyring: KeyRing
    _temporal: Client | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def create(cls, settings: Settings, *, temporal: Client | None = None) -> AppContext:
        keyring = KeyRing.ensure(settings)  # first: a missing production key stops start-up
        return cls(
            settings=settings,
            engine=create_db_engine(settings.resolved_database_url),
            store=make_object_store(settings),
            # Health checks must answer fast when the store is down: no retries.
            health_store=make_object_store(
                settings, timeout=settings.health_timeout_seconds, retries=0
            ),
            presigner=make_presigning_store(settings),
            keyring=keyring,
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
        """A short-lived session (for routes that must not hold one while streaming)."""
        return Session(self.engine)

    def close(self) -> None:
        self.engine.dispose()
