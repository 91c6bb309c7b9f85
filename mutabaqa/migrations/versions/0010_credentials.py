"""credentials and status lists: signed credentials, allocated indices, list versions

Revision ID: 0010_credentials
Revises: 0009_audit_anchoring
Create Date: 2026-12-04 21:43:26.438263
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0010_credentials"
down_revision: str | None = "0009_audit_anchoring"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "status_list",
        sa.Column(
            "purpose",
            sa.Enum("suspension", "revocation", name="statuspurpose", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("list_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("purpose", "list_id", name=op.f("pk_status_list")),
    )
    op.create_table(
        "status_list_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "purpose",
            sa.Enum("suspension", "revocation", name="statuspurpose", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("encoded_list", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("published_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["purpose", "list_id"],
            ["status_list.purpose", "status_list.list_id"],
            name=op.f("fk_status_list_version_purpose_status_list"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_list_version")),
        sa.UniqueConstraint(
            "purpose",
            "list_id",
            "version",
            name=op.f("uq_status_list_version_purpose_list_id_version"),
        ),
    )
    with op.batch_alter_table("status_list_version", schema=None) as batch_op:
        batch_op.create_index(
            "ix_status_list_version_published", ["purpose", "list_id", "published_at"], unique=False
        )

    op.create_table(
        "issued_credential",
        sa.Column("certificate_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("number", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("issue", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("issued_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificate.id"],
            name=op.f("fk_issued_credential_certificate_id_certificate"),
        ),
        sa.PrimaryKeyConstraint("certificate_id", name=op.f("pk_issued_credential")),
        sa.UniqueConstraint("number", "issue", name=op.f("uq_issued_credential_number_issue")),
    )
    with op.batch_alter_table("issued_credential", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issued_credential_number"), ["number"], unique=False)

    op.create_table(
        "status_allocation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "purpose",
            sa.Enum("suspension", "revocation", name="statuspurpose", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("status_index", sa.Integer(), nullable=False),
        sa.Column("certificate_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("allocated_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificate.id"],
            name=op.f("fk_status_allocation_certificate_id_certificate"),
        ),
        sa.ForeignKeyConstraint(
            ["purpose", "list_id"],
            ["status_list.purpose", "status_list.list_id"],
            name=op.f("fk_status_allocation_purpose_status_list"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_allocation")),
        sa.UniqueConstraint(
            "certificate_id", "purpose", name=op.f("uq_status_allocation_certificate_id_purpose")
        ),
        sa.UniqueConstraint(
            "purpose",
            "list_id",
            "status_index",
            name=op.f("uq_status_allocation_purpose_list_id_status_index"),
        ),
    )
    with op.batch_alter_table("status_allocation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_status_allocation_certificate_id"), ["certificate_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("status_allocation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_status_allocation_certificate_id"))

    op.drop_table("status_allocation")
    with op.batch_alter_table("issued_credential", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issued_credential_number"))

    op.drop_table("issued_credential")
    with op.batch_alter_table("status_list_version", schema=None) as batch_op:
        batch_op.drop_index("ix_status_list_version_published")

    op.drop_table("status_list_version")
    op.drop_table("status_list")
