"""What the request workflow and its activities exchange through Temporal: workflow
inputs, Update arguments and results, activity inputs and results.

These are recorded in workflow histories, so a field may be added (optional) but never
renamed or removed. The HTTP API has its own models (``models.request_api``); an API change
never touches these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from domain.actions import RecordChange as RecordChange
from domain.actions import Transition as Transition
from domain.effects import DeliveryPolicy
from domain.permissions import Actor
from models.certificate_lifecycle import CertificateTiming
from models.requests import RequestKind, RequestStatus


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
    #: hex SHA-256 of each part, sent with it as an S3 checksum the store verified on
    #: receipt (one for a single PUT); None (older payloads): the worker re-reads the bytes.
    #: Left out of the JSON when None, so that a payload written before the field existed
    #: serialises as it was written (its seal's body digest, replayed histories).
    part_sha256: list[str] | None = Field(default=None, exclude_if=lambda value: value is None)
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


RequestRef.model_rebuild()
