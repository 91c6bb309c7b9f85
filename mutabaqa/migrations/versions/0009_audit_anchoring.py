"""audit events linked by HMAC under the audit key; audit rows append-only

Revision ID: 0009_audit_anchoring
Revises: 0008_logins
Create Date: 2026-12-10 10:00:00.000000

- ``audit_event.link_key`` names the key that linked each event.
- Existing events were linked with plain SHA-256. They are **re-linked** here under the
  audit key (``MUTABAQA_AUDIT_KEY``, read from the settings): each chain is first checked
  as it stands (links, sequence, head); a broken chain stops the migration with its name,
  so that re-linking never seals tampering. No unkeyed link is left behind, so nobody can
  pass a forged chain off as "old".
- A trigger refuses UPDATE and DELETE (and, on PostgreSQL, TRUNCATE) on ``audit_event``.
  On SQLite a batch ``ALTER`` of ``audit_event`` copies the table and loses the triggers:
  a later migration that does so must create them again (``create_triggers``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_audit_anchoring"
down_revision: str | None = "0008_logins"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSAL = "audit_event is append-only"

PG_TRIGGERS = (
    f"""
    CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING
            MESSAGE = '{REFUSAL}: ' || TG_OP || ' refused',
            ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()
    """,
    """
    CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()
    """,
)
PG_DROP = (
    "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event",
    "DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event",
    "DROP FUNCTION IF EXISTS audit_event_append_only()",
)
SQLITE_TRIGGERS = tuple(
    f"""
    CREATE TRIGGER audit_event_no_{op_name.lower()} BEFORE {op_name} ON audit_event
    BEGIN SELECT RAISE(ABORT, '{REFUSAL}: {op_name} refused'); END
    """
    for op_name in ("UPDATE", "DELETE")
)
SQLITE_DROP = (
    "DROP TRIGGER IF EXISTS audit_event_no_update",
    "DROP TRIGGER IF EXISTS audit_event_no_delete",
)


def create_triggers(bind: sa.engine.Connection) -> None:
    for statement in PG_TRIGGERS if bind.dialect.name == "postgresql" else SQLITE_TRIGGERS:
        bind.exec_driver_sql(statement)


def drop_triggers(bind: sa.engine.Connection) -> None:
    for statement in PG_DROP if bind.dialect.name == "postgresql" else SQLITE_DROP:
        bind.exec_driver_sql(statement)


def _relink(bind: sa.engine.Connection) -> None:
    from alembic import context

    from domain.audit_links import GENESIS_LINK, plain_link
    from mutabaqa.settings import load_settings_for

    settings = context.config.attributes.get("settings")
    keys = (settings or load_settings_for(("audit_key",), {})).audit_keys()
    event = sa.table(
        "audit_event",
        sa.column("id", sa.Integer),
        sa.column("chain", sa.String),
        sa.column("seq", sa.Integer),
        sa.column("canonical", sa.Text),
        sa.column("prev_hash", sa.String),
        sa.column("hash", sa.String),
        sa.column("link_key", sa.String),
    )
    head = sa.table(
        "audit_chain_head",
        sa.column("chain", sa.String),
        sa.column("seq", sa.Integer),
        sa.column("hash", sa.String),
    )
    heads = {row.chain: row for row in bind.execute(sa.select(head))}
    rows = bind.execute(sa.select(event).order_by(event.c.chain, event.c.seq)).all()
    chains: dict[str, list[sa.Row]] = {}  # type: ignore[type-arg]
    for row in rows:
        chains.setdefault(row.chain, []).append(row)
    for chain, events in chains.items():
        prev, new_prev = GENESIS_LINK, GENESIS_LINK
        for expected, row in enumerate(events, start=1):
            canonical = row.canonical.encode("utf-8")
            if (
                row.seq != expected
                or row.prev_hash != prev
                or plain_link(prev, canonical) != row.hash
            ):
                raise RuntimeError(
                    f"audit chain {chain} is broken at event #{row.seq} (id {row.id}); "
                    "re-linking it under the audit key would hide that. Investigate with "
                    "`mutabaqa audit` on the previous version before migrating."
                )
            link_key, link = keys.link(new_prev, canonical)
            bind.execute(
                event.update()
                .where(event.c.id == row.id)
                .values(prev_hash=new_prev, hash=link, link_key=link_key)
            )
            prev, new_prev = row.hash, link
        stored = heads.get(chain)
        if stored is None or stored.seq != len(events) or stored.hash != prev:
            raise RuntimeError(
                f"audit chain {chain}: its head does not name its last event "
                "(events removed?); investigate before migrating"
            )
        bind.execute(head.update().where(head.c.chain == chain).values(hash=new_prev))


def upgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("link_key", sa.String(length=16), nullable=False, server_default="")
        )
    bind = op.get_bind()
    _relink(bind)
    create_triggers(bind)


def downgrade() -> None:
    bind = op.get_bind()
    drop_triggers(bind)
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_column("link_key")
