"""The officers' dashboard from the record: counts in SQL (SQLite and PostgreSQL alike),
lead times and overdue stages from the requests' status events (``domain.dashboard``).

The range is ``[start, end)`` in UTC. Requests and certificates count when they were
created within the range (requests past the draft only, as an officer sees them); a
request's current status is the one counted. Lead times are those of stages that ended
within the range; overdue stages are those with a target (SPEC section 4) that ended late
within the range or are running late now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, func, or_, select

from domain.dashboard import LeadTime, Overdue, StatusEvent, lead_times, overdue, stages_of
from domain.statuses import RequestStatus
from models.audit import AuditEvent
from models.lab import Certificate
from models.requests import CertificationRequest

CHAIN_PREFIX = "request:"


@dataclass(frozen=True)
class Dashboard:
    start: datetime
    end: datetime
    requests_by_status: dict[str, int]
    certificates_by_status: dict[str, int]
    lead_times: list[LeadTime]
    overdue: list[Overdue]

    @property
    def requests_total(self) -> int:
        return sum(self.requests_by_status.values())


def requests_by_status(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    created = col(CertificationRequest.created_at)
    rows = session.exec(
        select(CertificationRequest.status, func.count())
        .where(created >= start, created < end)
        .where(CertificationRequest.status != RequestStatus.DRAFT)
        .group_by(CertificationRequest.status)
    ).all()
    return {RequestStatus(status).value: int(count) for status, count in rows}


def certificates_by_status(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    created = col(Certificate.created_at)
    rows = session.exec(
        select(Certificate.status, func.count())
        .where(created >= start, created < end)
        .group_by(Certificate.status)
    ).all()
    return {str(getattr(status, "value", status)): int(count) for status, count in rows}


def status_events(
    session: Session, start: datetime, end: datetime, running: frozenset[str]
) -> list[StatusEvent]:
    """The status events (before ``end``) of the requests that changed status within the
    range or are now in one of the ``running`` statuses, each chain in order."""
    chain = col(AuditEvent.chain)
    changed = select(AuditEvent.chain).where(
        chain.startswith(CHAIN_PREFIX, autoescape=True),
        col(AuditEvent.to_status).is_not(None),
        col(AuditEvent.at) >= start,
        col(AuditEvent.at) < end,
    )
    current = select(sa.literal(CHAIN_PREFIX) + col(CertificationRequest.id)).where(
        col(CertificationRequest.status).in_(sorted(running))
    )
    rows = session.exec(
        select(AuditEvent.chain, AuditEvent.at, AuditEvent.to_status)
        .where(
            col(AuditEvent.to_status).is_not(None),
            col(AuditEvent.at) < end,
            or_(chain.in_(changed), chain.in_(current)),
        )
        .order_by(chain, col(AuditEvent.seq))
    ).all()
    return [
        StatusEvent(request_id=name[len(CHAIN_PREFIX) :], at=at, to_status=str(to_status))
        for name, at, to_status in rows
    ]


def dashboard(
    session: Session,
    start: datetime,
    end: datetime,
    targets: Mapping[str, float],
    now: datetime,
) -> Dashboard:
    """Everything the dashboard shows for ``[start, end)``; ``targets``: seconds per status
    that has a target duration."""
    stages = stages_of(status_events(session, start, end, frozenset(targets)))
    return Dashboard(
        start=start,
        end=end,
        requests_by_status=requests_by_status(session, start, end),
        certificates_by_status=certificates_by_status(session, start, end),
        lead_times=lead_times(stages, start, end),
        overdue=overdue(stages, targets, start, end, now),
    )
