"""Which side effects a request's transitions have (mails, the certificate's PDF and
workflow, a surveillance outcome): outbox rows, written with the transition."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.effects import Effect, EffectKind
    from domain.statuses import RequestStatus
    from models.certificate_lifecycle import SurveillanceOutcome
    from models.notifications import NotificationKind, NotifyInput
    from models.request_payloads import (
        ActionInput,
        Transition,
    )

from workflows.request_state import ACTION_NOTICES, RequestState, S


class RequestEffects(RequestState):
    """The outbox rows each transition emits."""

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
        centre = t.change.centre_code or self.centre_code or ""
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

    def _action_email(
        self, cmd: ActionInput, t: Transition, target: RequestStatus
    ) -> Effect | None:
        centre = t.change.centre_code or self.centre_code
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
        change = t.change
        due = {"request_info": change.info_due_at, "refuse": change.appeal_until}.get(cmd.action)
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
