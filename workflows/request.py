"""One workflow per certification request: it owns the request's state (SPEC section 4).

Human actions arrive as Updates. Each validator asks ``request_rules.check`` (pure) and
refuses without leaving a trace in history; each handler takes the one lock, checks again,
has an activity write the record, then changes its own state. Deadlines and stage targets
are durable timers in the main loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.lab import LabActivities
    from activities.requests import RequestActivities
    from domain.effects import Effect, EffectKind
    from domain.keys import system_key
    from domain.permissions import Actor
    from domain.request_rules import (
        RECORD_RESULT,
        TRANSITIONS,
        UPLOAD_DOCUMENT,
        UPLOAD_EVIDENCE,
        Refusal,
        RequestFacts,
        acting_role,
        allowed_actions,
        can_test,
        can_upload_document,
        check,
        check_result,
        facts_after,
        facts_with_document,
        facts_with_result,
    )
    from domain.statuses import FilePurpose, RequestKind, RequestStatus
    from models import search_attributes as sa
    from models.certificate_lifecycle import SurveillanceOutcome
    from models.notifications import NotificationKind, NotifyInput
    from models.request_payloads import (
        ActionInput,
        ActionResult,
        CertificateRef,
        CreateRequestInput,
        IntakeInput,
        RecordFileInput,
        RecordResultInput,
        RequestRef,
        RequestWorkflowInput,
        ResultView,
        Transition,
    )
    from models.workflow_names import REQUEST_WORKFLOW
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


@workflow.defn(name=REQUEST_WORKFLOW)
class RequestWorkflow:
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

    # --- facts and helpers -----------------------------------------------------------------

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
        )

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
        self.pending = facts_after(self.facts(), t)
        try:
            await self._transition(t, SYSTEM_RETRY)
        finally:
            self.pending = None

    def _email(
        self, kind: NotificationKind, key: str, centre_code: str | None = None, **details: Any
    ) -> Effect:
        """An e-mail, as an outbox row of the transition that causes it."""
        dedupe_key = f"{workflow.info().workflow_id}:{key}"
        return Effect(
            kind=EffectKind.EMAIL,
            dedupe_key=f"email:{dedupe_key}",
            payload=NotifyInput(
                request_id=self.params.request_id,
                request_number=self.ref.number if self.ref else "",
                kind=kind,
                product_name=self.params.product_name,
                scheme_code=self.params.scheme.code,
                centre_code=centre_code or self.centre_code,
                dedupe_key=dedupe_key,
                **details,
            ).model_dump(mode="json"),
        )

    # --- the run ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, params: RequestWorkflowInput) -> RequestRef:
        self.ref = await workflow.execute_activity_method(
            RequestActivities.create_request,
            CreateRequestInput(workflow_id=workflow.info().workflow_id, params=params),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=SYSTEM_RETRY,
        )
        self.stage_started = workflow.now()
        self._search_attributes()
        while not self.facts().finished:
            if self.status is S.SUBMITTED:
                await self._intake()
                continue
            timeout = self._next_timer()
            self.changed = False
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self.changed,
                    timeout=timeout,
                )
            if not self.changed:
                await self._timers_due()
        await workflow.wait_condition(workflow.all_handlers_finished)
        # Side effects are the outbox's: nothing here waits for mail, webhooks or PDFs.
        assert self.ref is not None
        return RequestRef(
            request_id=self.ref.request_id, number=self.ref.number, status=self.status
        )

    async def _intake(self) -> None:
        async with self.lock:
            result = await workflow.execute_activity_method(
                RequestActivities.intake_checks,
                IntakeInput(
                    request_id=self.params.request_id,
                    sector=self.params.scheme.sector,
                    required_documents=self.params.scheme.required_documents,
                ),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=SYSTEM_RETRY,
            )
            now = workflow.now()
            t = Transition(
                request_id=self.params.request_id,
                key=system_key("intake", self.round),
                action="intake",
                actor=None,
                acting_role="system",
                from_status=self.status,
                to_status=S.APPLICATION_REVIEW,
                at=now,
                proposed_centre_code=result.proposed_centre_code,
                detail={
                    "proposed_centre": result.proposed_centre_code,
                    "candidates": result.candidate_centres,
                    "problems": result.problems,
                },
            )
            await self._persist(t)
            self.proposed_centre_code = result.proposed_centre_code
            self._enter(S.APPLICATION_REVIEW, now)
            self._changed("intake", "system", now)

    # --- timers ----------------------------------------------------------------------------

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

    def _stage_key(self) -> str:
        return f"{self.status.value}:{self.round}"

    def _stage_target(self) -> float | None:
        name = STAGE_TARGETS.get(self.status)
        return None if name is None else float(getattr(self.params.timing, name))

    def _next_timer(self) -> timedelta | None:
        instants = self._due_instants()
        if not instants:
            return None
        return max(min(instants) - workflow.now(), timedelta(milliseconds=1))

    async def _timers_due(self) -> None:
        async with self.lock:
            now = workflow.now()
            if self.status is S.INFO_REQUESTED and self.info_due is not None:
                if now >= self.info_due:
                    await self._lapse(now)
                    return
                if (
                    not self.reminder_sent
                    and self.info_reminder_at is not None
                    and now >= self.info_reminder_at
                ):
                    await self._system_event(
                        "reminder",
                        system_key("reminder", self.info_due.isoformat()),
                        now,
                        {"due_at": self.info_due.isoformat()},
                    )
                    self.reminder_sent = True
            target = self._stage_target()
            if target is not None and self.stage_started is not None:
                spent = self.stage_seconds.get(self.status.value, 0.0)
                key = self._stage_key()
                elapsed = spent + (now - self.stage_started).total_seconds()
                if key not in self.escalated and elapsed >= target:
                    await self._system_event(
                        "escalation",
                        system_key("escalation", key),
                        now,
                        {
                            "stage": self.status.value,
                            "round": self.round,
                            "target_seconds": target,
                            "elapsed_seconds": round(elapsed, 3),
                        },
                        [
                            self._email(
                                NotificationKind.ESCALATION,
                                f"escalation:{key}",
                                stage=self.status.value,
                            )
                        ],
                    )
                    self.escalated.add(key)

    async def _system_event(
        self,
        action: str,
        key: str,
        now: datetime,
        detail: dict[str, Any],
        effects: list[Effect] | None = None,
    ) -> None:
        effects = effects or []
        ids = await workflow.execute_activity_method(
            RequestActivities.record_event,
            Transition(
                request_id=self.params.request_id,
                key=key,
                action=action,
                actor=None,
                acting_role="system",
                from_status=self.status,
                to_status=self.status,
                at=now,
                detail=detail,
                effects=effects,
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=SYSTEM_RETRY,
        )
        await self._deliver(ids, effects)

    async def _lapse(self, now: datetime) -> None:
        self._leave_stage(now)
        t = Transition(
            request_id=self.params.request_id,
            key=system_key("lapse", self.info_due),
            action="lapse",
            actor=None,
            acting_role="system",
            from_status=self.status,
            to_status=S.LAPSED,
            at=now,
            clear_info_due=True,
            stage_seconds=self.stage_seconds,
            detail={"reason": "no answer to the information request by its deadline"},
            effects=[self._email(NotificationKind.LAPSED, f"lapse:{self.info_due}")],
        )
        await self._persist(t)
        self._enter(S.LAPSED, now)
        self._changed("lapse", "system", now)

    # --- actions ---------------------------------------------------------------------------

    def _target(self, action: str) -> RequestStatus:
        _, target = TRANSITIONS[action]
        if action == "grant":
            issues_certificate = self.params.kind is RequestKind.CERTIFICATION
            return S.CERTIFIED if issues_certificate else S.VERIFIED
        assert target is not None
        return target

    async def _act(self, cmd: ActionInput) -> ActionResult:
        async with self.lock:
            self._refuse(cmd.action, cmd.actor, cmd.body)  # state may have moved meanwhile
            now = workflow.now()
            before = self.status
            target = self._target(cmd.action)
            role = acting_role(cmd.action, cmd.actor)
            t = Transition(
                request_id=self.params.request_id,
                key=cmd.key,
                action=cmd.action,
                actor=cmd.actor,
                acting_role=role.value if role else "unknown",
                body=cmd.body,
                body_hash=cmd.body_hash,
                from_status=before,
                to_status=target,
                at=now,
                detail={k: v for k, v in cmd.body.items() if v is not None},
            )
            self._plan_transition(cmd, t, now)
            t.effects = self._effects(cmd, t, target, now)
            stage = (self.stage_started, dict(self.stage_seconds))
            if target is not before:
                self._leave_stage(now)
                t.stage_seconds = dict(self.stage_seconds)
            self.pending = facts_after(self.facts(), t)
            try:
                return await self._apply(cmd, t, before, target, now)
            except ActivityError:
                # Nothing was recorded: the stage goes on, and so do its timers.
                self.stage_started, self.stage_seconds = stage
                raise
            finally:
                self.pending = None

    async def _apply(
        self,
        cmd: ActionInput,
        t: Transition,
        before: RequestStatus,
        target: RequestStatus,
        now: datetime,
    ) -> ActionResult:
        """Write the transition (and what it brings, side effects included, in the same
        transaction), then have the workflow's state follow."""
        ref = await self._transition(t)
        if ref.certificate is not None:
            self.certificate = ref.certificate
        # The record is written: now the workflow's own state follows.
        self._follow_transition(cmd, t, now)
        if target is not before:
            self._enter(target, now)
        else:
            self.changed = True
        self._changed(cmd.action, t.acting_role, now)
        return ActionResult(
            request_id=self.params.request_id,
            status=self.status,
            round=self.round,
            certificate_number=self.certificate.number if self.certificate else None,
        )

    def _effects(
        self, cmd: ActionInput, t: Transition, target: RequestStatus, now: datetime
    ) -> list[Effect]:
        """The side effects of an action, decided here and written with its transition."""
        wid = workflow.info().workflow_id
        effects: list[Effect] = []
        if cmd.action == "grant" and target is S.CERTIFIED:
            t.issue_certificate = True
            t.detail["certificate_number"] = None  # filled in by the issuing transaction
            effects.append(
                Effect(kind=EffectKind.CERTIFICATE_PDF, dedupe_key=f"certificate-pdf:{wid}")
            )
            effects.append(self._certificate_workflow_effect(t, now))
        if self.params.certificate_number and cmd.action in ("grant", "refuse"):
            effects.append(self._surveillance_effect(cmd.action == "grant", target))
        email = self._action_email(cmd, t, target)
        if email is not None:
            effects.append(email)
        return effects

    def _surveillance_effect(self, passed: bool, status: RequestStatus) -> Effect:
        """A surveillance request tells its certificate's workflow how it ended (through
        the outbox: if that workflow has closed, the row says so and nothing else moves)."""
        wid = workflow.info().workflow_id
        return Effect(
            kind=EffectKind.SURVEILLANCE_OUTCOME,
            dedupe_key=f"surveillance-outcome:{wid}",
            payload={
                "workflow_id": f"certificate-{self.params.certificate_number}",
                "outcome": SurveillanceOutcome(
                    request_workflow_id=wid, passed=passed, status=status.value
                ).model_dump(mode="json"),
            },
        )

    def _certificate_workflow_effect(self, t: Transition, now: datetime) -> Effect:
        """The certificate's own long-running workflow (it outlives this request's); the
        issuing transaction adds the certificate's id, number and dates."""
        timing = self.params.timing.certificate
        centre = t.centre_code or self.centre_code or ""
        return Effect(
            kind=EffectKind.START_CERTIFICATE_WORKFLOW,
            dedupe_key=f"certificate-workflow:{workflow.info().workflow_id}",
            payload={
                "request_id": self.params.request_id,
                "organization_id": self.params.organization_id,
                "centre_code": centre,
                "scheme_id": self.params.scheme.id,
                "scheme_code": self.params.scheme.code,
                "scheme_version": self.params.scheme.version,
                "product_id": self.params.product_id,
                "product_name": self.params.product_name,
                "request_number": self.ref.number if self.ref else "",
                "issued_at": now.isoformat(),
                "expires_at": (
                    (now + timedelta(seconds=timing.validity)).isoformat()
                    if timing.validity
                    else None
                ),
                "timing": timing.model_dump(mode="json"),
            },
        )

    def _plan_transition(self, cmd: ActionInput, t: Transition, now: datetime) -> None:
        """What the record must change besides the status (pure: no state changes yet)."""
        action = cmd.action
        if action == "accept":
            t.centre_code = cmd.body.get("centre_code") or self.proposed_centre_code
            t.scope = cmd.body.get("scope")
            t.detail["centre_code"] = t.centre_code
        elif action == "request_info":
            due = now + timedelta(seconds=self.params.timing.info_response)
            t.info_due_at = due
            t.detail["due_at"] = due.isoformat()
        elif action in ("respond", "withdraw"):
            t.clear_info_due = True
        elif action == "request_retest":
            t.round = self.round + 1
            t.retest_items = sorted(set(cmd.body["items"]))
            t.detail["round"] = t.round
            t.clear_excluded_decider = True
        elif action == "refuse":
            t.refused_by = cmd.actor.user_id
            t.appeal_until = now + timedelta(seconds=self.params.timing.appeal_window)
            t.appeal_filed = False
            t.clear_excluded_decider = True
            t.detail["appeal_until"] = t.appeal_until.isoformat()
        elif action == "appeal":
            t.appeal_filed = True
        elif action == "overturn":
            t.excluded_decider = self.refused_by
        elif action == "grant":
            t.clear_excluded_decider = True

    def _follow_transition(self, cmd: ActionInput, t: Transition, now: datetime) -> None:
        action = cmd.action
        if action == "accept":
            self.centre_code = t.centre_code
        elif action == "request_info":
            self.info_due = t.info_due_at
            fraction = self.params.timing.info_reminder_fraction
            self.info_reminder_at = now + timedelta(
                seconds=self.params.timing.info_response * fraction
            )
            self.reminder_sent = False
        elif action in ("respond", "withdraw"):
            self.info_due = None
        elif action == "verify_results":
            self.verifiers.add(cmd.actor.user_id)
        elif action == "request_retest":
            self.round += 1
            self.retest_items = set(t.retest_items or [])
            self.round_results = set()
            self.round_recorders = set()
            self.excluded_decider = None
        elif action == "refuse":
            self.refused_by = cmd.actor.user_id
            self.appeal_until = t.appeal_until
            self.appeal_filed = False
            self.excluded_decider = None
        elif action == "appeal":
            self.appeal_filed = True
        elif action == "overturn":
            self.excluded_decider = self.refused_by
        elif action == "grant":
            self.excluded_decider = None

    async def _record(self, cmd: ActionInput) -> ResultView:
        async with self.lock:
            item = str(cmd.body.get("item_code"))
            self._validate_record(cmd)
            self.pending = facts_with_result(self.facts(), item, cmd.actor.user_id)
            try:
                return await self._record_result(cmd, item)
            finally:
                self.pending = None

    async def _record_result(self, cmd: ActionInput, item: str) -> ResultView:
        result = await workflow.execute_activity_method(
            LabActivities.record_result,
            RecordResultInput(
                request_id=self.params.request_id,
                key=cmd.key,
                round=self.round,
                item_code=item,
                values=list(cmd.body.get("values", [])),
                uncertainty=cmd.body.get("uncertainty"),
                equipment_id=cmd.body.get("equipment_id"),
                remarks=cmd.body.get("remarks"),
                actor=cmd.actor,
                at=workflow.now(),
                body_hash=cmd.body_hash,
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        self.round_results.add(item)
        self.round_recorders.add(cmd.actor.user_id)
        self.recorders.add(cmd.actor.user_id)
        self.verdicts[item] = result.verdict
        self.changed = True
        return result

    def _validate_record(self, cmd: ActionInput, ahead: bool = False) -> None:
        if self.ref is None:
            raise not_ready()
        facts = self.judged_facts(ahead)
        try:
            check_result(str(cmd.body.get("item_code")), facts, cmd.actor)
        except Refusal as refusal:
            raise self._refusal(refusal, facts, cmd.actor) from None

    def _action_email(
        self, cmd: ActionInput, t: Transition, target: RequestStatus
    ) -> Effect | None:
        centre = t.centre_code or self.centre_code
        if cmd.action == "grant":
            certified = target is S.CERTIFIED
            return self._email(
                NotificationKind.CERTIFIED if certified else NotificationKind.VERIFIED,
                cmd.key,
                centre,
                certificate_number=None,  # a grant's: filled in by the issuing transaction
            )
        kind = ACTION_NOTICES.get(cmd.action)
        if kind is None:
            return None
        due = {"request_info": t.info_due_at, "refuse": t.appeal_until}.get(cmd.action)
        outcome = {"uphold": "upheld", "overturn": "overturned"}.get(cmd.action)
        return self._email(
            kind,
            cmd.key,
            centre,
            reason=cmd.body.get("reason"),
            message=cmd.body.get("message"),
            due_at=due,
            **({"appeal_outcome": outcome} if outcome else {}),
        )

    async def _upload(self, cmd: ActionInput) -> ActionResult:
        async with self.lock:
            self._validate_upload(cmd)
            assert cmd.file is not None
            evidence = cmd.action == UPLOAD_EVIDENCE
            if not evidence and cmd.file.kind:
                self.pending = facts_with_document(self.facts(), cmd.file.kind)
            try:
                return await self._record_upload(cmd, evidence)
            finally:
                self.pending = None

    async def _record_upload(self, cmd: ActionInput, evidence: bool) -> ActionResult:
        assert cmd.file is not None
        await workflow.execute_activity_method(
            RequestActivities.record_file,
            RecordFileInput(
                request_id=self.params.request_id,
                key=cmd.key,
                actor=cmd.actor,
                acting_role="lab_technician" if evidence else "manufacturer",
                status=self.status,
                purpose=(FilePurpose.EVIDENCE if evidence else FilePurpose.DOCUMENT).value,
                file=cmd.file,
                round=self.round if evidence else None,
                at=workflow.now(),
            ),
            start_to_close_timeout=FILE_TIMEOUT,
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=DB_RETRY,
        )
        if not evidence and cmd.file.kind:
            self.documents.add(cmd.file.kind)
        self.changed = True
        return ActionResult(request_id=self.params.request_id, status=self.status, round=self.round)

    def _validate_upload(self, cmd: ActionInput, ahead: bool = False) -> None:
        if self.ref is None:
            raise not_ready()
        facts = self.judged_facts(ahead)
        evidence = cmd.action == UPLOAD_EVIDENCE
        refusal = None
        if cmd.file is None or (not evidence and not cmd.file.kind):
            refusal = Refusal(422, "invalid-body", "a document needs its kind and file")
        elif evidence and cmd.file.item_code and cmd.file.item_code not in self.plan:
            refusal = Refusal(404, "not-found", f"item {cmd.file.item_code!r} is not in the plan")
        elif not (
            can_test(facts, cmd.actor) if evidence else can_upload_document(facts, cmd.actor)
        ):
            what = "evidence" if evidence else "documents"
            refusal = Refusal(
                409, "invalid-transition", f"{what} cannot be uploaded while {facts.status.value}"
            )
        if refusal is not None:
            raise self._refusal(refusal, facts, cmd.actor)

    # --- Updates: one per action, each with its validator -----------------------------------

    @workflow.update(name="created")
    async def created(self) -> RequestRef:
        """Answers once the request's row exists (update-with-start waits on it)."""
        await workflow.wait_condition(lambda: self.ref is not None)
        assert self.ref is not None
        return self.ref

    @workflow.update(name=UPLOAD_DOCUMENT)
    async def upload_document(self, cmd: ActionInput) -> ActionResult:
        return await self._upload(cmd)

    @upload_document.validator
    def _v_upload_document(self, cmd: ActionInput) -> None:
        self._validate_upload(cmd, ahead=True)

    @workflow.update(name="submit")
    async def submit(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @submit.validator
    def _v_submit(self, cmd: ActionInput) -> None:
        self._refuse("submit", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="request_info")
    async def request_info(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @request_info.validator
    def _v_request_info(self, cmd: ActionInput) -> None:
        self._refuse("request_info", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="respond")
    async def respond(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @respond.validator
    def _v_respond(self, cmd: ActionInput) -> None:
        self._refuse("respond", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="decline")
    async def decline(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @decline.validator
    def _v_decline(self, cmd: ActionInput) -> None:
        self._refuse("decline", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="accept")
    async def accept(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @accept.validator
    def _v_accept(self, cmd: ActionInput) -> None:
        self._refuse("accept", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="reject_sample")
    async def reject_sample(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @reject_sample.validator
    def _v_reject_sample(self, cmd: ActionInput) -> None:
        self._refuse("reject_sample", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="receive_sample")
    async def receive_sample(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @receive_sample.validator
    def _v_receive_sample(self, cmd: ActionInput) -> None:
        self._refuse("receive_sample", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="withdraw")
    async def withdraw(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @withdraw.validator
    def _v_withdraw(self, cmd: ActionInput) -> None:
        self._refuse("withdraw", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="submit_results")
    async def submit_results(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @submit_results.validator
    def _v_submit_results(self, cmd: ActionInput) -> None:
        self._refuse("submit_results", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="verify_results")
    async def verify_results(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @verify_results.validator
    def _v_verify_results(self, cmd: ActionInput) -> None:
        self._refuse("verify_results", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="retract")
    async def retract(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @retract.validator
    def _v_retract(self, cmd: ActionInput) -> None:
        self._refuse("retract", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="grant")
    async def grant(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @grant.validator
    def _v_grant(self, cmd: ActionInput) -> None:
        self._refuse("grant", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="refuse")
    async def refuse(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @refuse.validator
    def _v_refuse(self, cmd: ActionInput) -> None:
        self._refuse("refuse", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="request_retest")
    async def request_retest(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @request_retest.validator
    def _v_request_retest(self, cmd: ActionInput) -> None:
        self._refuse("request_retest", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="appeal")
    async def appeal(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @appeal.validator
    def _v_appeal(self, cmd: ActionInput) -> None:
        self._refuse("appeal", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="uphold")
    async def uphold(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @uphold.validator
    def _v_uphold(self, cmd: ActionInput) -> None:
        self._refuse("uphold", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name="overturn")
    async def overturn(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @overturn.validator
    def _v_overturn(self, cmd: ActionInput) -> None:
        self._refuse("overturn", cmd.actor, cmd.body, ahead=True)

    @workflow.update(name=UPLOAD_EVIDENCE)
    async def upload_evidence(self, cmd: ActionInput) -> ActionResult:
        return await self._upload(cmd)

    @upload_evidence.validator
    def _v_upload_evidence(self, cmd: ActionInput) -> None:
        self._validate_upload(cmd, ahead=True)

    @workflow.update(name=RECORD_RESULT)
    async def record_result(self, cmd: ActionInput) -> ResultView:
        return await self._record(cmd)

    @record_result.validator
    def _v_record_result(self, cmd: ActionInput) -> None:
        self._validate_record(cmd, ahead=True)

    @workflow.query(name="facts")
    def current_facts(self) -> dict[str, Any]:
        facts = self.facts()
        return {
            "status": facts.status.value,
            "centre_code": facts.centre_code,
            "proposed_centre_code": facts.proposed_centre_code,
            "documents": sorted(facts.documents),
            "round": self.round,
            "stage_seconds": self.stage_seconds,
        }
