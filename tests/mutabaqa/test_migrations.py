"""Migrations run on SQLite and PostgreSQL, and the models match them (``alembic check``)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from mutabaqa.migrate import alembic_config, check, upgrade

TABLES = {
    "technical_centre", "scheme", "scheme_test_item", "alembic_version", "organization",
    "app_user", "product", "certification_request", "stored_file", "sample",
    "request_action", "number_counter", "audit_event", "audit_chain_head", "webhook",
    "webhook_delivery",
}  # fmt: skip


def test_sqlite_upgrade_downgrade_and_no_drift(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    check(url)
    engine = sa.create_engine(url)
    assert set(sa.inspect(engine).get_table_names()) >= TABLES
    command.downgrade(alembic_config(url), "base")
    assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    upgrade(url)
    check(url)
    engine.dispose()


def test_postgresql_is_at_head_with_no_drift(pg_url: str, settings: object) -> None:
    # The session fixture already migrated this database; a second upgrade is a no-op.
    upgrade(pg_url)
    check(pg_url)
    engine = sa.create_engine(pg_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            # Enums are text, not native PostgreSQL types, so migrations stay portable.
            native = conn.execute(sa.text("SELECT count(*) FROM pg_type WHERE typtype = 'e'"))
            assert native.scalar_one() == 0
    finally:
        engine.dispose()
