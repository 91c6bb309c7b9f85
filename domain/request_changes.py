"""What each request action changes, said once.

``plan`` decides the change an action makes (pure: facts, the action and its body, the
actor and the clock in; the target status and a ``RecordChange`` out). ``reduce`` applies a
transition to the facts. The persisting activity writes the same ``RecordChange`` to the
record's row in the transition's transaction; validators judge new actions against
``reduce``'s result while the write is in flight; once it has committed, the workflow
adopts that result as its own state. Nothing else spells out a transition's effect.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from domain.actions import RecordChange, Transition
from domain.permissions import Actor
from domain.request_rules import TRANSITIONS, RequestFacts
from domain.statuses import RequestKind, RequestStatus

S = RequestStatus


def target_of(action: str, kind: RequestKind) -> RequestStatus:
    """The status ``action`` leads to (a grant: certified, or verified for a safety
    verification)."""
    if action == "grant":
        return S.CERTIFIED if kind is RequestKind.CERTIFICATION else S.VERIFIED
    target = TRANSITIONS[action][1]
    if target is None:  # pragma: no cover - every other action names its target
        raise ValueError(f"{action!r} has no fixed target")
    return target


def plan(
    facts: RequestFacts,
    action: str,
    body: dict[str, Any],
    actor: Actor,
    now: datetime,
    *,
    info_response: float,
    appeal_window: float,
) -> tuple[RequestStatus, RecordChange]:
    """The status a person's ``action`` leads to and what else it changes in the record
    (``info_response`` and ``appeal_window``: the scheme's durations, in seconds)."""
    change = RecordChange()
    if action == "accept":
        change.centre_code = body.get("centre_code") or facts.proposed_centre_code
        change.scope = body.get("scope")
        if body.get("confirm_gtin") is True:
            change.confirm_gtin = True
    elif action == "request_info":
        change.info_due_at = now + timedelta(seconds=info_response)
    elif action in ("respond", "withdraw"):
        change.cleared = ["info_due_at"]
    elif action == "verify_results":
        change.verified_by = actor.user_id
    elif action == "request_retest":
        change.round = facts.round + 1
        change.retest_items = sorted(set(body["items"]))
        change.cleared = ["excluded_decider"]
    elif action == "refuse":
        change.refused_by = actor.user_id
        change.appeal_until = now + timedelta(seconds=appeal_window)
        change.appeal_filed = False
        change.cleared = ["excluded_decider"]
    elif action == "appeal":
        change.appeal_filed = True
    elif action == "overturn":
        change.excluded_decider = facts.refused_by
    elif action == "grant":
        change.cleared = ["excluded_decider"]
    return target_of(action, facts.kind), change


def audit_detail(change: RecordChange) -> dict[str, Any]:
    """What the audit event says of a change besides the action's body."""
    detail: dict[str, Any] = {}
    if change.centre_code is not None:
        detail["centre_code"] = change.centre_code
    if change.info_due_at is not None:
        detail["due_at"] = change.info_due_at.isoformat()
    if change.round is not None:
        detail["round"] = change.round
    if change.appeal_until is not None:
        detail["appeal_until"] = change.appeal_until.isoformat()
    return detail


#: The facts a change may set or clear directly (same names as the record's columns).
_DIRECT = (
    "centre_code",
    "proposed_centre_code",
    "info_due_at",
    "refused_by",
    "appeal_until",
    "excluded_decider",
)


def reduce(facts: RequestFacts, t: Transition) -> RequestFacts:
    """The facts once transition ``t`` is applied: what the record shows as soon as the
    transition's write commits, and what the workflow's state becomes after it."""
    change = t.change
    after = replace(facts, status=t.to_status or facts.status)
    updates: dict[str, Any] = {
        name: getattr(change, name) for name in _DIRECT if getattr(change, name) is not None
    }
    updates.update({name: None for name in change.cleared if name in _DIRECT})
    after = replace(after, **updates)
    if change.round is not None and change.round != facts.round:
        after = replace(
            after,
            round=change.round,
            retest_items=frozenset(change.retest_items or ()),
            round_results=frozenset(),
            round_recorders=frozenset(),
        )
    if change.appeal_until is not None:
        after = replace(after, appeal_open=True, appeal_filed=False)
    if change.appeal_filed:
        after = replace(after, appeal_open=False, appeal_filed=True)
    if change.verified_by is not None:
        after = replace(after, verifiers=facts.verifiers | {change.verified_by})
    return after


def with_result(
    facts: RequestFacts, item_code: str, recorder: str, verdict: str | None = None
) -> RequestFacts:
    """The facts once a result of ``item_code`` by ``recorder`` is recorded. Its verdict
    is known only after the write (``None``: the one that counted before is kept)."""
    return replace(
        facts,
        round_results=facts.round_results | {item_code},
        round_recorders=facts.round_recorders | {recorder},
        recorders=facts.recorders | {recorder},
        verdicts=facts.verdicts if verdict is None else {**facts.verdicts, item_code: verdict},
    )


def with_document(facts: RequestFacts, kind: str) -> RequestFacts:
    """The facts once a dossier document of ``kind`` is recorded."""
    return replace(facts, documents=facts.documents | {kind})
