"""One workflow per certification request: it owns the request's state (SPEC section 4).

Human actions arrive as Updates. Each validator asks ``request_rules.check`` (pure) and
refuses without leaving a trace in history; each handler takes the one lock, checks again,
has an activity write the record, then changes its own state. Deadlines and stage targets
are durable timers in the main loop.

The class is built in layers, one module each: ``request_state`` (what the workflow knows,
how a transition is planned and followed), ``request_effects`` (the outbox rows each
transition emits), ``request_timers`` (intake and what falls due on a timer), and here the
run loop, the actions and the Updates.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.lab import LabActivities
    from activities.requests import RequestActivities
    from domain.request_changes import audit_detail, plan, reduce, with_document, with_result
    from domain.request_rules import (
        RECORD_RESULT,
        UPLOAD_DOCUMENT,
        UPLOAD_EVIDENCE,
        Refusal,
        acting_role,
        can_test,
        can_upload_document,
        check_result,
        evidence_conflict,
    )
    from domain.statuses import FilePurpose
    from models.request_payloads import (
        ActionInput,
        ActionResult,
        CreateRequestInput,
        RecordFileInput,
        RecordResultInput,
        RequestRef,
        RequestWorkflowInput,
        ResultView,
        Transition,
    )
    from models.workflow_names import REQUEST_WORKFLOW

from workflows.request_state import DB_TIMEOUT, FILE_TIMEOUT, S, not_ready
from workflows.request_timers import RequestTimers
from workflows.retries import DB_RETRY, SYSTEM_RETRY


@workflow.defn(name=REQUEST_WORKFLOW)
class RequestWorkflow(RequestTimers):
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

    # --- actions ---------------------------------------------------------------------------

    async def _act(self, cmd: ActionInput) -> ActionResult:
        """Validate, persist, reduce: the pure core plans the change, one activity writes
        it (row, audit event, related rows, outbox rows) in one transaction, then the
        workflow applies the same reducer to its own state."""
        async with self.lock:
            self._refuse(cmd.action, cmd.actor, cmd.body)  # state may have moved meanwhile
            now = workflow.now()
            before = self.facts()
            timing = self.params.timing
            target, change = plan(
                before,
                cmd.action,
                cmd.body,
                cmd.actor,
                now,
                info_response=timing.info_response,
                appeal_window=timing.appeal_window,
            )
            role = acting_role(cmd.action, cmd.actor)
            t = Transition(
                request_id=self.params.request_id,
                key=cmd.key,
                action=cmd.action,
                actor=cmd.actor,
                acting_role=role.value if role else "unknown",
                body=cmd.body,
                body_hash=cmd.body_hash,
                from_status=before.status,
                to_status=target,
                at=now,
                change=change,
                detail={k: v for k, v in cmd.body.items() if v is not None} | audit_detail(change),
            )
            t.effects = self._effects(cmd, t, target, now)
            stage = (self.stage_started, dict(self.stage_seconds))
            if target is not before.status:
                self._leave_stage(now)
                change.stage_seconds = dict(self.stage_seconds)
            after = reduce(before, t)
            self.pending = after
            try:
                ref = await self._transition(t)
            except ActivityError:
                # Nothing was recorded: the stage goes on, and so do its timers.
                self.stage_started, self.stage_seconds = stage
                raise
            finally:
                self.pending = None
            # The record is written: the workflow's own state follows, by the same reducer.
            if ref.certificate is not None:
                self.certificate = ref.certificate
            self._adopt(after, now)
            self._changed(cmd.action, t.acting_role, now)
            return ActionResult(
                request_id=self.params.request_id,
                status=self.status,
                round=self.round,
                certificate_number=self.certificate.number if self.certificate else None,
            )

    async def _record(self, cmd: ActionInput) -> ResultView:
        async with self.lock:
            item = str(cmd.body.get("item_code"))
            self._validate_record(cmd)
            self.pending = with_result(self.facts(), item, cmd.actor.user_id)
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
        self._adopt(
            with_result(self.facts(), item, cmd.actor.user_id, result.verdict), workflow.now()
        )
        return result

    def _validate_record(self, cmd: ActionInput, ahead: bool = False) -> None:
        if self.ref is None:
            raise not_ready()
        facts = self.judged_facts(ahead)
        try:
            check_result(str(cmd.body.get("item_code")), facts, cmd.actor)
        except Refusal as refusal:
            raise self._refusal(refusal, facts, cmd.actor) from None

    async def _upload(self, cmd: ActionInput) -> ActionResult:
        async with self.lock:
            self._validate_upload(cmd)
            assert cmd.file is not None
            evidence = cmd.action == UPLOAD_EVIDENCE
            if not evidence and cmd.file.kind:
                self.pending = with_document(self.facts(), cmd.file.kind)
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
            self._adopt(with_document(self.facts(), cmd.file.kind), workflow.now())
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
        elif evidence and (conflict := evidence_conflict(facts, cmd.actor)):
            refusal = conflict
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
