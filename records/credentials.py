"""SQL of credentials and status lists: allocating indices, reading a list's members and
versions. The unique constraints are the final authority: two workers drawing the same
index, opening the same list or publishing the same version make one of them fail with an
``IntegrityError``, and its caller starts its transaction again."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.statuses import CertificateStatus
from models.credentials import (
    IssuedCredential,
    StatusAllocation,
    StatusList,
    StatusListVersion,
    StatusPurpose,
)
from models.lab import Certificate

#: A new list opens when the current one has this share of its indices allocated, so that
#: a random draw finds a free index in a couple of tries and indices reveal no order.
FILL_LIMIT = 0.5


def allocation(
    session: Session, certificate_id: str, purpose: StatusPurpose
) -> StatusAllocation | None:
    return session.exec(
        select(StatusAllocation).where(
            StatusAllocation.certificate_id == certificate_id, StatusAllocation.purpose == purpose
        )
    ).first()


def allocations_of(session: Session, certificate_id: str) -> list[StatusAllocation]:
    return list(
        session.exec(
            select(StatusAllocation).where(StatusAllocation.certificate_id == certificate_id)
        ).all()
    )


def _current_list(session: Session, purpose: StatusPurpose) -> StatusList | None:
    return session.exec(
        select(StatusList)
        .where(StatusList.purpose == purpose)
        .order_by(col(StatusList.list_id).desc())
        .limit(1)
    ).first()


def _allocated(session: Session, purpose: StatusPurpose, list_id: int) -> int:
    return session.exec(
        select(sa.func.count())
        .select_from(StatusAllocation)
        .where(StatusAllocation.purpose == purpose, StatusAllocation.list_id == list_id)
    ).one()


def _taken(session: Session, purpose: StatusPurpose, list_id: int, index: int) -> bool:
    return (
        session.exec(
            select(StatusAllocation.id).where(
                StatusAllocation.purpose == purpose,
                StatusAllocation.list_id == list_id,
                StatusAllocation.status_index == index,
            )
        ).first()
        is not None
    )


def allocate(
    session: Session,
    certificate_id: str,
    purpose: StatusPurpose,
    size: int,
    draw: Callable[[int], int] = secrets.randbelow,
) -> StatusAllocation:
    """The certificate issue's index in the current list of ``purpose`` (its earlier one
    if it has one): drawn uniformly among the free indices, never reused. Flushed, not
    committed; a concurrent draw of the same index fails at the unique constraint."""
    existing = allocation(session, certificate_id, purpose)
    if existing is not None:
        return existing
    current = _current_list(session, purpose)
    if (
        current is None
        or _allocated(session, purpose, current.list_id) >= current.size * FILL_LIMIT
    ):
        current = StatusList(
            purpose=purpose, list_id=1 if current is None else current.list_id + 1, size=size
        )
        session.add(current)
        session.flush()
    index = draw(current.size)
    while _taken(session, purpose, current.list_id, index):
        index = draw(current.size)
    row = StatusAllocation(
        purpose=purpose, list_id=current.list_id, status_index=index, certificate_id=certificate_id
    )
    session.add(row)
    session.flush()
    return row


def list_members(
    session: Session, purpose: StatusPurpose, list_id: int
) -> list[tuple[int, CertificateStatus]]:
    """Each allocated index of the list with its certificate issue's status now."""
    rows = session.exec(
        select(StatusAllocation.status_index, Certificate.status)
        .join(Certificate, col(Certificate.id) == col(StatusAllocation.certificate_id))
        .where(StatusAllocation.purpose == purpose, StatusAllocation.list_id == list_id)
    ).all()
    return [(index, CertificateStatus(status)) for index, status in rows]


def latest_version(
    session: Session, purpose: StatusPurpose, list_id: int, at: datetime | None = None
) -> StatusListVersion | None:
    """The list's newest version, or the one in force at ``at`` (the newest published at
    or before it)."""
    statement = select(StatusListVersion).where(
        StatusListVersion.purpose == purpose, StatusListVersion.list_id == list_id
    )
    if at is not None:
        statement = statement.where(col(StatusListVersion.published_at) <= at)
    return session.exec(statement.order_by(col(StatusListVersion.version).desc()).limit(1)).first()


def credential(session: Session, number: str, issue: int | None) -> IssuedCredential | None:
    statement = select(IssuedCredential).where(IssuedCredential.number == number)
    if issue is not None:
        statement = statement.where(IssuedCredential.issue == issue)
    return session.exec(statement.order_by(col(IssuedCredential.issue).desc()).limit(1)).first()
