"""the read paths' indexes: the directory's search text and order, the request lists' order

Revision ID: 0012_read_indexes
Revises: 0011_gtin
Create Date: 2026-12-05 02:00:00.000000

- ``certificate.search_text``: the number, the holder's names and the product's name, brand
  and model, case-folded (``domain.certificate_rules.search_text``), filled here for the
  certificates already issued. The directory matched five fields extracted from each row's
  JSON payload; one text column is what a search reads now.
- ``ix_certificate_directory`` on ``(issued_on, number)``: the directory's order, so a
  page is the index's first rows instead of a sort of every certificate.
- ``ix_certificate_search_text``: on PostgreSQL a GIN trigram index (``pg_trgm``, a
  trusted extension the database's owner may create), so a substring search reads the
  index, not every row; on SQLite an empty partial index (``WHERE 0``), as SQLite has no
  trigram index and scans the one column.
- ``ix_certification_request_created`` on ``(created_at, id)``: the request lists' order
  and cursor, so a page stops after its rows instead of sorting every match; and
  ``ix_certification_request_status_created`` on ``(status, created_at, id)`` for a list
  filtered by status (it replaces the index on ``status`` alone).

``down_revision`` is the one line to change when this migration is re-chained.
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from domain.certificate_rules import search_text

revision: str = "0012_read_indexes"
down_revision: str | None = "0011_gtin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("certificate", schema=None) as batch_op:
        batch_op.add_column(sa.Column("search_text", sa.Text(), server_default="", nullable=False))
        batch_op.create_index("ix_certificate_directory", ["issued_on", "number"], unique=False)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(
        "ix_certificate_search_text",
        "certificate",
        ["search_text"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
        sqlite_where=sa.false(),
    )
    op.create_index(
        "ix_certification_request_created",
        "certification_request",
        ["created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_certification_request_status_created",
        "certification_request",
        ["status", "created_at", "id"],
        unique=False,
    )
    op.drop_index("ix_certification_request_status", table_name="certification_request")
    rows = bind.execute(sa.text("SELECT id, payload FROM certificate")).all()
    update = sa.text("UPDATE certificate SET search_text = :text WHERE id = :id")
    for row_id, payload in rows:
        data = json.loads(payload) if isinstance(payload, str) else payload
        bind.execute(update, {"text": search_text(data or {}), "id": row_id})


def downgrade() -> None:
    op.create_index(
        "ix_certification_request_status", "certification_request", ["status"], unique=False
    )
    op.drop_index("ix_certification_request_status_created", table_name="certification_request")
    op.drop_index("ix_certification_request_created", table_name="certification_request")
    op.drop_index("ix_certificate_search_text", table_name="certificate")
    with op.batch_alter_table("certificate", schema=None) as batch_op:
        batch_op.drop_index("ix_certificate_directory")
        batch_op.drop_column("search_text")
