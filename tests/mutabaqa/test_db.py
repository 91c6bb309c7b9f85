"""The embedded database's transactions: readers never wait for the writer, writers take
the lock at their start (SQLite in WAL mode)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

from mutabaqa.db import create_db_engine, session_scope


def _engine(tmp_path: Path) -> sa.Engine:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with session_scope(engine) as session:
        session.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        session.execute(sa.text("INSERT INTO t VALUES (1)"))
    return engine


def test_a_read_in_progress_does_not_hold_the_write_lock(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    with Session(engine) as reader:
        assert reader.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 1
        # The read transaction is still open; a writer on another connection goes ahead.
        with session_scope(engine) as writer:
            writer.execute(sa.text("INSERT INTO t VALUES (2)"))
        # The reader keeps its snapshot until its transaction ends.
        assert reader.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 1
    with Session(engine) as fresh:
        assert fresh.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 2
    engine.dispose()


def test_a_reader_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    writing = threading.Event()
    release = threading.Event()

    def write() -> None:
        with session_scope(engine) as writer:
            writer.execute(sa.text("INSERT INTO t VALUES (3)"))
            writing.set()
            release.wait(30)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        assert writing.wait(30)
        with Session(engine) as reader:  # the write lock is held by the thread meanwhile
            assert reader.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 1
        assert thread.is_alive()  # the writer was still in its transaction during the read
    finally:
        release.set()
        thread.join(30)
    engine.dispose()


def test_writers_queue_for_the_lock_instead_of_failing(tmp_path: Path) -> None:
    """Write transactions start with BEGIN IMMEDIATE: a second writer waits for the first
    (busy timeout) rather than failing with 'database is locked' when it upgrades."""
    engine = _engine(tmp_path)
    errors: list[BaseException] = []

    def write(value: int) -> None:
        try:
            with session_scope(engine) as writer:
                count = writer.execute(sa.text("SELECT count(*) FROM t")).scalar_one()
                time.sleep(0.05)  # read, think, then write: the classic lock upgrade
                writer.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": value + count})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with Session(engine) as session:
        assert session.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 9
    engine.dispose()
