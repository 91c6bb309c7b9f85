"""What the outbox hands the webhook sender: one event for an organisation's webhook, and
what became of it (payloads, no tables)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, JsonValue
from pydantic import Field as PydanticField

EVENT_ID_MAX_LENGTH = 200
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"


class WebhookInput(BaseModel):
    """Tell an organisation's webhook (if any) that something happened.

    ``event_id`` is the dedupe key, unique per event (e.g. ``f"{workflow_id}:{seq}"``): it is
    sent as ``Mutabaqa-Delivery`` and the body's ``id``, so a receiver drops repeats.
    """

    organization_id: str = PydanticField(min_length=1, max_length=32)
    event_id: str = PydanticField(min_length=1, max_length=EVENT_ID_MAX_LENGTH)
    event_type: str = PydanticField(max_length=64, pattern=EVENT_TYPE_PATTERN)
    data: dict[str, JsonValue] = PydanticField(default_factory=dict)
    #: When the event happened (``workflow.now()``); default: the first attempt's time.
    occurred_at: datetime | None = None


class WebhookResult(BaseModel):
    #: False when the organisation has no active webhook (nothing was sent).
    delivered: bool
    #: HTTP attempts made for this event so far (0 when nothing was sent).
    attempts: int = 0
    status_code: int | None = None
    delivery_id: str | None = None
