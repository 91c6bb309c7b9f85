"""The dashboard's numbers: the pure percentile and stage functions, and the aggregation
over the record on PostgreSQL and SQLite (rows written in a transaction that is rolled
back, in a range of their own, so the counts are exact)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, select

from domain.dashboard import Stage, StatusEvent, bars, lead_times, overdue, percentile, stages_of
from models.accounts import Organization, Product
from models.audit import AuditEvent, request_chain
from models.lab import Certificate, CertificateStatus
from models.reference import Scheme
from models.requests import CertificationRequest, RequestKind, RequestStatus
from mutabaqa.db import create_db_engine
from mutabaqa.settings import Settings
from records.dashboard import dashboard

T0 = datetime(2001, 3, 1, tzinfo=UTC)
HOUR = 3600.0


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 90) == 7.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([4, 1, 3, 2], 90) == pytest.approx(3.7)
    assert percentile(list(range(1, 11)), 50) == 5.5
    assert percentile([10, 20], 0) == 10 and percentile([10, 20], 100) == 20
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_stages_come_from_status_changes_and_a_kept_status_goes_on() -> None:
    events = [
        StatusEvent("a", at(0), "submitted"),
        StatusEvent("b", at(0), "submitted"),
        StatusEvent("a", at(1), "application_review"),
        StatusEvent("a", at(5), "awaiting_sample"),
        StatusEvent("a", at(6), "awaiting_sample"),  # a rejected sample: the stage goes on
        StatusEvent("a", at(9), "testing"),
        StatusEvent("b", at(3), "application_review"),
    ]
    stages = stages_of(events)
    ended = {(s.request_id, s.status): s.seconds(at(100)) for s in stages if s.ended}
    assert ended == {
        ("a", "submitted"): 1 * HOUR,
        ("a", "application_review"): 4 * HOUR,
        ("a", "awaiting_sample"): 4 * HOUR,
        ("b", "submitted"): 3 * HOUR,
    }
    running = {(s.request_id, s.status) for s in stages if s.ended is None}
    assert running == {("a", "testing"), ("b", "application_review")}

    times = {t.status: t for t in lead_times(stages, at(0), at(4))}
    # Only stages that ended within the range: a's review ended at 5 h, outside.
    assert set(times) == {"submitted"}
    assert times["submitted"].count == 2 and times["submitted"].p50 == 2 * HOUR
    assert times["submitted"].p90 == pytest.approx(2.8 * HOUR)


def test_overdue_counts_late_stages_ended_in_the_range_and_running_now() -> None:
    stages = [
        Stage("a", "testing", at(0), at(30)),  # 30 h > 24 h, ended in range
        Stage("b", "testing", at(0), at(10)),  # in time
        Stage("c", "testing", at(0), None),  # running 50 h at now
        Stage("d", "evaluated", at(40), None),  # running 10 h
        Stage("e", "application_review", at(0), None),  # no target
    ]
    rows = overdue(stages, {"testing": 24 * HOUR, "evaluated": 12 * HOUR}, at(0), at(48), at(50))
    assert [(r.status, r.finished_late, r.running_late) for r in rows] == [
        ("testing", 1, 1),
        ("evaluated", 0, 0),
    ]


def test_bars_scale_to_the_largest_value() -> None:
    drawn = bars([("a", 2, "2"), ("b", 4, "4"), ("c", 0, "0")])
    assert [b.width for b in drawn] == [50.0, 100.0, 0.0]
    assert [b.y for b in drawn] == [0, 32, 64]
    assert bars([]) == []


def _request(
    session: Session,
    org: str,
    product: str,
    scheme: Scheme,
    status: RequestStatus,
    created: datetime,
) -> str:
    rid = uuid.uuid4().hex
    assert scheme.id is not None
    session.add(
        CertificationRequest(
            id=rid,
            number=f"T-{rid[:12]}",
            organization_id=org,
            product_id=product,
            scheme_id=scheme.id,
            scheme_code=scheme.code,
            scheme_version=scheme.version,
            kind=RequestKind.CERTIFICATION,
            scope="dashboard test",
            status=status,
            workflow_id=f"dashboard-test-{rid}",
            created_by="tester",
            created_at=created,
            updated_at=created,
        )
    )
    return rid


def _events(session: Session, rid: str, steps: Sequence[tuple[float, str]]) -> None:
    for seq, (hours, status) in enumerate(steps, start=1):
        session.add(
            AuditEvent(
                chain=request_chain(rid),
                seq=seq,
                at=at(hours),
                actor_role="system",
                action="test",
                object_type="request",
                object_id=rid,
                to_status=status,
                canonical="{}",
                prev_hash="0" * 64,
                hash=uuid.uuid4().hex * 2,
            )
        )


@pytest.mark.both_databases
def test_the_dashboard_aggregates_the_record(settings: Settings) -> None:
    engine = create_db_engine(settings.resolved_database_url)
    try:
        with Session(engine) as session:
            session.begin()
            scheme = session.exec(select(Scheme)).first()
            assert scheme is not None
            org = Organization(
                name="Dashboard test",
                registration_id=uuid.uuid4().hex[:15],
                address="x",
                country="FR",
            )
            session.add(org)
            session.flush()
            product = Product(name="Mask", brand="B", model="M", organization_id=org.id)
            session.add(product)
            session.flush()
            statuses = [RequestStatus.APPLICATION_REVIEW] * 3 + [RequestStatus.TESTING] * 2
            ids = [_request(session, org.id, product.id, scheme, s, at(1)) for s in statuses]
            _request(session, org.id, product.id, scheme, RequestStatus.DRAFT, at(1))
            # Outside the range: not counted.
            _request(session, org.id, product.id, scheme, RequestStatus.DECLINED, at(-48))
            session.flush()
            review = [(1, "submitted"), (2, "application_review")]
            for rid in ids[:3]:
                _events(session, rid, review)
            _events(session, ids[3], [*review, (4, "awaiting_sample"), (10, "testing")])
            _events(session, ids[4], [*review, (6, "awaiting_sample"), (8, "testing")])
            session.add(
                Certificate(
                    id=uuid.uuid4().hex, number=f"T-{uuid.uuid4().hex[:10]}", request_id=ids[3],
                    organization_id=org.id, centre_code="CTTH", status=CertificateStatus.ACTIVE,
                    test_report_digest="x", issued_on=date(2001, 3, 1),
                    valid_until=date(2004, 3, 1), created_at=at(12),
                )
            )  # fmt: skip
            session.flush()
            targets = {"awaiting_sample": 5 * HOUR, "testing": 24 * HOUR}
            board = dashboard(session, T0, T0 + timedelta(days=1), targets, at(40))
            session.rollback()
    finally:
        engine.dispose()
    assert board.requests_by_status == {"application_review": 3, "testing": 2}
    assert board.requests_total == 5
    assert board.certificates_by_status == {"active": 1}
    times = {t.status: t for t in board.lead_times}
    assert times["submitted"].count == 5 and times["submitted"].p50 == HOUR
    assert times["application_review"].count == 2  # three are still in review
    assert times["application_review"].p50 == 3 * HOUR  # 2 h and 4 h
    assert times["awaiting_sample"].p90 == pytest.approx(5.6 * HOUR)  # 6 h and 2 h
    late = {o.status: (o.finished_late, o.running_late) for o in board.overdue}
    # One sample stage took 6 h (> 5 h); the testing stages have run 30 h and 32 h (> 24 h).
    assert late == {"awaiting_sample": (1, 0), "testing": (0, 2)}
