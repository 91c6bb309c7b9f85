"""idempotency keys in two namespaces: client:<key> and system:<step>

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 12:50:00.000000

Keys recorded before this revision are rewritten into their namespace. The record tells
them apart without guessing: a system step is recorded with ``actor_id = 'system'``, a
client's action with the person who took it. A certificate's keys keep their
``certificate:`` prefix in front of the namespace (``certificate:client:<key>``).
The column grows to 255 characters so that a 200-character client key fits with its
prefixes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CERT = "certificate:"


def _namespaced(key: str, actor_id: str) -> str:
    space = "system:" if actor_id == "system" else "client:"
    if key.startswith(CERT):
        inner = key[len(CERT) :]
        if inner.startswith(("client:", "system:")):
            return key
        return CERT + space + inner
    if key.startswith(("client:", "system:")):
        return key
    return space + key


def _plain(key: str) -> str:
    prefix = CERT if key.startswith(CERT) else ""
    inner = key[len(prefix) :]
    for space in ("client:", "system:"):
        if inner.startswith(space):
            return prefix + inner[len(space) :]
    return key


def _rewrite(to: str) -> None:
    conn = op.get_bind()
    table = sa.table(
        "request_action",
        sa.column("id", sa.Integer),
        sa.column("idempotency_key", sa.String),
        sa.column("actor_id", sa.String),
    )
    rows = conn.execute(sa.select(table.c.id, table.c.idempotency_key, table.c.actor_id)).all()
    for row_id, key, actor_id in rows:
        new = _namespaced(key, actor_id) if to == "namespaced" else _plain(key)
        if new != key:
            conn.execute(sa.update(table).where(table.c.id == row_id).values(idempotency_key=new))


def upgrade() -> None:
    with op.batch_alter_table("request_action", schema=None) as batch_op:
        batch_op.alter_column(
            "idempotency_key",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=200),
            type_=sqlmodel.sql.sqltypes.AutoString(length=255),
            existing_nullable=False,
        )
    _rewrite("namespaced")


def downgrade() -> None:
    _rewrite("plain")
    with op.batch_alter_table("request_action", schema=None) as batch_op:
        batch_op.alter_column(
            "idempotency_key",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=255),
            type_=sqlmodel.sql.sqltypes.AutoString(length=200),
            existing_nullable=False,
        )
