"""What a request's workflow does by itself: intake, the information request's reminder and
lapse, stage escalations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.requests import RequestActivities
    from domain.effects import Effect
    from domain.keys import system_key
    from models.notifications import NotificationKind
    from models.request_payloads import (
        IntakeInput,
        RecordChange,
        Transition,
    )

from workflows.request_effects import RequestEffects
from workflows.request_state import DB_TIMEOUT, S
from workflows.retries import SYSTEM_RETRY


class RequestTimers(RequestEffects):
    """Steps no person takes: intake checks and what falls due on a timer."""

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
                change=RecordChange(proposed_centre_code=result.proposed_centre_code),
                detail={
                    "proposed_centre": result.proposed_centre_code,
                    "candidates": result.candidate_centres,
                    "problems": result.problems,
                },
            )
            await self._persist(t)
            self._changed("intake", "system", now)

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
            change=RecordChange(cleared=["info_due_at"], stage_seconds=dict(self.stage_seconds)),
            detail={"reason": "no answer to the information request by its deadline"},
            effects=[self._email(NotificationKind.LAPSED, f"lapse:{self.info_due}")],
        )
        await self._persist(t)
        self._changed("lapse", "system", now)
