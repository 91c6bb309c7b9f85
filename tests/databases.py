"""Databases and deployments of a test's own.

A test that needs counts, lists or numbers nobody else writes to gets a database of its
own (a new PostgreSQL database on the machine's server, dropped afterwards, or an SQLite
file) and, when it runs workflows, a deployment of its own on the session's Temporal
server: its task queue, its buckets and its certificate prefix. The prefix matters:
workflow ids such as ``certificate-<number>`` are unique per Temporal namespace, and two
databases both count certificates from 1, so without it a second deployment's
``certificate-MA-CTTH-2026-000001`` would be the session's workflow.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from mutabaqa.clients import ensure_buckets, make_object_store
from mutabaqa.db import create_db_engine
from mutabaqa.migrate import upgrade
from mutabaqa.seed import seed
from mutabaqa.settings import Settings
from mutabaqa.signing import KeyRing

PG_ADMIN_DSN = os.environ.get(
    "MUTABAQA_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def pg_url_of(name: str) -> str:
    """The SQLAlchemy URL of database ``name`` on the test PostgreSQL server."""
    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_DSN)
    user = info.get("user", "postgres")
    host = info.get("host", "127.0.0.1")
    port = info.get("port", 5432)
    return f"postgresql+psycopg://{user}@{host}:{port}/{name}"


@contextmanager
def private_pg_database(label: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped on exit even if still in use."""
    name = f"mutabaqa_{label}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url_of(name)
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def private_database(database: str, directory: Path, label: str) -> Iterator[str]:
    """An empty database of the kind ``database`` names (``sqlite``: a file in
    ``directory``; ``postgresql``: a database of its own)."""
    if database == "sqlite":
        yield f"sqlite:///{directory / f'{label}.db'}"
        return
    with private_pg_database(label) as url:
        yield url


def own_deployment(settings: Settings, database_url: str, label: str, **extra: Any) -> Settings:
    """``settings`` on another database, with a task queue, buckets and certificate prefix
    of their own (``label``: a few lowercase letters naming the test)."""
    suffix = uuid.uuid4().hex[:8]
    update: dict[str, Any] = {
        "database_url": database_url,
        "temporal_task_queue": f"{label}-{suffix}",
        "s3_evidence_bucket": f"{label}-evidence-{suffix}",
        "s3_certificates_bucket": f"{label}-certificates-{suffix}",
        "certificate_prefix": f"T{suffix[:4].upper()}",
    }
    update.update(extra)
    return settings.model_copy(update=update)


def prepare(settings: Settings) -> Settings:
    """Make ``settings``' deployment ready to run: its database migrated and seeded with
    the reference data, its buckets, and its signing key with the public half (as
    ``mutabaqa dev`` prepares them before it starts the API and the worker)."""
    url = settings.resolved_database_url
    upgrade(url, settings=settings)
    engine = create_db_engine(url)
    try:
        seed(engine)
    finally:
        engine.dispose()
    ensure_buckets(make_object_store(settings), settings)
    KeyRing.ensure(settings)
    return settings
