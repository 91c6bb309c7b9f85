"""The audit trail: append-only, hash-chained events (one chain per request, one for admin,
one for security events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from domain.audit_links import GENESIS_LINK
from models.types import UTCDateTime

GENESIS_HASH = GENESIS_LINK
ADMIN_CHAIN = "admin"
#: Security events that belong to no request: refused logins (throttling).
SECURITY_CHAIN = "security"


def request_chain(request_id: str) -> str:
    return f"request:{request_id}"


class AuditEvent(SQLModel, table=True):
    """One event. ``hash = HMAC-SHA256(audit key, prev_hash ‖ canonical)`` (the key named by
    ``link_key``, see ``domain/audit_links.py``); ``canonical`` is the RFC 8785 JSON of
    every other field, stored as written so that verification never depends on how a
    database renders values (SQLite drops time zones).

    Rows are append-only: a database trigger refuses UPDATE and DELETE (migration 0009)."""

    __tablename__ = "audit_event"
    __table_args__ = (sa.UniqueConstraint("chain", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    chain: str = Field(max_length=80, index=True)
    seq: int
    at: datetime = Field(sa_type=UTCDateTime)
    actor_id: str | None = Field(default=None, max_length=64)
    actor_name: str | None = Field(default=None, max_length=300)
    actor_role: str = Field(max_length=32)
    action: str = Field(max_length=64)
    object_type: str = Field(max_length=32)
    object_id: str = Field(max_length=64)
    from_status: str | None = Field(default=None, max_length=32)
    to_status: str | None = Field(default=None, max_length=32)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    canonical: str = Field(sa_type=sa.Text)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    #: The id of the audit key that linked this event (``domain.audit_links.key_id``).
    link_key: str = Field(default="", max_length=16, sa_column_kwargs={"server_default": ""})


class AuditChainHead(SQLModel, table=True):
    """The latest link of each chain; writers lock it, so appends are serialised. It is
    updated on every append (so it stays writable); the signed checkpoints in the object
    store are what make rewriting it, or deleting it with its chain, detectable."""

    __tablename__ = "audit_chain_head"

    chain: str = Field(primary_key=True, max_length=80)
    seq: int = 0
    hash: str = Field(default=GENESIS_HASH, max_length=64)
