"""Side effects a transition decides on (mail, webhook, PDF, starting or telling another
workflow). The persisting activity writes them to the outbox in the transition's
transaction; a delivery workflow per row carries each out."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from pydantic import Field as PydanticField

DEDUPE_KEY_MAX_LENGTH = 300


class EffectKind(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"
    CERTIFICATE_PDF = "certificate_pdf"
    #: The issue's W3C credential alone (activities/credentials.py). A certificate PDF's
    #: delivery issues the credential right after the PDF; this kind replays one.
    CERTIFICATE_CREDENTIAL = "certificate_credential"
    #: The status lists holding an issue's credential entries, after a status change.
    STATUS_LIST = "status_list"
    START_CERTIFICATE_WORKFLOW = "start_certificate_workflow"
    SURVEILLANCE_OUTCOME = "surveillance_outcome"


class Effect(BaseModel):
    """A side effect a workflow decides on; the persisting activity writes it as a row."""

    kind: EffectKind
    dedupe_key: str = PydanticField(min_length=1, max_length=DEDUPE_KEY_MAX_LENGTH)
    payload: dict[str, Any] = PydanticField(default_factory=dict)
    subject: str | None = None


class DeliveryPolicy(BaseModel):
    """The bounded retry of one delivery (from configuration; tests shorten it)."""

    max_attempts: int = 8
    initial_interval: float = 5.0
    maximum_interval: float = 300.0
    backoff: float = 2.0


class DeliveryInput(BaseModel):
    row_id: str
    kind: EffectKind
    policy: DeliveryPolicy = PydanticField(default_factory=DeliveryPolicy)
