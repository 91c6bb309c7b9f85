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
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.notifications import (
        NOTIFY_RETRY_POLICY,
        NOTIFY_START_TO_CLOSE,
        NotificationActivities,
    )
    from activities.requests import NON_RETRYABLE, RequestActivities
    from models.notifications import NotificationKind, NotifyInput
    from models.permissions import Actor
    from models.request_payloads import (
        ActionInput,
        ActionResult,
        CreateRequestInput,
        IntakeInput,
        RecordFileInput,
        RequestRef,
        RequestWorkflowInput,
        Transition,
    )
    from models.requests import FilePurpose, RequestStatus
    from workflows import search_attributes as sa
    from workflows.request_rules import (
        TERMINAL,
        TRANSITIONS,
        UPLOAD_DOCUMENT,
        Refusal,
        RequestFacts,
        acting_role,
        allowed_actions,
        can_upload_document,
        check,
    )

S = RequestStatus
DB_TIMEOUT = timedelta(seconds=30)
FILE_TIMEOUT = timedelta(minutes=30)
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=NON_RETRYABLE,
)

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
}


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


@workflow.defn(name="CertificationRequest")
class RequestWorkflow:
    @workflow.init
    def __init__(self, params: RequestWorkflowInput) -> None:
        self.params = params
        self.ref: RequestRef | None = None
        self.status = S.DRAFT
        self.centre_code: str | None = None
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
        self.notifications: list[asyncio.Future[Any]] = []

    # --- facts and helpers -----------------------------------------------------------------

    def facts(self) -> RequestFacts:
        return RequestFacts(
            status=self.status,
            organization_id=self.params.organization_id,
            centre_code=self.centre_code,
            proposed_centre_code=self.proposed_centre_code,
            required_documents=self.params.scheme.required_documents,
            documents=frozenset(self.documents),
        )

    def _refuse(self, action: str, actor: Actor, body: dict[str, Any]) -> None:
        if self.ref is None:
            raise ApplicationError("the request is still being created", type="not-ready")
        try:
            check(action, self.facts(), actor, body)
        except Refusal as refusal:
            raise refusal_error(
                refusal, self.status, allowed_actions(self.facts(), actor)
            ) from None

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

    async def _transition(self, t: Transition) -> RequestRef:
        return await workflow.execute_activity_method(
            RequestActivities.apply_transition,
            t,
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )

    def _notify(self, kind: NotificationKind, key: str, **details: Any) -> None:
        """Send an e-mail in the background: an action never waits on the mail server."""
        assert self.ref is not None
        handle = workflow.start_activity_method(
            NotificationActivities.notify,
            NotifyInput(
                request_id=self.params.request_id,
                request_number=self.ref.number,
                kind=kind,
                product_name=self.params.product_name,
                scheme_code=self.params.scheme.code,
                centre_code=self.centre_code,
                dedupe_key=f"{workflow.info().workflow_id}:{key}",
                **details,
            ),
            start_to_close_timeout=NOTIFY_START_TO_CLOSE,
            retry_policy=NOTIFY_RETRY_POLICY,
        )
        self.notifications.append(handle)

    # --- the run ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, params: RequestWorkflowInput) -> RequestRef:
        self.ref = await workflow.execute_activity_method(
            RequestActivities.create_request,
            CreateRequestInput(workflow_id=workflow.info().workflow_id, params=params),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        self.stage_started = workflow.now()
        self._search_attributes()
        while self.status not in TERMINAL:
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
        # Mails still being delivered are finished before the request's workflow ends.
        await asyncio.gather(*self.notifications, return_exceptions=True)
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
                retry_policy=DB_RETRY,
            )
            now = workflow.now()
            await self._transition(
                Transition(
                    request_id=self.params.request_id,
                    key=f"intake:{self.round}",
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
            )
            self.proposed_centre_code = result.proposed_centre_code
            self._enter(S.APPLICATION_REVIEW, now)

    # --- timers ----------------------------------------------------------------------------

    def _due_instants(self) -> list[datetime]:
        instants = []
        if self.status is S.INFO_REQUESTED and self.info_due is not None:
            instants.append(self.info_due)
            if not self.reminder_sent and self.info_reminder_at is not None:
                instants.append(self.info_reminder_at)
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
                        f"reminder:{self.info_due.isoformat()}",
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
                        f"escalation:{key}",
                        now,
                        {
                            "stage": self.status.value,
                            "round": self.round,
                            "target_seconds": target,
                            "elapsed_seconds": round(elapsed, 3),
                        },
                    )
                    self.escalated.add(key)
                    self._notify(
                        NotificationKind.ESCALATION, f"escalation:{key}", stage=self.status.value
                    )

    async def _system_event(
        self, action: str, key: str, now: datetime, detail: dict[str, Any]
    ) -> None:
        await workflow.execute_activity_method(
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
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
        )

    async def _lapse(self, now: datetime) -> None:
        self._leave_stage(now)
        await self._transition(
            Transition(
                request_id=self.params.request_id,
                key=f"lapse:{self.info_due}",
                action="lapse",
                actor=None,
                acting_role="system",
                from_status=self.status,
                to_status=S.LAPSED,
                at=now,
                clear_info_due=True,
                stage_seconds=self.stage_seconds,
                detail={"reason": "no answer to the information request by its deadline"},
            )
        )
        self._enter(S.LAPSED, now)
        self._notify(NotificationKind.LAPSED, f"lapse:{self.info_due}")

    # --- actions ---------------------------------------------------------------------------

    async def _act(self, cmd: ActionInput) -> ActionResult:
        async with self.lock:
            self._refuse(cmd.action, cmd.actor, cmd.body)  # state may have moved meanwhile
            now = workflow.now()
            before = self.status
            _, target = TRANSITIONS[cmd.action]
            assert target is not None
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
            if cmd.action == "accept":
                t.centre_code = cmd.body.get("centre_code") or self.proposed_centre_code
                t.scope = cmd.body.get("scope")
                t.detail["centre_code"] = t.centre_code
            elif cmd.action == "request_info":
                due = now + timedelta(seconds=self.params.timing.info_response)
                t.info_due_at = due
                t.detail["due_at"] = due.isoformat()
            elif cmd.action in ("respond", "withdraw"):
                t.clear_info_due = True
            if target is not before:
                self._leave_stage(now)
                t.stage_seconds = dict(self.stage_seconds)
            await self._transition(t)
            # The record is written: now the workflow's own state follows.
            if cmd.action == "accept":
                self.centre_code = t.centre_code
            elif cmd.action == "request_info":
                self.info_due = t.info_due_at
                fraction = self.params.timing.info_reminder_fraction
                self.info_reminder_at = now + timedelta(
                    seconds=self.params.timing.info_response * fraction
                )
                self.reminder_sent = False
            elif cmd.action in ("respond", "withdraw"):
                self.info_due = None
            if target is not before:
                self._enter(target, now)
            else:
                self.changed = True
            self._notify_action(cmd)
            return ActionResult(
                request_id=self.params.request_id, status=self.status, round=self.round
            )

    def _notify_action(self, cmd: ActionInput) -> None:
        kind = ACTION_NOTICES.get(cmd.action)
        if kind is None:
            return
        self._notify(
            kind,
            cmd.key,
            reason=cmd.body.get("reason"),
            message=cmd.body.get("message"),
            due_at=self.info_due if cmd.action == "request_info" else None,
        )

    async def _upload(self, cmd: ActionInput) -> ActionResult:
        async with self.lock:
            self._validate_upload(cmd)
            assert cmd.file is not None
            await workflow.execute_activity_method(
                RequestActivities.record_file,
                RecordFileInput(
                    request_id=self.params.request_id,
                    key=cmd.key,
                    actor=cmd.actor,
                    acting_role="manufacturer",
                    status=self.status,
                    purpose=FilePurpose.DOCUMENT.value,
                    file=cmd.file,
                    at=workflow.now(),
                ),
                start_to_close_timeout=FILE_TIMEOUT,
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=DB_RETRY,
            )
            if cmd.file.kind:
                self.documents.add(cmd.file.kind)
            self.changed = True
            return ActionResult(
                request_id=self.params.request_id, status=self.status, round=self.round
            )

    def _validate_upload(self, cmd: ActionInput) -> None:
        if self.ref is None:
            raise ApplicationError("the request is still being created", type="not-ready")
        facts = self.facts()
        if cmd.file is None or not cmd.file.kind:
            raise refusal_error(
                Refusal(422, "invalid-body", "a document needs its kind and file"),
                self.status,
                allowed_actions(facts, cmd.actor),
            )
        if not can_upload_document(facts, cmd.actor):
            raise refusal_error(
                Refusal(
                    409,
                    "invalid-transition",
                    f"documents cannot be uploaded while {self.status.value}",
                ),
                self.status,
                allowed_actions(facts, cmd.actor),
            )

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
        self._validate_upload(cmd)

    @workflow.update(name="submit")
    async def submit(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @submit.validator
    def _v_submit(self, cmd: ActionInput) -> None:
        self._refuse("submit", cmd.actor, cmd.body)

    @workflow.update(name="request_info")
    async def request_info(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @request_info.validator
    def _v_request_info(self, cmd: ActionInput) -> None:
        self._refuse("request_info", cmd.actor, cmd.body)

    @workflow.update(name="respond")
    async def respond(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @respond.validator
    def _v_respond(self, cmd: ActionInput) -> None:
        self._refuse("respond", cmd.actor, cmd.body)

    @workflow.update(name="decline")
    async def decline(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @decline.validator
    def _v_decline(self, cmd: ActionInput) -> None:
        self._refuse("decline", cmd.actor, cmd.body)

    @workflow.update(name="accept")
    async def accept(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @accept.validator
    def _v_accept(self, cmd: ActionInput) -> None:
        self._refuse("accept", cmd.actor, cmd.body)

    @workflow.update(name="reject_sample")
    async def reject_sample(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @reject_sample.validator
    def _v_reject_sample(self, cmd: ActionInput) -> None:
        self._refuse("reject_sample", cmd.actor, cmd.body)

    @workflow.update(name="receive_sample")
    async def receive_sample(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @receive_sample.validator
    def _v_receive_sample(self, cmd: ActionInput) -> None:
        self._refuse("receive_sample", cmd.actor, cmd.body)

    @workflow.update(name="withdraw")
    async def withdraw(self, cmd: ActionInput) -> ActionResult:
        return await self._act(cmd)

    @withdraw.validator
    def _v_withdraw(self, cmd: ActionInput) -> None:
        self._refuse("withdraw", cmd.actor, cmd.body)

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
