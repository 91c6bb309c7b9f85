"""Appending to and verifying the keyed, hash-chained audit trail.

Links are HMACs under the audit key (``domain/audit_links.py``). The key is not in the
database: each process installs it once at start-up with :func:`use_keys` (the API, the
worker and the CLI do so from ``MUTABAQA_AUDIT_KEY``); until then the development key is
used, which settings refuse outside development.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from domain.audit_links import DEVELOPMENT_AUDIT_KEY, AuditKeys
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


_keys = AuditKeys.from_secrets(DEVELOPMENT_AUDIT_KEY)


def use_keys(keys: AuditKeys) -> None:
    """Install the process's audit keys (active and retired)."""
    global _keys
    _keys = keys


def current_keys() -> AuditKeys:
    return _keys


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
    link_key, link = _keys.link(head.hash, canonical)
    event = AuditEvent(
        **fields,
        canonical=canonical.decode("utf-8"),
        prev_hash=head.hash,
        hash=link,
        link_key=link_key,
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
        if self.event_id is None:
            return f"chain {self.chain}: {self.reason}"
        return f"chain {self.chain}: event #{self.seq} (id {self.event_id}): {self.reason}"


@dataclass(frozen=True)
class Anchor:
    """A chain's head as a signed checkpoint recorded it."""

    seq: int
    link: str
    checkpoint: str


def event_problem(event: AuditEvent, prev_hash: str, keys: AuditKeys) -> str | None:
    """What is wrong with one event on its own (its fields, its link), or None."""
    stored = event.canonical.encode("utf-8")
    fields = event.model_dump(include=set(CANONICAL_FIELDS))
    if canonical_bytes(fields) != stored:
        return "recorded fields differ from the linked canonical form (event edited)"
    if not keys.knows(event.link_key):
        return (
            f"linked with an unknown audit key (key id {event.link_key or 'none'}): "
            "rewritten by someone without the key, or the key is missing from "
            "MUTABAQA_AUDIT_KEY / MUTABAQA_AUDIT_RETIRED_KEYS"
        )
    if not keys.check(event.link_key, prev_hash, stored, event.hash):
        return "link does not verify under the audit key (event or chain rewritten)"
    return None


def verify_chain(session: Session, chain: str, anchor: Anchor | None = None) -> BrokenLink | None:
    """Re-compute one chain; return its first broken link, or None when it is intact.

    With an ``anchor`` (the chain's head in the latest signed checkpoint), the event at the
    anchored position must still carry the anchored link, and the chain must reach it.
    """
    keys = _keys
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
            problem = "previous link does not match the preceding event"
        else:
            problem = event_problem(event, prev_hash, keys)
        if (
            problem is None
            and anchor is not None
            and event.seq == anchor.seq
            and event.hash != anchor.link
        ):
            problem = f"differs from checkpoint {anchor.checkpoint} (chain rewritten)"
        if problem:
            return BrokenLink(chain, event.seq, event.id, problem)
        prev_hash = event.hash
        expected_seq += 1
        last = event
    head = session.get(AuditChainHead, chain)
    last_seq = last.seq if last else 0
    if anchor is not None and last_seq < anchor.seq:
        if last is None and head is None:
            reason = (
                f"chain deleted: no events and no head, but checkpoint {anchor.checkpoint} "
                f"lists it at event #{anchor.seq}"
            )
        else:
            reason = (
                f"chain truncated: it ends at event #{last_seq}, but checkpoint "
                f"{anchor.checkpoint} lists event #{anchor.seq}"
            )
        return BrokenLink(chain, anchor.seq, None, reason)
    if head is not None and (head.seq != last_seq or head.hash != prev_hash):
        return BrokenLink(
            chain,
            head.seq,
            None,
            f"the head names event #{head.seq}, the chain ends at "
            f"#{last_seq} (last events removed)",
        )
    return None


def verify_all(
    session: Session, anchors: Mapping[str, Anchor] | None = None
) -> tuple[int, list[BrokenLink]]:
    """Verify every chain (those in the record and those the checkpoint lists); return how
    many were checked and the first break of each."""
    anchors = anchors or {}
    chains = set(session.exec(select(AuditEvent.chain).distinct()).all())
    chains |= set(session.exec(select(AuditChainHead.chain)).all())
    chains |= set(anchors)
    breaks = [
        b
        for chain in sorted(chains)
        if (b := verify_chain(session, chain, anchors.get(chain))) is not None
    ]
    return len(chains), breaks


@dataclass(frozen=True)
class Head:
    """A chain's head as a checkpoint records it."""

    chain: str
    seq: int
    link: str


def _anchor_problem(session: Session, head: AuditChainHead, anchor: Anchor) -> str | None:
    if head.seq < anchor.seq:
        return (
            f"chain truncated: head at #{head.seq}, checkpoint {anchor.checkpoint} at #{anchor.seq}"
        )
    if head.seq == anchor.seq:
        linked = head.hash
    else:
        at_anchor = session.exec(
            select(AuditEvent.hash).where(
                AuditEvent.chain == head.chain, AuditEvent.seq == anchor.seq
            )
        ).first()
        linked = at_anchor or ""
    if linked != anchor.link:
        return f"event #{anchor.seq} differs from checkpoint {anchor.checkpoint} (chain rewritten)"
    return None


def heads_to_anchor(
    session: Session, previous: Mapping[str, Anchor]
) -> tuple[list[Head], list[BrokenLink]]:
    """The heads a new checkpoint records, and the problems found on the way.

    A chain's head is taken from the record only when its last event is there, verifies
    under the audit key and extends the previous checkpoint's anchor; otherwise the previous
    anchor is carried forward unchanged, so a checkpoint never seals a tampered head (and a
    deleted chain stays listed). Cheap: it reads each head's event and, for chains that grew,
    the event at the previous anchor — a full check is ``verify_all``.
    """
    keys = _keys
    heads: list[Head] = []
    problems: list[BrokenLink] = []
    rows = session.exec(
        select(AuditChainHead, AuditEvent)
        .outerjoin(
            AuditEvent,
            (col(AuditEvent.chain) == col(AuditChainHead.chain))
            & (col(AuditEvent.seq) == col(AuditChainHead.seq)),
        )
        .where(col(AuditChainHead.seq) > 0)
    ).all()
    seen = set()
    for head, event in rows:
        seen.add(head.chain)
        anchor = previous.get(head.chain)
        problem = None
        if event is None or event.hash != head.hash:
            problem = f"the head names event #{head.seq}, which is missing or differs"
        else:
            problem = event_problem(event, event.prev_hash, keys)
        if problem is None and anchor is not None:
            problem = _anchor_problem(session, head, anchor)
        if problem is None:
            heads.append(Head(head.chain, head.seq, head.hash))
            continue
        problems.append(BrokenLink(head.chain, head.seq, event.id if event else None, problem))
        if anchor is not None:
            heads.append(Head(head.chain, anchor.seq, anchor.link))
    for chain, anchor in previous.items():
        if chain not in seen:
            problems.append(
                BrokenLink(
                    chain,
                    anchor.seq,
                    None,
                    f"chain deleted: no head, but checkpoint "
                    f"{anchor.checkpoint} lists it at event #{anchor.seq}",
                )
            )
            heads.append(Head(chain, anchor.seq, anchor.link))
    heads.sort(key=lambda h: h.chain)
    return heads, problems
