"""What a person may send with each request action, and what a transition changes.

``ACTION_BODIES`` names one pydantic model per action (the API documents them, the rules
validate with them); a ``Transition`` is the whole change one action makes, decided by
the workflow, written by one activity in one transaction and then applied by the
workflow to its own state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.effects import Effect
from domain.permissions import Actor
from domain.statuses import RequestStatus

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmptyBody(_Body):
    pass


class ReasonBody(_Body):
    reason: Text


class OptionalReasonBody(_Body):
    reason: Text | None = None


class MessageBody(_Body):
    message: Text


class AcceptBody(_Body):
    centre_code: ShortText | None = None
    scope: Text | None = Field(default=None, description="The officer may amend the scope.")


class ReceiveSampleBody(_Body):
    sample_ref: ShortText
    condition: Text


class RetestBody(_Body):
    items: list[ShortText] = Field(min_length=1, max_length=100)
    reason: Text


#: The body model of each action of SPEC section 4 handled so far.
ACTION_BODIES: dict[str, type[_Body]] = {
    "submit": EmptyBody,
    "request_info": MessageBody,
    "respond": MessageBody,
    "decline": ReasonBody,
    "accept": AcceptBody,
    "reject_sample": ReasonBody,
    "receive_sample": ReceiveSampleBody,
    "withdraw": OptionalReasonBody,
    "submit_results": EmptyBody,
    "verify_results": EmptyBody,
    "retract": ReasonBody,
    "grant": EmptyBody,
    "refuse": ReasonBody,
    "request_retest": RetestBody,
    "appeal": ReasonBody,
    "uphold": ReasonBody,
    "overturn": ReasonBody,
}


class Transition(BaseModel):
    """A state change to record in one transaction (row, audit event, related rows)."""

    request_id: str
    key: str
    action: str
    actor: Actor | None  # None: the system
    acting_role: str
    body: dict[str, Any] = Field(default_factory=dict)
    body_hash: str | None = None
    from_status: RequestStatus | None
    to_status: RequestStatus | None
    at: datetime
    centre_code: str | None = None
    proposed_centre_code: str | None = None
    scope: str | None = None
    round: int | None = None
    info_due_at: datetime | None = None
    clear_info_due: bool = False
    stage_seconds: dict[str, float] | None = None
    retest_items: list[str] | None = None
    refused_by: str | None = None
    appeal_until: datetime | None = None
    appeal_filed: bool | None = None
    excluded_decider: str | None = None
    clear_excluded_decider: bool = False
    detail: dict[str, Any] = Field(default_factory=dict)
    #: Grant: the same transaction issues the certificate (row and number); the effects'
    #: payloads are completed with it.
    issue_certificate: bool = False
    #: Side effects, written to the outbox in the transition's transaction.
    effects: list[Effect] = Field(default_factory=list)
