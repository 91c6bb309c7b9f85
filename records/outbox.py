"""The outbox's rows: written in the transaction of the transition that causes them, read
and marked by the delivery activity, listed and reset by ``mutabaqa outbox``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.outbox import (
    Effect,
    EffectKind,
    OutboxRow,
    OutboxStatus,
    OutboxView,
    outbox_id,
)
from mutabaqa.db import session_scope

ERROR_MAX_LENGTH = 2000


def add_effects(session: Session, effects: Iterable[Effect], at: datetime) -> list[str]:
    """Write one row per effect in the caller's transaction (a repeat of a dedupe key finds
    its row); return the rows' ids, in order."""
    ids: list[str] = []
    for effect in effects:
        row_id = outbox_id(effect.dedupe_key)
        if session.get(OutboxRow, row_id) is None:
            session.add(
                OutboxRow(
                    id=row_id,
                    kind=effect.kind,
                    dedupe_key=effect.dedupe_key,
                    payload=dict(effect.payload),
                    subject=effect.subject,
                    created_at=at,
                )
            )
        ids.append(row_id)
    session.flush()
    return ids


def ids_of(effects: Iterable[Effect]) -> list[str]:
    return [outbox_id(effect.dedupe_key) for effect in effects]


def get(engine: Engine, row_id: str) -> OutboxRow | None:
    with Session(engine) as session:
        return session.get(OutboxRow, row_id)


def record_attempt(engine: Engine, row_id: str, error: str | None) -> None:
    with session_scope(engine) as session:
        row = session.get(OutboxRow, row_id)
        if row is not None and row.status is OutboxStatus.PENDING:
            row.attempts += 1
            row.last_error = None if error is None else error[:ERROR_MAX_LENGTH]
            session.add(row)


def mark_delivered(engine: Engine, row_id: str) -> None:
    with session_scope(engine) as session:
        row = session.get(OutboxRow, row_id)
        if row is not None and row.status is not OutboxStatus.DELIVERED:
            row.status = OutboxStatus.DELIVERED
            row.attempts += 1
            row.last_error = None
            row.delivered_at = datetime.now(UTC)
            session.add(row)


def mark_dead(engine: Engine, row_id: str, error: str) -> None:
    with session_scope(engine) as session:
        row = session.get(OutboxRow, row_id)
        if row is not None and row.status is OutboxStatus.PENDING:
            row.status = OutboxStatus.DEAD
            row.last_error = error[:ERROR_MAX_LENGTH]
            session.add(row)


def listing(engine: Engine, status: OutboxStatus | None = None) -> list[OutboxView]:
    with Session(engine) as session:
        query = select(OutboxRow).order_by(col(OutboxRow.created_at), col(OutboxRow.id))
        if status is not None:
            query = query.where(OutboxRow.status == status)
        return [OutboxView.model_validate(row, from_attributes=True) for row in session.exec(query)]


def reset_dead(engine: Engine, row_ids: Sequence[str] | None) -> list[tuple[str, EffectKind]]:
    """Put dead rows back to pending (``None``: every dead row); return those reset."""
    with session_scope(engine) as session:
        query = select(OutboxRow).where(OutboxRow.status == OutboxStatus.DEAD)
        if row_ids is not None:
            query = query.where(col(OutboxRow.id).in_(list(row_ids)))
        reset = []
        for row in session.exec(query.with_for_update()).all():
            row.status = OutboxStatus.PENDING
            row.attempts = 0
            session.add(row)
            reset.append((row.id, row.kind))
        return reset
