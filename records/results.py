"""Laboratory results as the record holds them: every revision of every round, and the
views the API and the activities build from them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, select

from models.lab import TestResult
from models.request_payloads import ResultView


def result_view(result: TestResult) -> ResultView:
    return ResultView(
        item_code=result.item_code,
        value=None if result.value is None else str(result.value),
        values=list(result.values),
        uncertainty=None if result.uncertainty is None else str(result.uncertainty),
        unit=result.unit,
        verdict=result.verdict.value,
        specimen_verdicts=list(result.specimen_verdicts),
        round=result.round,
        revision=result.revision,
        recorded_by=result.recorded_by,
        recorded_at=result.recorded_at,
        verified_by=result.verified_by,
        equipment_id=result.equipment_id,
        remarks=result.remarks,
    )


def latest_of(results: Iterable[TestResult]) -> list[TestResult]:
    """The latest revision of every (round, item), in round and item order."""
    latest: dict[tuple[int, str], TestResult] = {}
    for result in sorted(results, key=lambda r: (r.round, r.item_code, r.revision)):
        latest[(result.round, result.item_code)] = result
    return list(latest.values())


def counting_of(latest: Iterable[TestResult]) -> dict[str, TestResult]:
    """For each item, the result that counts: its latest round's latest revision."""
    counting: dict[str, TestResult] = {}
    for result in latest:
        if result.item_code not in counting or result.round > counting[result.item_code].round:
            counting[result.item_code] = result
    return counting


def latest_results(session: Session, request_id: str) -> list[TestResult]:
    """The latest revision of every (round, item)."""
    return latest_of(
        session.exec(select(TestResult).where(TestResult.request_id == request_id)).all()
    )


def counting_results(session: Session, request_id: str) -> dict[str, TestResult]:
    """For each item, the result that counts: its latest round's latest revision."""
    return counting_of(latest_results(session, request_id))
