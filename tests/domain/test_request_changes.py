"""The one reducer: what each action changes, as the record and the workflow both apply it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from domain.actions import RECORD_COLUMNS, RecordChange, Transition
from domain.permissions import Actor, Role
from domain.request_changes import audit_detail, plan, reduce, with_document, with_result
from domain.request_rules import RequestFacts
from domain.statuses import RequestKind, RequestStatus
from models.requests import CertificationRequest

S = RequestStatus
NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
OFFICER = Actor(user_id="u-officer", roles=(Role.COMPLIANCE_OFFICER,))
TECH = Actor(user_id="u-tech", roles=(Role.LAB_TECHNICIAN,), centre_code="CTTH")
MAKER = Actor(user_id="u-maker", roles=(Role.MANUFACTURER,), organization_id="o1")
TIMING = {"info_response": 3600.0, "appeal_window": 7200.0}


def facts(status: RequestStatus, **more: object) -> RequestFacts:
    return RequestFacts(status=status, organization_id="o1", **more)  # type: ignore[arg-type]


def apply(
    before: RequestFacts, action: str, body: dict[str, Any], actor: Actor
) -> tuple[Transition, RequestFacts]:
    target, change = plan(before, action, body, actor, NOW, **TIMING)
    t = Transition(
        request_id="r1",
        key="client:k",
        action=action,
        actor=actor,
        acting_role="x",
        from_status=before.status,
        to_status=target,
        at=NOW,
        change=change,
    )
    return t, reduce(before, t)


def test_the_record_columns_a_change_names_exist_on_the_request_row() -> None:
    """The activity writes ``change.columns()`` to the row by name: every name must be a
    column, or a transition would fail (or silently write nothing)."""
    columns = set(sa.inspect(CertificationRequest).columns.keys())
    assert set(RECORD_COLUMNS) <= columns
    change = RecordChange(centre_code="CTTH", cleared=["info_due_at", "excluded_decider"])
    assert change.columns() == {
        "centre_code": "CTTH",
        "info_due_at": None,
        "excluded_decider": None,
    }


def test_accept_takes_the_proposed_centre_unless_the_officer_names_one() -> None:
    before = facts(S.APPLICATION_REVIEW, proposed_centre_code="CTTH")
    t, after = apply(before, "accept", {}, OFFICER)
    assert (t.to_status, after.status, after.centre_code) == (S.AWAITING_SAMPLE,) * 2 + ("CTTH",)
    _, after = apply(before, "accept", {"centre_code": "CETEMCO"}, OFFICER)
    assert after.centre_code == "CETEMCO"
    assert audit_detail(t.change) == {"centre_code": "CTTH"}


def test_request_info_sets_the_deadline_and_respond_clears_it() -> None:
    t, waiting = apply(facts(S.APPLICATION_REVIEW), "request_info", {"message": "m"}, OFFICER)
    due = NOW + timedelta(hours=1)
    assert (waiting.status, waiting.info_due_at) == (S.INFO_REQUESTED, due)
    assert t.change.columns() == {"info_due_at": due}
    assert audit_detail(t.change) == {"due_at": due.isoformat()}
    t, back = apply(waiting, "respond", {"message": "m"}, MAKER)
    assert (back.status, back.info_due_at) == (S.APPLICATION_REVIEW, None)
    assert t.change.columns() == {"info_due_at": None}


def test_a_retest_starts_a_round_with_only_its_items() -> None:
    before = facts(
        S.EVALUATED,
        round_results=frozenset({"a", "b"}),
        round_recorders=frozenset({"u-tech"}),
        recorders=frozenset({"u-tech"}),
        excluded_decider="u-other",
    )
    t, after = apply(before, "request_retest", {"items": ["b", "a", "b"], "reason": "r"}, OFFICER)
    assert after.status is S.TESTING and after.round == 2
    assert after.retest_items == {"a", "b"} and t.change.retest_items == ["a", "b"]
    assert after.round_results == frozenset() and after.round_recorders == frozenset()
    assert after.recorders == {"u-tech"}  # who tested any round stays known
    assert after.excluded_decider is None


def test_refuse_opens_the_appeal_window_and_an_appeal_closes_it() -> None:
    _, refused = apply(facts(S.EVALUATED), "refuse", {"reason": "r"}, OFFICER)
    assert refused.status is S.REFUSED and refused.refused_by == "u-officer"
    assert refused.appeal_open and refused.appeal_until == NOW + timedelta(hours=2)
    assert not refused.finished
    _, appealed = apply(refused, "appeal", {"reason": "r"}, MAKER)
    assert appealed.status is S.UNDER_APPEAL and appealed.appeal_filed and not appealed.appeal_open
    _, overturned = apply(appealed, "overturn", {"reason": "r"}, OFFICER)
    assert overturned.status is S.EVALUATED and overturned.excluded_decider == "u-officer"


def test_verification_records_the_verifier() -> None:
    _, after = apply(facts(S.RESULTS_SUBMITTED), "verify_results", {}, TECH)
    assert after.status is S.EVALUATED and after.verifiers == {"u-tech"}


@pytest.mark.parametrize(
    ("kind", "target"),
    [(RequestKind.CERTIFICATION, S.CERTIFIED), (RequestKind.SAFETY_VERIFICATION, S.VERIFIED)],
)
def test_grant_leads_to_certified_or_verified(kind: RequestKind, target: RequestStatus) -> None:
    _, after = apply(facts(S.EVALUATED, kind=kind, excluded_decider="x"), "grant", {}, OFFICER)
    assert after.status is target and after.excluded_decider is None and after.finished


def test_results_and_documents_reduce_too() -> None:
    before = facts(S.TESTING, verdicts={"a": "fail"})
    pending = with_result(before, "a", "u-tech")
    assert pending.verdicts == {"a": "fail"}  # the verdict is known once written
    done = with_result(before, "a", "u-tech", "pass")
    assert done.verdicts == {"a": "pass"} and done.round_recorders == {"u-tech"}
    assert with_document(facts(S.DRAFT), "test_report").documents == {"test_report"}
