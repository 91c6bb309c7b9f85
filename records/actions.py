"""The idempotency record of actions: what an ``Idempotency-Key`` already did."""

from __future__ import annotations

from sqlmodel import Session, select

from models.requests import ActionRecord


def find_action(session: Session, request_id: str, key: str) -> ActionRecord | None:
    """The action already recorded under ``key`` for this request (idempotency)."""
    return session.exec(
        select(ActionRecord).where(
            ActionRecord.request_id == request_id, ActionRecord.idempotency_key == key
        )
    ).first()
