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


def test_the_search_text_of_certificates_issued_before_0012_is_filled(tmp_path: Path) -> None:
    """A certificate stored before the directory's search column existed is found by it."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0011_gtin")
    engine = sa.create_engine(url)
    payload = (
        '{"number": "MA-CTTH-2026-000042", "holder": {"name": "Atlas Protective SARL", '
        '"name_ar": "أطلس"}, "product": {"name": "Masque FFP2", "brand": "Atlas", '
        '"model": "AT-200"}}'
    )
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.execute(
            sa.text(
                "INSERT INTO certificate (id, number, issue, request_id, organization_id, "
                "centre_code, status, status_since, payload, test_report_digest, issued_on, "
                "valid_until, created_at) VALUES ('c1', 'MA-CTTH-2026-000042', 0, 'r1', 'o1', "
                "'CTTH', 'active', '2026-01-01 00:00:00', :payload, 'sha256:00', '2026-01-01', "
                "'2028-12-31', '2026-01-01 00:00:00')"
            ),
            {"payload": payload},
        )
    upgrade(url)
    with engine.connect() as conn:
        text = conn.execute(sa.text("SELECT search_text FROM certificate")).scalar_one()
    engine.dispose()
    assert text.split("\n") == [
        "ma-ctth-2026-000042", "atlas protective sarl", "أطلس", "masque ffp2", "atlas", "at-200",
    ]  # fmt: skip
