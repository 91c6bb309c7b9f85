"""What ``/metrics`` reads from the record: a few aggregate queries, each answering one row
per label set (bounded by the state machine, the effect kinds and the file purposes, never
by the number of requests). The record is the source because transitions, deliveries and
uploads are written by the worker (another process) and because its counts are exact and
survive restarts (docs/operations.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

#: Upper bounds (seconds) of the stage-duration histogram: a minute, an hour, a day, a
#: week, two, three and four weeks, ninety days.
STAGE_BUCKETS: tuple[float, ...] = (60, 3600, 86400, 7 * 86400, 14 * 86400, 21 * 86400,
                                    28 * 86400, 90 * 86400)  # fmt: skip


@dataclass
class StageDurations:
    """Completed stays in one request status: how many, their total, per bucket (cumulative
    counts of stays at most each bound long)."""

    count: int
    total_seconds: float
    buckets: list[int]


@dataclass
class RecordFigures:
    #: (action) -> accepted actions (``request_action``: people's and the system's steps).
    actions: dict[str, int] = field(default_factory=dict)
    #: (object type, action, from, to) -> status changes of requests and certificates.
    transitions: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    #: (stage) -> escalations raised (a stage target overrun).
    escalations: dict[str, int] = field(default_factory=dict)
    #: (stage) -> durations of the stays in that request status that have ended.
    stages: dict[str, StageDurations] = field(default_factory=dict)
    #: (kind, status) -> outbox rows.
    outbox: dict[tuple[str, str], int] = field(default_factory=dict)
    #: When the oldest pending outbox row was written (None: nothing pending).
    oldest_pending: datetime | None = None
    #: (purpose) -> (files recorded, their bytes).
    uploads: dict[str, tuple[int, int]] = field(default_factory=dict)


def _seconds_between(dialect: str, later: str, earlier: str) -> str:
    if dialect == "postgresql":
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    # SQLite stores the UTC instants as ISO text, which julianday() reads.
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


def _stage_query(dialect: str) -> str:
    seconds = _seconds_between(dialect, "at", "previous_at")
    buckets = ",\n".join(
        f"SUM(CASE WHEN {seconds} <= {bound} THEN 1 ELSE 0 END)" for bound in STAGE_BUCKETS
    )
    # Each status change of a request ends the stay in its from-status, which began at
    # the request's previous status change (its creation, for the first).
    return f"""
        SELECT from_status, COUNT(*), SUM({seconds}), {buckets}
        FROM (
            SELECT from_status, at,
                   LAG(at) OVER (PARTITION BY chain ORDER BY seq) AS previous_at
            FROM audit_event
            WHERE object_type = 'request' AND to_status IS NOT NULL
              AND (from_status IS NULL OR from_status <> to_status)
        ) AS changes
        WHERE previous_at IS NOT NULL AND from_status IS NOT NULL
        GROUP BY from_status
    """


def read_figures(connection: Connection) -> RecordFigures:
    """Every figure, read in one short read transaction of ``connection``."""
    dialect = connection.dialect.name
    figures = RecordFigures()
    for action, count in connection.execute(
        sa.text("SELECT action, COUNT(*) FROM request_action GROUP BY action")
    ):
        figures.actions[action] = int(count)
    for object_type, action, before, after, count in connection.execute(
        sa.text(
            "SELECT object_type, action, COALESCE(from_status, ''), to_status, COUNT(*) "
            "FROM audit_event WHERE object_type IN ('request', 'certificate') "
            "AND to_status IS NOT NULL AND (from_status IS NULL OR from_status <> to_status) "
            "GROUP BY object_type, action, from_status, to_status"
        )
    ):
        figures.transitions[(object_type, action, before, after)] = int(count)
    for stage, count in connection.execute(
        sa.text(
            "SELECT COALESCE(from_status, ''), COUNT(*) FROM audit_event "
            "WHERE object_type = 'request' AND action = 'escalation' GROUP BY from_status"
        )
    ):
        figures.escalations[stage] = int(count)
    for row in connection.execute(sa.text(_stage_query(dialect))):
        stage, count, total, *buckets = row
        figures.stages[stage] = StageDurations(
            int(count), float(total or 0.0), [int(b or 0) for b in buckets]
        )
    for kind, status, count in connection.execute(
        sa.text("SELECT kind, status, COUNT(*) FROM outbox GROUP BY kind, status")
    ):
        figures.outbox[(kind, status)] = int(count)
    oldest = connection.execute(
        sa.text("SELECT MIN(created_at) FROM outbox WHERE status = 'pending'")
    ).scalar()
    figures.oldest_pending = _instant(oldest)
    for purpose, count, size in connection.execute(
        sa.text(
            "SELECT purpose, COUNT(*), COALESCE(SUM(size), 0) FROM stored_file GROUP BY purpose"
        )
    ):
        figures.uploads[purpose] = (int(count), int(size))
    return figures


def _instant(value: object) -> datetime | None:
    """A ``UTCDateTime`` column read by a raw query: a datetime (PostgreSQL) or its ISO text
    (SQLite); always UTC."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
