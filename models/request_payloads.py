"""Payloads of the request API and workflow: action bodies, workflow inputs and results."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from domain.actions import (
    ACTION_BODIES as ACTION_BODIES,
)
from domain.actions import (
    AcceptBody as AcceptBody,
)
from domain.actions import (
    EmptyBody as EmptyBody,
)
from domain.actions import (
    MessageBody as MessageBody,
)
from domain.actions import (
    OptionalReasonBody as OptionalReasonBody,
)
from domain.actions import (
    ReasonBody as ReasonBody,
)
from domain.actions import (
    ReceiveSampleBody as ReceiveSampleBody,
)
from domain.actions import (
    RetestBody as RetestBody,
)
from domain.actions import (
    ShortText as ShortText,
)
from domain.actions import (
    Text as Text,
)
from domain.actions import (
    Transition as Transition,
)
from domain.effects import DeliveryPolicy
from domain.permissions import Actor
from models.certificate_lifecycle import CertificateTiming
from models.requests import RequestKind, RequestStatus


class RequestCreate(BaseModel):
    """``POST /requests``."""

    model_config = ConfigDict(extra="forbid")

    product_id: ShortText
    scheme_code: ShortText
    kind: RequestKind = RequestKind.CERTIFICATION
    scope: Text | None = None


class PlanEntry(BaseModel):
    code: str
    mandatory: bool = True


class SchemeSnapshot(BaseModel):
    """What the workflow keeps of the scheme version the request started with."""

    id: int
    code: str
    version: int
    sector: str
    title: str
    required_documents: tuple[str, ...]
    decision_rule: str = "simple"
    items: tuple[PlanEntry, ...] = ()


class Timing(BaseModel):
    """Durations in seconds, from configuration (tests shorten them)."""

    info_response: float
    info_reminder_fraction: float
    sample_receipt_target: float
    testing_target: float
    decision_target: float
    appeal_window: float = 30 * 24 * 3600.0
    #: The bounded retry of the request's side effects (outbox).
    delivery: DeliveryPolicy = Field(default_factory=DeliveryPolicy)
    certificate: CertificateTiming = Field(default_factory=CertificateTiming)


class RequestWorkflowInput(BaseModel):
    request_id: str
    organization_id: str
    product_id: str
    product_name: str
    scheme: SchemeSnapshot
    kind: RequestKind
    scope: str
    actor: Actor
    idempotency_key: str | None = None
    idempotency_hash: str | None = None
    timing: Timing
    #: Surveillance requests start at the sample stage, at the certificate's centre, and
    #: report their outcome to the certificate's workflow.
    initial_status: RequestStatus = RequestStatus.DRAFT
    centre_code: str | None = None
    certificate_number: str | None = None


class RequestRef(BaseModel):
    request_id: str
    number: str
    status: RequestStatus
    #: The outbox rows a transition wrote (the workflow starts their deliveries).
    outbox_ids: list[str] = Field(default_factory=list)
    #: The certificate a grant issued.
    certificate: CertificateRef | None = None


class FileFacts(BaseModel):
    """An uploaded object as the API hands it to the workflow: never the bytes."""

    file_id: str
    bucket: str
    key: str
    version_id: str | None
    size: int
    sha256: str
    content_type: str
    filename: str
    kind: str | None = None
    item_code: str | None = None
    description: str | None = None


class ActionInput(BaseModel):
    """One human action sent as an Update; ``key`` is the Update id (``Idempotency-Key``)."""

    action: str
    actor: Actor
    body: dict[str, Any] = Field(default_factory=dict)
    key: str
    body_hash: str
    file: FileFacts | None = None


class ActionResult(BaseModel):
    request_id: str
    status: RequestStatus
    round: int
    certificate_number: str | None = None


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


class RecordResultInput(BaseModel):
    request_id: str
    key: str
    round: int
    item_code: str
    values: list[str]
    uncertainty: str | None = None
    equipment_id: str | None = None
    remarks: str | None = None
    actor: Actor
    at: datetime
    #: Digest of the result's body, recorded with the key (a repeat must match it).
    body_hash: str = ""


class ResultView(BaseModel):
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


class IssueCertificateInput(BaseModel):
    request_id: str
    key: str
    actor: Actor
    at: datetime


class CertificateRef(BaseModel):
    certificate_id: str
    number: str
    issue: int
    #: When the certificate expires (the end of its ``valid_until`` day, business time).
    expires_at: datetime | None = None
    surveillance_months: int = 12
    #: Outbox rows written with it (a reissue: the holder's notice, the new issue's PDF).
    outbox_ids: list[str] = Field(default_factory=list)


class TimelineItem(BaseModel):
    at: datetime
    action: str
    actor: str
    actor_role: str
    from_status: RequestStatus | None = None
    to_status: RequestStatus | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


# --- activity payloads ---------------------------------------------------------------------


class CreateRequestInput(BaseModel):
    workflow_id: str
    params: RequestWorkflowInput


class IntakeInput(BaseModel):
    request_id: str
    sector: str
    required_documents: tuple[str, ...]


class IntakeResult(BaseModel):
    proposed_centre_code: str | None
    candidate_centres: list[str]
    problems: list[str]


class RecordFileInput(BaseModel):
    request_id: str
    key: str
    actor: Actor
    acting_role: str
    status: RequestStatus
    purpose: str
    file: FileFacts
    round: int | None = None
    at: datetime


class RecordFileResult(BaseModel):
    file_id: str
    superseded: list[str]


# --- API views -----------------------------------------------------------------------------


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
    results: list[ResultView] = Field(default_factory=list)
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


RequestPublic.model_rebuild()

RequestRef.model_rebuild()
