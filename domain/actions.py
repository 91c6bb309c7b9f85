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
    confirm_gtin: bool | None = Field(
        default=None,
        description="The officer has checked the product's GTIN (against the label, the "
        "GS1 registry): it is recorded as confirmed, and only a confirmed GTIN is published "
        "(GS1 Digital Link). 409 `no-gtin` when the product has none.",
    )


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


class RecordChange(BaseModel):
    """What one transition changes in the request's record besides its status: a field
    left ``None`` is unchanged, a name in ``cleared`` becomes null. Decided once by
    ``domain.request_changes.plan``; the persisting activity writes ``columns()`` to the
    row and the workflow applies the same change to its facts with ``reduce``."""

    centre_code: str | None = None
    proposed_centre_code: str | None = None
    scope: str | None = None
    round: int | None = None
    retest_items: list[str] | None = None
    info_due_at: datetime | None = None
    refused_by: str | None = None
    appeal_until: datetime | None = None
    appeal_filed: bool | None = None
    excluded_decider: str | None = None
    #: The time spent in each stage so far (the workflow's clock, kept on the record).
    stage_seconds: dict[str, float] | None = None
    #: Fields set to null.
    cleared: list[str] = Field(default_factory=list)
    #: Not a column: who verified the results (kept on the results and the report).
    verified_by: str | None = None
    #: Not a column: the officer confirmed the product's GTIN at ``accept`` (written to the
    #: product in the same transaction).
    confirm_gtin: bool | None = None

    def columns(self) -> dict[str, Any]:
        """The record's columns this change sets, and their new values."""
        values = {
            name: getattr(self, name) for name in RECORD_COLUMNS if getattr(self, name) is not None
        }
        values.update(dict.fromkeys(self.cleared))
        return values


#: The request record's columns a transition may change (all of ``RecordChange`` but the
#: bookkeeping fields).
RECORD_COLUMNS = tuple(
    name
    for name in RecordChange.model_fields
    if name not in ("cleared", "verified_by", "confirm_gtin")
)


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
    change: RecordChange = Field(default_factory=RecordChange)
    detail: dict[str, Any] = Field(default_factory=dict)
    #: Grant: the same transaction issues the certificate (row and number); the effects'
    #: payloads are completed with it.
    issue_certificate: bool = False
    #: Side effects, written to the outbox in the transition's transaction.
    effects: list[Effect] = Field(default_factory=list)
