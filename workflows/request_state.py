"""A request workflow's state: what it knows, the facts the rules judge, its stages, and how
a transition is planned and then followed (deterministic; no I/O of its own)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.lab import LabActivities
    from activities.requests import RequestActivities
    from domain.effects import Effect
    from domain.permissions import Actor
    from domain.request_changes import reduce
    from domain.request_rules import (
        Refusal,
        RequestFacts,
        allowed_actions,
        check,
    )
    from domain.statuses import RequestStatus
    from models import search_attributes as sa
    from models.notifications import NotificationKind
    from models.request_payloads import (
        CertificateRef,
        RequestRef,
        RequestWorkflowInput,
        Transition,
    )
    from workflows.outbox import start_deliveries

from workflows.retries import DB_RETRY, SYSTEM_RETRY

S = RequestStatus
DB_TIMEOUT = timedelta(seconds=30)
FILE_TIMEOUT = timedelta(minutes=30)

#: Stages with a target duration (SPEC section 4), keyed by the status that is the stage.
STAGE_TARGETS = {
    S.AWAITING_SAMPLE: "sample_receipt_target",
    S.TESTING: "testing_target",
    S.EVALUATED: "decision_target",
}


#: Actions after which the manufacturer must act or hears of a decision.
ACTION_NOTICES = {
    "request_info": NotificationKind.INFO_REQUESTED,
    "decline": NotificationKind.DECLINED,
    "accept": NotificationKind.ACCEPTED,
    "reject_sample": NotificationKind.SAMPLE_REJECTED,
    "refuse": NotificationKind.REFUSED,
    "request_retest": NotificationKind.RETEST_REQUESTED,
    "uphold": NotificationKind.APPEAL_DECIDED,
    "overturn": NotificationKind.APPEAL_DECIDED,
}


def not_ready() -> ApplicationError:
    """The workflow has started but its record is not written yet: try again (503), not a
    refusal (the record may already list the action)."""
    return ApplicationError(
        "the request is still being created; try again shortly",
        {"status": 503, "kind": "not-ready"},
        type="not-ready",
        non_retryable=True,
    )


def refusal_error(refusal: Refusal, status: RequestStatus, allowed: list[str]) -> ApplicationError:
    return ApplicationError(
        refusal.detail,
        {
            "status": refusal.status,
            "kind": refusal.kind,
            "request_status": status.value,
            "allowed_actions": allowed,
        },
        type=refusal.kind,
        non_retryable=True,
    )


class RequestState:
    """The state of one request's workflow, and the moves that change it."""

    @workflow.init
    def __init__(self, params: RequestWorkflowInput) -> None:
        self.params = params
        self.ref: RequestRef | None = None
        self.status = params.initial_status
        self.centre_code: str | None = params.centre_code
        self.proposed_centre_code: str | None = None
        self.round = 1
        self.documents: set[str] = set()
        self.lock = asyncio.Lock()
        self.changed = False
        # timers
        self.info_due: datetime | None = None
        self.info_reminder_at: datetime | None = None
        self.reminder_sent = False
        self.stage_started: datetime | None = None
        self.stage_seconds: dict[str, float] = {}
        self.escalated: set[str] = set()
        # laboratory and decision
        self.plan = {entry.code: entry.mandatory for entry in params.scheme.items}
        self.retest_items: set[str] = set()
        self.round_results: set[str] = set()
        self.verdicts: dict[str, str] = {}
        self.round_recorders: set[str] = set()
        self.recorders: set[str] = set()
        self.verifiers: set[str] = set()
        self.refused_by: str | None = None
        self.excluded_decider: str | None = None
        self.appeal_until: datetime | None = None
        self.appeal_filed = False
        self.certificate: CertificateRef | None = None
        #: The facts as they will be once the write in flight is applied (None: no write
        #: in flight). The record may show them already; validators judge against them.
        self.pending: RequestFacts | None = None
        #: The last change, named in refusals so a caller sees what moved the request.
        self.last_change: str | None = None

    def facts(self) -> RequestFacts:
        return RequestFacts(
            status=self.status,
            organization_id=self.params.organization_id,
            centre_code=self.centre_code,
            proposed_centre_code=self.proposed_centre_code,
            required_documents=self.params.scheme.required_documents,
            documents=frozenset(self.documents),
            kind=self.params.kind,
            round=self.round,
            plan=self.plan,
            retest_items=frozenset(self.retest_items),
            round_results=frozenset(self.round_results),
            verdicts=self.verdicts,
            round_recorders=frozenset(self.round_recorders),
            recorders=frozenset(self.recorders),
            verifiers=frozenset(self.verifiers),
            refused_by=self.refused_by,
            excluded_decider=self.excluded_decider,
            appeal_open=(
                self.status is S.REFUSED
                and not self.appeal_filed
                and self.appeal_until is not None
                and workflow.now() < self.appeal_until
            ),
            info_due_at=self.info_due,
            appeal_until=self.appeal_until,
            appeal_filed=self.appeal_filed,
        )

    def _adopt(self, facts: RequestFacts, now: datetime) -> None:
        """Take ``facts`` (a reducer's result, once its write has committed) as the
        workflow's own state; a status change enters its stage."""
        self.centre_code = facts.centre_code
        self.proposed_centre_code = facts.proposed_centre_code
        self.round = facts.round
        self.documents = set(facts.documents)
        self.retest_items = set(facts.retest_items)
        self.round_results = set(facts.round_results)
        self.verdicts = dict(facts.verdicts)
        self.round_recorders = set(facts.round_recorders)
        self.recorders = set(facts.recorders)
        self.verifiers = set(facts.verifiers)
        self.refused_by = facts.refused_by
        self.excluded_decider = facts.excluded_decider
        self.appeal_until = facts.appeal_until
        self.appeal_filed = facts.appeal_filed
        if facts.info_due_at != self.info_due:
            self.info_due = facts.info_due_at
            timing = self.params.timing
            self.info_reminder_at = (
                None
                if facts.info_due_at is None
                else now + timedelta(seconds=timing.info_response * timing.info_reminder_fraction)
            )
            self.reminder_sent = False
        if facts.status is not self.status:
            self._enter(facts.status, now)
        else:
            self.changed = True

    def judged_facts(self, ahead: bool) -> RequestFacts:
        """The facts an action is judged against: in a validator (``ahead``), those the
        write in flight will produce — what the record may show already; the handler
        re-checks under the lock against the state as it is."""
        return self.pending if ahead and self.pending is not None else self.facts()

    def _refusal(self, refusal: Refusal, facts: RequestFacts, actor: Actor) -> ApplicationError:
        if refusal.status == 409 and self.last_change:
            refusal = Refusal(
                refusal.status,
                refusal.kind,
                f"{refusal.detail} (last change: {self.last_change})",
            )
        return refusal_error(refusal, facts.status, allowed_actions(facts, actor))

    def _refuse(self, action: str, actor: Actor, body: dict[str, Any], ahead: bool = False) -> None:
        if self.ref is None:
            raise not_ready()
        facts = self.judged_facts(ahead)
        try:
            check(action, facts, actor, body)
        except Refusal as refusal:
            raise self._refusal(refusal, facts, actor) from None

    def _changed(self, action: str, role: str, now: datetime) -> None:
        self.last_change = f"{action!r} by {role} at {now.isoformat(timespec='seconds')}"

    def _search_attributes(self) -> None:
        workflow.upsert_search_attributes(
            [sa.STATUS.value_set(self.status.value)]
            + ([sa.CENTRE.value_set(self.centre_code)] if self.centre_code else [])
        )

    def _leave_stage(self, now: datetime) -> None:
        if self.stage_started is not None:
            key = self.status.value
            spent = (now - self.stage_started).total_seconds()
            self.stage_seconds[key] = self.stage_seconds.get(key, 0.0) + spent
        self.stage_started = None

    def _enter(self, status: RequestStatus, now: datetime) -> None:
        self._leave_stage(now)
        self.status = status
        self.stage_started = now
        self._search_attributes()
        self.changed = True

    def _stage_key(self) -> str:
        return f"{self.status.value}:{self.round}"

    def _stage_target(self) -> float | None:
        name = STAGE_TARGETS.get(self.status)
        return None if name is None else float(getattr(self.params.timing, name))

    def _due_instants(self) -> list[datetime]:
        instants = []
        if self.status is S.INFO_REQUESTED and self.info_due is not None:
            instants.append(self.info_due)
            if not self.reminder_sent and self.info_reminder_at is not None:
                instants.append(self.info_reminder_at)
        if self.status is S.REFUSED and not self.appeal_filed and self.appeal_until:
            instants.append(self.appeal_until)
        target = self._stage_target()
        if (
            target is not None
            and self.stage_started is not None
            and self._stage_key() not in self.escalated
        ):
            spent = self.stage_seconds.get(self.status.value, 0.0)
            instants.append(self.stage_started + timedelta(seconds=target - spent))
        return instants

    def _next_timer(self) -> timedelta | None:
        instants = self._due_instants()
        if not instants:
            return None
        return max(min(instants) - workflow.now(), timedelta(milliseconds=1))

    async def _transition(self, t: Transition, retry: RetryPolicy = DB_RETRY) -> RequestRef:
        """Persist the transition with its outbox rows (one transaction), then start their
        deliveries without waiting for them."""
        if t.issue_certificate:
            ref = await workflow.execute_activity_method(
                LabActivities.grant,
                t,
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=retry,
            )
        else:
            ref = await workflow.execute_activity_method(
                RequestActivities.apply_transition,
                t,
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=retry,
            )
        await self._deliver(ref.outbox_ids, t.effects)
        return ref

    async def _deliver(self, ids: list[str], effects: list[Effect]) -> None:
        await start_deliveries(ids, effects, self.params.timing.delivery)

    async def _persist(self, t: Transition) -> None:
        """Write a system transition; while it is in flight, validators judge against the
        facts it will produce."""
        after = reduce(self.facts(), t)
        self.pending = after
        try:
            await self._transition(t, SYSTEM_RETRY)
        finally:
            self.pending = None
        self._adopt(after, t.at)
