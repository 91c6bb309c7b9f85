"""The database engine: PostgreSQL in production, SQLite (WAL) for the embedded stack.

Two kinds of transaction, one rule for both databases:

- **reads** (``Session(engine)``, ``read_session``) are plain transactions; on SQLite they
  are *deferred*, so any number of readers run beside one writer (WAL) and never take the
  write lock;
- **writes** (``session_scope``, ``write_session``) run on ``writer(engine)``; on SQLite they
  start with ``BEGIN IMMEDIATE``, taking the write lock at once and waiting for it up to
  the busy timeout instead of failing half-way with ``database is locked``. Keep them short:
  no network call, no object-store call inside one.

Nothing here is held across an ``await``: sessions are opened, used and closed in one
synchronous block (an activity, a route running in the thread pool).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

SQLITE_BUSY_TIMEOUT_MS = 15_000
#: The execution option that marks a write transaction (``BEGIN IMMEDIATE`` on SQLite).
WRITE_OPTION = "mutabaqa_write"


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """Build an engine; SQLite gets WAL, a busy timeout, deferred reads and immediate writes.

    ``kwargs`` go to :func:`sqlalchemy.create_engine` (e.g. ``pool_size`` and
    ``max_overflow``, sized by the process to the threads that use the engine).
    """
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        else:  # in memory: one connection per thread, no pool to size
            for name in ("pool_size", "max_overflow", "pool_timeout"):
                kwargs.pop(name, None)
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **kwargs,
        )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below decide
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            write = conn.get_execution_options().get(WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)


def writer(engine: Engine) -> Engine:
    """The same engine (same pool), marked so that its transactions are write transactions."""
    return engine.execution_options(**{WRITE_OPTION: True})


def write_session(engine: Engine) -> Session:
    """A session for a short write transaction (commit it yourself)."""
    return Session(writer(engine))


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A write transaction that commits on success and rolls back on error."""
    with write_session(engine) as session, session.begin():
        yield session


def ping(engine: Engine) -> None:
    """Raise if the database does not answer ``SELECT 1``."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
