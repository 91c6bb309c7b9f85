"""Migration 0007 puts the keys recorded before it into their namespace: the record's
``actor_id`` says which were system steps (``system``) and which a person's actions."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from mutabaqa.migrate import alembic_config, upgrade

BEFORE = [
    ("intake:1", "system"),
    ("escalation:application_review:1", "system"),
    ("intake:2", "u-maker"),  # a client's key that looks like a system key
    ("my-key", "u-officer"),
    ("certificate:expire:1", "system"),
    ("certificate:suspend-1", "u-officer"),
]
AFTER = [
    "system:intake:1",
    "system:escalation:application_review:1",
    "client:intake:2",
    "client:my-key",
    "certificate:system:expire:1",
    "certificate:client:suspend-1",
]


def _keys(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT idempotency_key FROM request_action ORDER BY id")
            ).scalars()
        )


def test_existing_keys_are_rewritten_into_their_namespace_and_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    upgrade(url, "0006")
    engine = sa.create_engine(url)  # SQLite enforces no foreign keys without the pragma
    with engine.begin() as conn:
        conn.execute(  # the request the keys belong to (its own parents are not checked)
            sa.text(
                "INSERT INTO certification_request (id, number, organization_id, product_id,"
                " scheme_id, scheme_code, scheme_version, kind, scope, status, round,"
                " workflow_id, created_by, created_at, updated_at, stage_seconds,"
                " retest_items, appeal_filed) VALUES ('r1', 'REQ-1', 'o', 'p', 1, 'S', 1,"
                " 'certification', 's', 'draft', 1, 'w', 'u', '2026-12-04 00:00:00',"
                " '2026-12-04 00:00:00', '{}', '[]', 0)"
            )
        )
        for key, actor in BEFORE:
            conn.execute(
                sa.text(
                    "INSERT INTO request_action (request_id, idempotency_key, action, body_hash,"
                    " actor_id, at) VALUES ('r1', :k, 'x', '', :a, '2026-12-04 00:00:00')"
                ),
                {"k": key, "a": actor},
            )
    upgrade(url)
    assert _keys(engine) == AFTER
    upgrade(url)  # at head: nothing changes twice
    assert _keys(engine) == AFTER
    command.downgrade(alembic_config(url), "0006")
    assert _keys(engine) == [key for key, _ in BEFORE]
    engine.dispose()
