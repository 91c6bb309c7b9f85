"""Payloads of the certificate's own workflow (SPEC section 5, lifecycle)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.effects import DeliveryPolicy, Effect
from domain.permissions import Actor
from domain.statuses import CertificateStatus

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class CertificateActionBody(BaseModel):
    """``POST /certificates/{number}/actions/{action}``: a reason is always required."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Reason
    scope: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None


class CertificateTiming(BaseModel):
    """Durations in seconds, from configuration (tests shorten them)."""

    suspension_max: float = 180 * 24 * 3600.0
    #: Seconds between surveillances; None: the scheme's surveillance months.
    surveillance_interval: float | None = None
    #: How long a surveillance request may take before the certificate is suspended.
    surveillance_deadline: float = 90 * 24 * 3600.0
    #: Seconds from issue to expiry; None: the certificate's ``valid_until`` day.
    validity: float | None = None
    #: History length past which the workflow continues as new.
    history_threshold: int = 2000
    #: The bounded retry of the certificate's side effects (outbox).
    delivery: DeliveryPolicy = Field(default_factory=DeliveryPolicy)


class SurveillanceOutcome(BaseModel):
    request_workflow_id: str
    passed: bool
    status: str


class CertificateState(BaseModel):
    """What the workflow carries across continue-as-new and into a new issue (reissue):
    everything it knows, so that nothing is lost at the switch."""

    status: CertificateStatus = CertificateStatus.ACTIVE
    status_since: datetime | None = None
    suspended_at: datetime | None = None
    suspension_reason: str | None = None
    surveillance_count: int = 0
    next_surveillance_at: datetime | None = None
    surveillance_request: str | None = None  # workflow id of the open surveillance request
    surveillance_due: datetime | None = None
    runs: int = 1
    actions_seen: int = 0
    #: Surveillance outcomes that arrived while the previous run was switching (to a new
    #: issue or a fresh history); the next run applies them first.
    pending_outcomes: list[SurveillanceOutcome] = Field(default_factory=list)


class CertificateWorkflowInput(BaseModel):
    certificate_id: str
    number: str
    issue: int
    request_id: str
    organization_id: str
    centre_code: str
    scheme_id: int
    scheme_code: str
    scheme_version: int
    surveillance_months: int
    product_id: str
    product_name: str
    request_number: str = ""
    issued_at: datetime
    expires_at: datetime
    timing: CertificateTiming = Field(default_factory=CertificateTiming)
    state: CertificateState = Field(default_factory=CertificateState)


class CertificateCommand(BaseModel):
    """One officer's (or the holder's) action, sent as an Update; ``key`` is its id."""

    action: str
    actor: Actor | None  # None: the system (expiry, surveillance)
    reason: str
    scope: str | None = None
    key: str
    #: Digest of the action and its body, recorded with the key ("" for system steps).
    body_hash: str = ""


class CertificateTransition(BaseModel):
    certificate_id: str
    number: str
    key: str
    action: str
    actor: Actor | None
    acting_role: str
    from_status: CertificateStatus
    to_status: CertificateStatus
    at: datetime
    detail: dict[str, Any] = Field(default_factory=dict)
    #: Side effects, written to the outbox in the transition's transaction.
    effects: list[Effect] = Field(default_factory=list)
    body_hash: str = ""


class CertificateResult(BaseModel):
    number: str
    issue: int
    status: CertificateStatus
    status_since: datetime | None = None
    #: The outbox rows the transition wrote (the workflow starts their deliveries).
    outbox_ids: list[str] = Field(default_factory=list)


class ReissueInput(BaseModel):
    certificate_id: str
    key: str
    actor: Actor
    reason: str
    scope: str | None = None
    at: datetime
    #: The holder's notice and the new issue's PDF, written with the new issue.
    effects: list[Effect] = Field(default_factory=list)
    body_hash: str = ""


class SurveillanceRequestInput(BaseModel):
    certificate_id: str
    sequence: int
    request_id: str
