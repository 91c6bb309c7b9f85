"""The outbox: one row per side effect of a transition, written in the same transaction.

A workflow decides which effects a transition has (``Effect``); the activity that persists
the transition writes them as ``OutboxRow`` rows; an ``OutboxDelivery`` workflow per row
carries each out with a bounded retry policy, and marks the row ``dead`` (the dead letter an
operator lists and replays with ``mutabaqa outbox``) when every attempt failed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import Field, SQLModel

from domain.effects import DEDUPE_KEY_MAX_LENGTH as DEDUPE_KEY_MAX_LENGTH
from domain.effects import DeliveryInput as DeliveryInput
from domain.effects import DeliveryPolicy as DeliveryPolicy
from domain.effects import Effect as Effect
from domain.effects import EffectKind as EffectKind
from models.types import UTCDateTime, stable_id, text_enum, utcnow


class OutboxStatus(StrEnum):
    #: Written with its transition; a delivery workflow is (or was) carrying it out.
    PENDING = "pending"
    DELIVERED = "delivered"
    #: Every attempt failed, or it cannot be delivered (the dead letter).
    DEAD = "dead"


def outbox_id(dedupe_key: str) -> str:
    return stable_id("outbox", dedupe_key)


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"

    id: str = Field(primary_key=True, max_length=32)
    kind: EffectKind = Field(sa_type=text_enum(EffectKind))
    dedupe_key: str = Field(max_length=DEDUPE_KEY_MAX_LENGTH, unique=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    status: OutboxStatus = Field(
        default=OutboxStatus.PENDING, sa_type=text_enum(OutboxStatus), index=True
    )
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=2000)
    #: The certificate (number) this effect concerns, if any: ``/verify`` asks after its PDF.
    subject: str | None = Field(default=None, max_length=64, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OutboxView(BaseModel):
    id: str
    kind: EffectKind
    dedupe_key: str
    status: OutboxStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
