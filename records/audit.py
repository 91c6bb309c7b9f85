"""Appending to and verifying the hash-chained audit trail."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from domain.permissions import Actor
from models.accounts import User
from models.audit import GENESIS_HASH, AuditChainHead, AuditEvent
from models.types import utcnow

#: Fields covered by the canonical form, in no particular order (RFC 8785 sorts keys).
CANONICAL_FIELDS = (
    "chain",
    "seq",
    "at",
    "actor_id",
    "actor_name",
    "actor_role",
    "action",
    "object_type",
    "object_id",
    "from_status",
    "to_status",
    "detail",
)


def canonical_bytes(fields: dict[str, Any]) -> bytes:
    payload = {name: fields[name] for name in CANONICAL_FIELDS}
    at = payload["at"]
    if isinstance(at, datetime):
        payload["at"] = at.isoformat()
    return rfc8785.dumps(payload)


def link_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()


def _name_of(session: Session, actor: Actor | None) -> str | None:
    """The acting person's name as the record knows it when the event is written (workflow
    payloads carry only ids and roles)."""
    if actor is None:
        return None
    user = session.get(User, actor.user_id)
    return user.full_name if user is not None else None


def _lock_head(session: Session, chain: str) -> AuditChainHead:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(AuditChainHead)
        .values(chain=chain, seq=0, hash=GENESIS_HASH)
        .on_conflict_do_nothing(index_elements=["chain"])
    )
    head = session.exec(
        select(AuditChainHead).where(AuditChainHead.chain == chain).with_for_update()
    ).one()
    return head


def append_event(
    session: Session,
    *,
    chain: str,
    actor: Actor | None,
    actor_role: str,
    action: str,
    object_type: str,
    object_id: str,
    from_status: str | None = None,
    to_status: str | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event to ``chain`` inside the caller's transaction.

    ``actor`` None means the system acted (``actor_role`` then says ``system``).
    """
    head = _lock_head(session, chain)
    fields: dict[str, Any] = {
        "chain": chain,
        "seq": head.seq + 1,
        "at": (at or utcnow()),
        "actor_id": actor.user_id if actor else None,
        "actor_name": _name_of(session, actor),
        "actor_role": actor_role,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "from_status": from_status,
        "to_status": to_status,
        "detail": detail or {},
    }
    canonical = canonical_bytes(fields)
    event = AuditEvent(
        **fields,
        canonical=canonical.decode("utf-8"),
        prev_hash=head.hash,
        hash=link_hash(head.hash, canonical),
    )
    session.add(event)
    head.seq = event.seq
    head.hash = event.hash
    session.add(head)
    session.flush()
    return event


@dataclass(frozen=True)
class BrokenLink:
    chain: str
    seq: int
    event_id: int | None
    reason: str

    def __str__(self) -> str:
        return f"chain {self.chain}: event #{self.seq} (id {self.event_id}): {self.reason}"


def verify_chain(session: Session, chain: str) -> BrokenLink | None:
    """Re-compute one chain; return its first broken link, or None when it is intact."""
    prev_hash = GENESIS_HASH
    expected_seq = 1
    events = session.exec(
        select(AuditEvent).where(AuditEvent.chain == chain).order_by(col(AuditEvent.seq))
    )
    last: AuditEvent | None = None
    for event in events:
        problem = None
        if event.seq != expected_seq:
            problem = f"sequence jumps from {expected_seq - 1} to {event.seq} (events removed)"
        elif event.prev_hash != prev_hash:
            problem = "previous-hash does not match the preceding event"
        else:
            stored = event.canonical.encode("utf-8")
            fields = event.model_dump(include=set(CANONICAL_FIELDS))
            if canonical_bytes(fields) != stored:
                problem = "recorded fields differ from the hashed canonical form"
            elif link_hash(prev_hash, stored) != event.hash:
                problem = "hash does not match the event's content"
        if problem:
            return BrokenLink(chain, event.seq, event.id, problem)
        prev_hash = event.hash
        expected_seq += 1
        last = event
    head = session.get(AuditChainHead, chain)
    if head is not None and (head.seq != (last.seq if last else 0) or head.hash != prev_hash):
        return BrokenLink(chain, head.seq, None, "the chain's last events were removed")
    return None


def verify_all(session: Session) -> tuple[int, list[BrokenLink]]:
    """Verify every chain; return how many were checked and the first break of each."""
    chains = set(session.exec(select(AuditEvent.chain).distinct()).all())
    chains |= set(session.exec(select(AuditChainHead.chain)).all())
    breaks = [b for chain in sorted(chains) if (b := verify_chain(session, chain)) is not None]
    return len(chains), breaks
