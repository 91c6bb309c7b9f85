"""The record's figures behind ``/metrics`` (``records/metrics.py``), on each database: stage
durations from the audit trail's instants, exactly, in the right buckets."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mutabaqa.anchoring import install_audit_keys
from mutabaqa.db import create_db_engine
from mutabaqa.migrate import upgrade
from mutabaqa.settings import Settings
from records.audit import append_event
from records.metrics import STAGE_BUCKETS, read_figures
from tests.databases import private_pg_database

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty, migrated database of the test's own."""
    install_audit_keys(Settings(data_dir=tmp_path))
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'figures.db'}"
        upgrade(url)
        engine = create_db_engine(url)
        yield engine
        engine.dispose()
        return
    with private_pg_database("figures") as url:
        upgrade(url)
        engine = create_db_engine(url)
        yield engine
        engine.dispose()


def _walk(session: Session, steps: list[tuple[str, str | None, str, float]]) -> None:
    """One request's events: (action, from, to, seconds after T0)."""
    rid = uuid.uuid4().hex
    for action, before, after, seconds in steps:
        append_event(
            session,
            chain=f"request:{rid}",
            actor=None,
            actor_role="system",
            action=action,
            object_type="request",
            object_id=rid,
            from_status=before,
            to_status=after,
            at=T0 + timedelta(seconds=seconds),
        )


def test_stage_durations_escalations_and_transitions(fresh_engine: Engine) -> None:
    with Session(fresh_engine) as session:
        _walk(
            session,
            [
                ("create", None, "draft", 0),
                ("submit", "draft", "submitted", 90.5),
                ("escalation", "submitted", "submitted", 100),  # no status change
                ("intake", "submitted", "application_review", 130.5),
            ],
        )
        _walk(
            session,
            [
                ("create", None, "draft", 0),
                ("submit", "draft", "submitted", 2 * 86400),
            ],
        )
        session.commit()
    with fresh_engine.connect() as connection:
        figures = read_figures(connection)
    draft = figures.stages["draft"]
    assert draft.count == 2
    assert draft.total_seconds == pytest.approx(90.5 + 2 * 86400, abs=0.01)
    # Cumulative buckets: 90.5 s is over a minute and within an hour; two days within a week.
    expected = [sum(1 for d in (90.5, 2 * 86400) if d <= bound) for bound in STAGE_BUCKETS]
    assert draft.buckets == expected
    submitted = figures.stages["submitted"]
    assert (submitted.count, submitted.buckets[0]) == (1, 1)
    assert submitted.total_seconds == pytest.approx(40.0, abs=0.01)
    assert "application_review" not in figures.stages  # still there: a stay not yet ended
    assert figures.escalations == {"submitted": 1}
    assert figures.transitions == {
        ("request", "create", "", "draft"): 2,
        ("request", "submit", "draft", "submitted"): 2,
        ("request", "intake", "submitted", "application_review"): 1,
    }
    assert figures.outbox == {} and figures.oldest_pending is None and figures.uploads == {}
