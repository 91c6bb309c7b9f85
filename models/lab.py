"""Laboratory and decision records: result revisions, frozen test reports, certificates,
appeals. Written only by the request workflow's activities."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from domain.certificate_rules import search_text
from domain.statuses import CertificateStatus as CertificateStatus
from domain.statuses import ResultVerdict as ResultVerdict
from models.types import DecimalText, UTCDateTime, text_enum, utcnow


class TestResult(SQLModel, table=True):
    """One revision of one item's result in one round (ISO/IEC 17025 7.5: corrections are
    new revisions; earlier ones are kept)."""

    __test__ = False  # not a pytest test class
    __tablename__ = "test_result"
    __table_args__ = (sa.UniqueConstraint("request_id", "round", "item_code", "revision"),)

    id: str = Field(primary_key=True, max_length=32)
    request_id: str = Field(foreign_key="certification_request.id", index=True, max_length=32)
    round: int
    item_code: str = Field(max_length=64)
    revision: int
    values: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    value: Decimal | None = Field(default=None, sa_type=DecimalText)
    uncertainty: Decimal | None = Field(default=None, sa_type=DecimalText)
    unit: str = Field(max_length=32)
    verdict: ResultVerdict = Field(sa_type=text_enum(ResultVerdict))
    specimen_verdicts: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    equipment_id: str | None = Field(default=None, max_length=100)
    remarks: str | None = Field(default=None, max_length=2000)
    recorded_by: str = Field(max_length=32)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    verified_by: str | None = Field(default=None, max_length=32)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TestReport(SQLModel, table=True):
    """The report frozen at ``verify_results``; an amendment is a new version."""

    __test__ = False
    __tablename__ = "test_report"
    __table_args__ = (sa.UniqueConstraint("request_id", "version"),)

    id: str = Field(primary_key=True, max_length=32)
    request_id: str = Field(foreign_key="certification_request.id", index=True, max_length=32)
    version: int
    round: int
    body: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    digest: str = Field(max_length=80)
    frozen_by: str = Field(max_length=32)
    frozen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    superseded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Certificate(SQLModel, table=True):
    """One issue of a certificate. Numbers are gap-free per centre and year."""

    __tablename__ = "certificate"
    __table_args__ = (
        sa.UniqueConstraint("request_id", "issue"),
        sa.UniqueConstraint("number", "issue"),
        # the directory's order (newest first): a page reads the index's first rows
        sa.Index("ix_certificate_directory", "issued_on", "number"),
        # the directory's search (a substring): trigrams on PostgreSQL; SQLite scans
        sa.Index(
            "ix_certificate_search_text",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
            sqlite_where=sa.false(),
        ),
    )

    id: str = Field(primary_key=True, max_length=32)
    number: str = Field(max_length=40, index=True)
    issue: int = 0
    request_id: str = Field(foreign_key="certification_request.id", index=True, max_length=32)
    organization_id: str = Field(foreign_key="organization.id", index=True, max_length=32)
    centre_code: str = Field(max_length=32)
    status: CertificateStatus = Field(sa_type=text_enum(CertificateStatus))
    status_since: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    signature: str | None = Field(default=None, max_length=200)
    kid: str | None = Field(default=None, max_length=100)
    test_report_digest: str = Field(max_length=80)
    issued_on: date
    valid_until: date
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    #: The signed PDF in the certificates bucket (written once, under retention).
    pdf_key: str | None = Field(default=None, max_length=300)
    pdf_version_id: str | None = Field(default=None, max_length=200)
    pdf_sha256: str | None = Field(default=None, max_length=64)
    pdf_size: int | None = None
    #: ``domain.certificate_rules.search_text`` of the payload, written with the row
    #: (below; the payload never changes): what the directory's search matches — one column,
    #: not five fields parsed out of the JSON of every row.
    search_text: str = Field(default="", sa_type=sa.Text, sa_column_kwargs={"server_default": ""})


class Appeal(SQLModel, table=True):
    """One appeal per refusal."""

    __tablename__ = "appeal"
    __table_args__ = (sa.UniqueConstraint("request_id", "refusal_key"),)

    id: str = Field(primary_key=True, max_length=32)
    request_id: str = Field(foreign_key="certification_request.id", index=True, max_length=32)
    refusal_key: str = Field(max_length=200)
    refused_by: str = Field(max_length=32)
    reason: str = Field(max_length=4000)
    filed_by: str = Field(max_length=32)
    filed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    decision: str | None = Field(default=None, max_length=16)
    decided_by: str | None = Field(default=None, max_length=32)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decision_reason: str | None = Field(default=None, max_length=4000)


@sa.event.listens_for(Certificate, "before_insert")
def _fill_search_text(_mapper: Any, _connection: Any, target: Certificate) -> None:
    target.search_text = search_text(target.payload)
