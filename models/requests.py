"""Certification requests and what hangs off them: files, samples, action records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from domain.statuses import FilePurpose as FilePurpose
from domain.statuses import RequestKind as RequestKind
from domain.statuses import RequestStatus as RequestStatus
from domain.statuses import SampleStatus as SampleStatus
from models.types import UTCDateTime, text_enum, utcnow


class CertificationRequest(SQLModel, table=True):
    """The read model of a request; written only by the request workflow's activities."""

    __tablename__ = "certification_request"
    __table_args__ = (
        sa.UniqueConstraint("organization_id", "idempotency_key"),
        # the lists' order (newest first, the cursor's key): a page reads the index's rows
        sa.Index("ix_certification_request_created", "created_at", "id"),
        # a list filtered by status, in that order (also serves status lookups)
        sa.Index("ix_certification_request_status_created", "status", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=32)
    number: str = Field(unique=True, max_length=32)
    organization_id: str = Field(foreign_key="organization.id", index=True, max_length=32)
    product_id: str = Field(foreign_key="product.id", max_length=32)
    scheme_id: int = Field(foreign_key="scheme.id")
    scheme_code: str = Field(max_length=64, index=True)
    scheme_version: int
    kind: RequestKind = Field(sa_type=text_enum(RequestKind))
    scope: str = Field(max_length=2000)
    status: RequestStatus = Field(sa_type=text_enum(RequestStatus))
    centre_code: str | None = Field(
        default=None, foreign_key="technical_centre.code", index=True, max_length=32
    )
    proposed_centre_code: str | None = Field(default=None, max_length=32)
    round: int = 1
    workflow_id: str = Field(unique=True, max_length=200)
    idempotency_key: str | None = Field(default=None, max_length=200)
    idempotency_hash: str | None = Field(default=None, max_length=64)
    created_by: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    info_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: Seconds spent in each stage so far, e.g. ``{"application_review": 5400.0}``.
    stage_seconds: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    #: Items re-tested in the current round (round > 1).
    retest_items: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    refused_by: str | None = Field(default=None, max_length=32)
    appeal_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    appeal_filed: bool = False
    #: After an overturn, the officer who refused may not take the next decision.
    excluded_decider: str | None = Field(default=None, max_length=32)


class NumberCounter(SQLModel, table=True):
    """Gap-free numbering: one row per series (e.g. ``REQ-2026``), incremented in the same
    transaction that uses the number."""

    __tablename__ = "number_counter"

    series: str = Field(primary_key=True, max_length=64)
    value: int = 0


class StoredFile(SQLModel, table=True):
    """Any stored file: dossier documents and test evidence (object key, version, digest)."""

    __tablename__ = "stored_file"
    __table_args__ = (sa.UniqueConstraint("request_id", "object_key"),)

    id: str = Field(primary_key=True, max_length=32)
    request_id: str = Field(foreign_key="certification_request.id", index=True, max_length=32)
    purpose: FilePurpose = Field(sa_type=text_enum(FilePurpose))
    kind: str | None = Field(default=None, max_length=64)
    item_code: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=1000)
    round: int | None = None
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=100)
    size: int = Field(sa_type=sa.BigInteger)
    sha256: str = Field(max_length=64)
    bucket: str = Field(max_length=63)
    object_key: str = Field(max_length=500)
    version_id: str | None = Field(default=None, max_length=200)
    uploaded_by: str = Field(max_length=32)
    uploaded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    superseded_by: str | None = Field(default=None, max_length=32)
    superseded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    retention_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Sample(SQLModel, table=True):
    __tablename__ = "sample"

    id: str = Field(primary_key=True, max_length=32)
    request_id: str = Field(foreign_key="certification_request.id", index=True, max_length=32)
    round: int
    status: SampleStatus = Field(sa_type=text_enum(SampleStatus))
    reference: str | None = Field(default=None, max_length=200)
    condition: str | None = Field(default=None, max_length=1000)
    reason: str | None = Field(default=None, max_length=2000)
    actor_id: str = Field(max_length=32)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ActionRecord(SQLModel, table=True):
    """One accepted action with its ``Idempotency-Key``: a repeat returns the same result,
    also after the workflow has finished."""

    __tablename__ = "request_action"
    __table_args__ = (sa.UniqueConstraint("request_id", "idempotency_key"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="certification_request.id", index=True, max_length=32)
    #: ``client:<Idempotency-Key>`` or ``system:<step>`` (``domain/keys.py``); a
    #: certificate's keys carry ``certificate:`` in front.
    idempotency_key: str = Field(max_length=255)
    action: str = Field(max_length=32)
    body_hash: str = Field(max_length=64)
    actor_id: str = Field(max_length=32)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
