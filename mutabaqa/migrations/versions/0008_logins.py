"""logins: throttling counters and the token version of each user

Revision ID: 0008_logins
Revises: 0007
Create Date: 2026-12-05 09:00:00.000000

``login_throttle`` holds the failed-login counters every API process shares;
``app_user.token_version`` is the ``ver`` claim of the tokens valid now (existing users
start at 0; tokens issued before this revision carry no ``ver`` and are refused).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0008_logins"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("window_started", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_failure", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("blocked_until", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("audited_window", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("scope", "subject", name=op.f("pk_login_throttle")),
    )
    op.create_index(
        op.f("ix_login_throttle_last_failure"), "login_throttle", ["last_failure"], unique=False
    )
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("token_version", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.drop_column("token_version")
    op.drop_index(op.f("ix_login_throttle_last_failure"), table_name="login_throttle")
    op.drop_table("login_throttle")
