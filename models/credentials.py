"""Verifiable credentials and their status lists (issue 13): the signed credential of each
certificate issue, the status-list indices allocated to it, and every signed version of
every status list (their history). Written only by workers (the outbox's deliveries); the
API serves the stored bytes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, text_enum, utcnow


class StatusPurpose(StrEnum):
    """The two lists every credential has an entry in (Bitstring Status List v1.0)."""

    SUSPENSION = "suspension"
    REVOCATION = "revocation"


class IssuedCredential(SQLModel, table=True):
    """The signed W3C credential of one certificate issue, exactly as served."""

    __tablename__ = "issued_credential"
    __table_args__ = (sa.UniqueConstraint("number", "issue"),)

    certificate_id: str = Field(foreign_key="certificate.id", primary_key=True, max_length=32)
    number: str = Field(max_length=40, index=True)
    issue: int
    #: The credential's JSON text (UTF-8), signed; served byte for byte.
    body: str = Field(sa_type=sa.Text)
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StatusList(SQLModel, table=True):
    """One status list of a purpose; indices are drawn at random among its free ones."""

    __tablename__ = "status_list"

    purpose: StatusPurpose = Field(sa_type=text_enum(StatusPurpose), primary_key=True)
    list_id: int = Field(sa_column_kwargs={"autoincrement": False}, primary_key=True)
    size: int
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StatusAllocation(SQLModel, table=True):
    """The index of one certificate issue's credential in one list: never reused."""

    __tablename__ = "status_allocation"
    __table_args__ = (
        sa.UniqueConstraint("purpose", "list_id", "status_index"),
        sa.UniqueConstraint("certificate_id", "purpose"),
        sa.ForeignKeyConstraint(
            ["purpose", "list_id"], ["status_list.purpose", "status_list.list_id"]
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    purpose: StatusPurpose = Field(sa_type=text_enum(StatusPurpose))
    list_id: int
    status_index: int
    certificate_id: str = Field(foreign_key="certificate.id", index=True, max_length=32)
    allocated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StatusListVersion(SQLModel, table=True):
    """One signed ``BitstringStatusListCredential`` of a list, as it stood from
    ``published_at``; a list's versions are its history (``?timestamp=``)."""

    __tablename__ = "status_list_version"
    __table_args__ = (
        sa.UniqueConstraint("purpose", "list_id", "version"),
        sa.ForeignKeyConstraint(
            ["purpose", "list_id"], ["status_list.purpose", "status_list.list_id"]
        ),
        sa.Index("ix_status_list_version_published", "purpose", "list_id", "published_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    purpose: StatusPurpose = Field(sa_type=text_enum(StatusPurpose))
    list_id: int
    version: int
    encoded_list: str = Field(sa_type=sa.Text)
    #: The signed list credential's JSON text, served byte for byte.
    body: str = Field(sa_type=sa.Text)
    published_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
