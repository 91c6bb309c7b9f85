"""One long-running workflow per certificate (SPEC section 5, lifecycle).

It starts at issuance and ends when the certificate is withdrawn, expired, superseded (a
reissue continues as new with the new issue) or terminated. Officers and the holder act
through Updates; expiry and the end of a suspension's maximum period are durable timers.
The workflow continues as new when its history grows past a threshold (or Temporal suggests
it), carrying its whole state; a reissue continues as new with the new issue, carrying the
same. From the moment either switch starts, nothing writes to the current issue: actions are
refused with a retryable 503 (the client repeats them and they land on the new run), timers
wait, and surveillance outcomes are handed to the new run.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.certificates import CertificateActivities
    from domain.certificate_lifecycle import ACTIONS, FINAL, check
    from domain.certificate_rules import add_months
    from domain.effects import Effect, EffectKind
    from domain.keys import system_key
    from domain.request_rules import Refusal
    from domain.statuses import CertificateStatus
    from models import search_attributes as attrs
    from models.certificate_lifecycle import (
        CertificateCommand,
        CertificateResult,
        CertificateState,
        CertificateTransition,
        CertificateWorkflowInput,
        ReissueInput,
        SurveillanceOutcome,
        SurveillanceRequestInput,
    )
    from models.request_payloads import CertificateRef
    from models.workflow_names import CERTIFICATE_WORKFLOW, REQUEST_WORKFLOW
    from workflows.outbox import start_deliveries

from workflows.certificate_effects import CREDENTIALS_PATCH, holder_notices, status_lists_effect
from workflows.retries import DB_RETRY, SYSTEM_RETRY

C = CertificateStatus
DB_TIMEOUT = timedelta(seconds=30)
RETRY = DB_RETRY


def certificate_workflow_id(number: str) -> str:
    return f"certificate-{number}"


@workflow.defn(name=CERTIFICATE_WORKFLOW)
class CertificateWorkflow:
    @workflow.init
    def __init__(self, params: CertificateWorkflowInput) -> None:
        self.params = params
        self.state = params.state.model_copy()
        if self.state.status_since is None:
            self.state.status_since = params.issued_at
        self.lock = asyncio.Lock()
        self.changed = False
        #: The new issue once a reissue went through: this run then continues as new with it.
        self.next_issue: CertificateRef | None = None
        #: Set from the moment a switch (reissue, or continue-as-new) starts: new actions are
        #: told to retry, timers and surveillance outcomes wait for the next run.
        self.continuing = False
        if self.state.next_surveillance_at is None:
            self.state.next_surveillance_at = self._surveillance_after(0)

    # --- validation ------------------------------------------------------------------------

    def _refuse(self, cmd: CertificateCommand) -> None:
        if self.continuing:
            raise ApplicationError(
                "the certificate's workflow is continuing as new; retry in a moment",
                {
                    "status": 503,
                    "kind": "workflow-unavailable",
                    "certificate_status": self.state.status.value,
                },
                type="workflow-unavailable",
                non_retryable=True,
            )
        if cmd.actor is None:
            raise ApplicationError("actions need an actor", type="invalid-body")
        try:
            check(
                cmd.action,
                self.state.status,
                self.params.organization_id,
                self.params.centre_code,
                cmd.actor,
            )
        except Refusal as refusal:
            raise ApplicationError(
                refusal.detail,
                {
                    "status": refusal.status,
                    "kind": refusal.kind,
                    "certificate_status": self.state.status.value,
                },
                type=refusal.kind,
                non_retryable=True,
            ) from None

    # --- transitions -----------------------------------------------------------------------

    async def _move(
        self,
        action: str,
        to: CertificateStatus,
        cmd: CertificateCommand | None,
        key: str,
        detail: dict[str, Any],
    ) -> None:
        now = workflow.now()
        role = (
            "system"
            if cmd is None or cmd.actor is None
            else ("manufacturer" if action == "terminate" else "compliance_officer")
        )
        effects = self._effects(to, key, detail.get("reason"))
        result = await workflow.execute_activity_method(
            CertificateActivities.apply_transition,
            CertificateTransition(
                certificate_id=self.params.certificate_id,
                number=self.params.number,
                key=key,
                action=action,
                actor=cmd.actor if cmd else None,
                acting_role=role,
                from_status=self.state.status,
                to_status=to,
                at=now,
                detail=detail,
                effects=effects,
                body_hash=cmd.body_hash if cmd else "",
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=RETRY if cmd is not None else SYSTEM_RETRY,
        )
        await start_deliveries(result.outbox_ids, effects, self.params.timing.delivery)
        self.state.status = to
        self.state.status_since = now
        self.state.suspended_at = now if to is C.SUSPENDED else None
        self.state.suspension_reason = detail.get("reason") if to is C.SUSPENDED else None
        self.state.actions_seen += 1
        self.changed = True

    def _effects(
        self,
        status: CertificateStatus,
        key: str,
        reason: str | None,
        event: str | None = None,
        issue: int | None = None,
    ) -> list[Effect]:
        """Tell the holder (e-mail, webhook): outbox rows written with the transition."""
        issue = self.params.issue if issue is None else issue
        effects = holder_notices(self.params, status, key, reason, event, issue, workflow.now())
        if workflow.patched(CREDENTIALS_PATCH):  # one more delivery than older runs started
            effects.append(status_lists_effect(self.params, key))
        return effects

    async def _act(self, cmd: CertificateCommand) -> CertificateResult:
        async with self.lock:
            self._refuse(cmd)
            _, target, _ = ACTIONS[cmd.action]
            detail: dict[str, Any] = {"reason": cmd.reason}
            if cmd.action == "reissue":
                return await self._reissue(cmd)
            await self._move(cmd.action, target, cmd, cmd.key, detail)
            return self.result()

    async def _reissue(self, cmd: CertificateCommand) -> CertificateResult:
        """The new issue, then continue as new with it (under the lock). The switch starts
        here: from now on nothing writes to this issue, whose row becomes ``superseded``."""
        if cmd.actor is None:
            raise ApplicationError("a reissue needs an actor", type="invalid-body")
        self.continuing = True
        # The holder's notice is written with the new issue (its number: the current + 1).
        issue = self.params.issue + 1
        effects = [
            *self._effects(C.ACTIVE, cmd.key, cmd.reason, event="reissued", issue=issue),
            # the new issue's PDF, then its credential (the activity completes it with the
            # new issue's id)
            Effect(
                kind=EffectKind.CERTIFICATE_PDF,
                dedupe_key=f"certificate-pdf:{self.params.number}:{issue}",
            ),
        ]
        try:
            ref = await workflow.execute_activity_method(
                CertificateActivities.reissue,
                ReissueInput(
                    certificate_id=self.params.certificate_id,
                    key=cmd.key,
                    actor=cmd.actor,
                    reason=cmd.reason,
                    scope=cmd.scope,
                    at=workflow.now(),
                    effects=effects,
                    body_hash=cmd.body_hash,
                ),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=RETRY,
            )
        except BaseException:
            self.continuing = False  # no new issue: this one goes on
            raise
        now = workflow.now()
        self.next_issue = ref
        self.state.status = C.ACTIVE
        self.state.status_since = now
        self.state.actions_seen += 1
        self.changed = True
        await start_deliveries(ref.outbox_ids, effects, self.params.timing.delivery)
        return CertificateResult(
            number=ref.number, issue=ref.issue, status=C.ACTIVE, status_since=now
        )

    def result(self) -> CertificateResult:
        return CertificateResult(
            number=self.params.number,
            issue=self.params.issue,
            status=self.state.status,
            status_since=self.state.status_since,
        )

    # --- timers ----------------------------------------------------------------------------

    def _surveillance_after(self, done: int) -> datetime:
        """When surveillance number ``done + 1`` falls due (interval from configuration, or
        the scheme's months counted from the issue date)."""
        interval = self.params.timing.surveillance_interval
        if interval is not None:
            return self.params.issued_at + timedelta(seconds=interval * (done + 1))
        day = add_months(self.params.issued_at.date(), self.params.surveillance_months * (done + 1))
        return datetime.combine(day, self.params.issued_at.timetz())

    def _deadlines(self) -> list[datetime]:
        deadlines = [self.params.expires_at]
        if self.state.surveillance_request is not None and self.state.surveillance_due:
            deadlines.append(self.state.surveillance_due)
        elif self.state.status is C.ACTIVE and self.state.next_surveillance_at is not None:
            deadlines.append(self.state.next_surveillance_at)
        if self.state.status is C.SUSPENDED and self.state.suspended_at is not None:
            deadlines.append(
                self.state.suspended_at + timedelta(seconds=self.params.timing.suspension_max)
            )
        return deadlines

    async def _timers_due(self) -> None:
        async with self.lock:
            now = workflow.now()
            if self.state.status in FINAL or self.continuing:
                return  # switching: the next run's timers take over (same deadlines)
            if now >= self.params.expires_at:
                await self._move(
                    "expire",
                    C.EXPIRED,
                    None,
                    system_key("expire", self.params.issue),
                    {"valid_until": self.params.expires_at.isoformat()},
                )
                return
            open_request = self.state.surveillance_request
            due = self.state.surveillance_due
            if open_request is not None and due is not None and now >= due:
                self.state.surveillance_request = None  # missed: a late outcome is ignored
                if self.state.status is C.ACTIVE:
                    await self._move(
                        "suspend",
                        C.SUSPENDED,
                        None,
                        system_key("surveillance-missed", open_request),
                        {
                            "reason": "surveillance not completed by its deadline",
                            "surveillance_request": open_request,
                        },
                    )
                return
            next_at = self.state.next_surveillance_at
            if (
                open_request is None
                and self.state.status is C.ACTIVE
                and next_at is not None
                and now >= next_at
            ):
                await self._open_surveillance(now)
                return
            if self.state.status is C.SUSPENDED and self.state.suspended_at is not None:
                limit = self.state.suspended_at + timedelta(
                    seconds=self.params.timing.suspension_max
                )
                if now >= limit:
                    await self._move(
                        "withdraw",
                        C.WITHDRAWN,
                        None,
                        system_key(
                            "withdraw-after-suspension", self.state.suspended_at.isoformat()
                        ),
                        {"reason": "suspended past its maximum period"},
                    )

    async def _open_surveillance(self, now: datetime) -> None:
        sequence = self.state.surveillance_count + 1
        workflow_id = f"surveillance-{self.params.number}-{sequence}"
        request = await workflow.execute_activity_method(
            CertificateActivities.surveillance_request,
            SurveillanceRequestInput(
                certificate_id=self.params.certificate_id,
                sequence=sequence,
                request_id=str(workflow.uuid4()).replace("-", ""),
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=SYSTEM_RETRY,
        )
        await workflow.start_child_workflow(
            REQUEST_WORKFLOW,
            request,
            id=workflow_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(attrs.STATUS, request.initial_status.value),
                    SearchAttributePair(attrs.MANUFACTURER, request.organization_id),
                    SearchAttributePair(attrs.SCHEME, request.scheme.code),
                    SearchAttributePair(attrs.KIND, request.kind.value),
                ]
            ),
        )
        self.state.surveillance_count = sequence
        self.state.surveillance_request = workflow_id
        self.state.surveillance_due = now + timedelta(
            seconds=self.params.timing.surveillance_deadline
        )
        self.state.next_surveillance_at = self._surveillance_after(sequence)
        self.changed = True

    @workflow.signal(name="surveillance_outcome")
    async def surveillance_outcome(self, outcome: SurveillanceOutcome) -> None:
        """A surveillance request ended: a failure suspends the certificate. During a switch
        the outcome is handed to the next run, which applies it first."""
        async with self.lock:
            if self.continuing:
                self.state.pending_outcomes.append(outcome)
                return
            await self._apply_outcome(outcome)

    async def _apply_outcome(self, outcome: SurveillanceOutcome) -> None:
        """Under the lock."""
        if outcome.request_workflow_id != self.state.surveillance_request:
            return  # not the open one (already missed, or a stray signal)
        self.state.surveillance_request = None
        self.state.surveillance_due = None
        if not outcome.passed and self.state.status is C.ACTIVE:
            await self._move(
                "suspend",
                C.SUSPENDED,
                None,
                system_key("surveillance-failed", outcome.request_workflow_id),
                {
                    "reason": "surveillance failed",
                    "surveillance_request": outcome.request_workflow_id,
                },
            )
        self.changed = True

    async def _quiesce(self) -> None:
        """Let Updates in flight complete (side effects are the outbox's: nothing here
        waits for mail or webhooks)."""
        await workflow.wait_condition(workflow.all_handlers_finished)

    # --- the run ---------------------------------------------------------------------------

    def _long_history(self) -> bool:
        info = workflow.info()
        return (
            info.get_current_history_length() > self.params.timing.history_threshold
            or info.is_continue_as_new_suggested()
        )

    def _next_run(self) -> CertificateWorkflowInput:
        """The next run's input: this run's whole state, on the new issue after a reissue."""
        update: dict[str, Any] = {
            "state": self.state.model_copy(update={"runs": self.state.runs + 1}, deep=True)
        }
        if self.next_issue is not None:
            update |= {"certificate_id": self.next_issue.certificate_id}
            update |= {"issue": self.next_issue.issue}
        return self.params.model_copy(update=update)

    async def _apply_pending_outcomes(self) -> None:
        async with self.lock:
            pending, self.state.pending_outcomes = self.state.pending_outcomes, []
            for outcome in pending:
                await self._apply_outcome(outcome)

    @workflow.run
    async def run(self, params: CertificateWorkflowInput) -> CertificateResult:
        if self.state.pending_outcomes:
            await self._apply_pending_outcomes()
        while self.state.status not in FINAL and self.next_issue is None:
            if self._long_history():
                self.continuing = True
                await self._quiesce()
                workflow.continue_as_new(self._next_run())
            timeout = max(min(self._deadlines()) - workflow.now(), timedelta(milliseconds=1))
            self.changed = False
            try:
                await workflow.wait_condition(lambda: self.changed, timeout=timeout)
            except TimeoutError:
                await self._timers_due()
        await self._quiesce()
        if self.next_issue is not None:  # a reissue: the new issue has a fresh history
            workflow.continue_as_new(self._next_run())
        return self.result()

    # --- Updates and queries ---------------------------------------------------------------

    @workflow.update(name="suspend")
    async def suspend(self, cmd: CertificateCommand) -> CertificateResult:
        return await self._act(cmd)

    @suspend.validator
    def _v_suspend(self, cmd: CertificateCommand) -> None:
        self._refuse(cmd)

    @workflow.update(name="restore")
    async def restore(self, cmd: CertificateCommand) -> CertificateResult:
        return await self._act(cmd)

    @restore.validator
    def _v_restore(self, cmd: CertificateCommand) -> None:
        self._refuse(cmd)

    @workflow.update(name="withdraw")
    async def withdraw(self, cmd: CertificateCommand) -> CertificateResult:
        return await self._act(cmd)

    @withdraw.validator
    def _v_withdraw(self, cmd: CertificateCommand) -> None:
        self._refuse(cmd)

    @workflow.update(name="reissue")
    async def reissue(self, cmd: CertificateCommand) -> CertificateResult:
        return await self._act(cmd)

    @reissue.validator
    def _v_reissue(self, cmd: CertificateCommand) -> None:
        self._refuse(cmd)

    @workflow.update(name="terminate")
    async def terminate(self, cmd: CertificateCommand) -> CertificateResult:
        return await self._act(cmd)

    @terminate.validator
    def _v_terminate(self, cmd: CertificateCommand) -> None:
        self._refuse(cmd)

    @workflow.query(name="state")
    def current_state(self) -> CertificateState:
        return self.state
