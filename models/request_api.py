"""The request API's HTTP models: what clients send and what they get back.

Separate from the Temporal payloads (``models.request_payloads``), which histories record:
a response may change without touching a workflow. The action bodies are the pure core's
(``domain.actions``), one model per action."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from domain.actions import ShortText, Text
from models.requests import RequestKind, RequestStatus


class RequestCreate(BaseModel):
    """``POST /requests``."""

    model_config = ConfigDict(extra="forbid")

    product_id: ShortText
    scheme_code: ShortText
    kind: RequestKind = RequestKind.CERTIFICATION
    scope: Text | None = None


class ResultBody(BaseModel):
    """``PUT /requests/{id}/results/{item_code}``: one ``value`` or specimen ``values``.

    Numbers may be JSON numbers or decimal strings; they are kept as exact decimals."""

    model_config = ConfigDict(extra="forbid")

    value: Decimal | None = None
    values: list[Decimal] | None = Field(default=None, min_length=1, max_length=1000)
    uncertainty: Decimal | None = Field(default=None, ge=0)
    equipment_id: Annotated[str, StringConstraints(max_length=100)] | None = None
    remarks: Annotated[str, StringConstraints(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ResultBody:
        if (self.value is None) == (self.values is None):
            raise ValueError("give exactly one of value or values")
        for number in [self.value, self.uncertainty, *(self.values or [])]:
            if number is not None and not number.is_finite():
                raise ValueError("values must be finite numbers")
        return self

    @property
    def all_values(self) -> list[Decimal]:
        return list(self.values) if self.values is not None else [self.value]  # type: ignore[list-item]


class ResultPublic(BaseModel):
    """One recorded result, as the API shows it."""

    item_code: str
    value: str | None
    values: list[str]
    uncertainty: str | None
    unit: str
    verdict: str
    specimen_verdicts: list[str] = Field(default_factory=list)
    round: int
    revision: int
    recorded_by: str
    recorded_at: datetime
    verified_by: str | None = None
    equipment_id: str | None = None
    remarks: str | None = None


class TimelineItem(BaseModel):
    at: datetime
    action: str
    actor: str
    actor_role: str
    from_status: RequestStatus | None = None
    to_status: RequestStatus | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class ProductSummary(BaseModel):
    id: str
    name: str
    name_ar: str | None = None
    brand: str
    model: str


class SchemeSummary(BaseModel):
    code: str
    version: int
    title: str


class FilePublic(BaseModel):
    id: str
    kind: str | None = None
    item_code: str | None = None
    description: str | None = None
    round: int | None = None
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_at: datetime
    uploaded_by: str
    superseded_at: datetime | None = None
    superseded_by: str | None = None


class SamplePublic(BaseModel):
    round: int
    status: str
    reference: str | None = None
    condition: str | None = None
    reason: str | None = None
    at: datetime
    by: str


class RequestPublic(BaseModel):
    id: str
    number: str
    status: RequestStatus
    kind: RequestKind
    scope: str
    allowed_actions: list[str]
    product: ProductSummary
    scheme: SchemeSummary
    centre: str | None
    proposed_centre: str | None
    round: int
    documents: list[FilePublic]
    evidence: list[FilePublic]
    samples: list[SamplePublic]
    retest_items: list[str] = Field(default_factory=list)
    results: list[ResultPublic] = Field(default_factory=list)
    test_report: dict[str, Any] | None = None
    certificate_number: str | None = None
    appeal_until: datetime | None = None
    info_due_at: datetime | None = None
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


class RequestSummary(BaseModel):
    id: str
    number: str
    status: RequestStatus
    kind: RequestKind
    product_name: str
    scheme_code: str
    centre: str | None
    created_at: datetime
    updated_at: datetime


class Timeline(BaseModel):
    items: list[TimelineItem]
