"""What a certificate's holder is told of a change (e-mail and webhook), as outbox rows
written with the transition and delivered on their own; never awaited by the lifecycle."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.effects import Effect, EffectKind
    from domain.statuses import CertificateStatus
    from models.certificate_lifecycle import CertificateWorkflowInput
    from models.notifications import NotificationKind, NotifyInput
    from models.webhook_events import WebhookInput


#: Runs started before credentials existed replay without their deliveries.
CREDENTIALS_PATCH = "credentials-v1"


def status_lists_effect(params: CertificateWorkflowInput, key: str) -> Effect:
    """Republish the status lists of this run's issue (its suspension or revocation bit
    follows the status the transition wrote; a reissue revokes this issue)."""
    return Effect(
        kind=EffectKind.STATUS_LIST,
        dedupe_key=f"status-list:{params.certificate_id}:{key}",
        payload={"certificate_id": params.certificate_id},
        subject=params.number,
    )


def holder_notices(
    params: CertificateWorkflowInput,
    status: CertificateStatus,
    key: str,
    reason: str | None,
    event: str | None,
    issue: int,
    now: datetime,
) -> list[Effect]:
    """The mail and the webhook event of one change. ``event``: what happened when it is
    not the new status itself (``reissued``)."""
    event = event or status.value
    event_id = f"certificate-{params.number}:{key}"
    return [
        Effect(
            kind=EffectKind.EMAIL,
            dedupe_key=f"email:{event_id}",
            payload=NotifyInput(
                request_id=params.request_id,
                request_number=params.request_number or params.number,
                kind=NotificationKind.CERTIFICATE_STATUS,
                product_name=params.product_name,
                scheme_code=params.scheme_code,
                centre_code=params.centre_code,
                stage=event,
                certificate_number=params.number,
                reason=reason,
                dedupe_key=event_id,
            ).model_dump(mode="json"),
        ),
        Effect(
            kind=EffectKind.WEBHOOK,
            dedupe_key=f"webhook:{event_id}",
            payload=WebhookInput(
                organization_id=params.organization_id,
                event_id=event_id,
                event_type=f"certificate.{event}",
                data={
                    "number": params.number,
                    "issue": str(issue),
                    "status": status.value,
                    "reason": reason or "",
                    "verify_url": f"/verify/{params.number}",
                },
                occurred_at=now,
            ).model_dump(mode="json"),
        ),
    ]
