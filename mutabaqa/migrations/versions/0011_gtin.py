"""products' GTIN (unique) and who confirmed it when

Revision ID: 0011_gtin
Revises: 0010_credentials
Create Date: 2026-12-04 22:00:00.000000

- ``product.gtin``: the GTIN in its 14-digit form, nullable, unique across organisations
  (several products without one are allowed: NULLs are distinct on SQLite and PostgreSQL).
- ``product.gtin_confirmed_at`` / ``gtin_confirmed_by``: set by an officer's ``accept``
  with ``confirm_gtin``; only a confirmed GTIN is published (GS1 Digital Link).

``down_revision`` is the one line to change when this migration is re-chained.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0011_gtin"
down_revision: str | None = "0010_credentials"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("gtin", sqlmodel.sql.sqltypes.AutoString(length=14), nullable=True)
        )
        batch_op.add_column(
            sa.Column("gtin_confirmed_at", models.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "gtin_confirmed_by", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True
            )
        )
        batch_op.create_unique_constraint(batch_op.f("uq_product_gtin"), ["gtin"])
        batch_op.create_foreign_key(
            batch_op.f("fk_product_gtin_confirmed_by_app_user"),
            "app_user",
            ["gtin_confirmed_by"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_product_gtin_confirmed_by_app_user"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("uq_product_gtin"), type_="unique")
        batch_op.drop_column("gtin_confirmed_by")
        batch_op.drop_column("gtin_confirmed_at")
        batch_op.drop_column("gtin")
