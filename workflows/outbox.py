"""One workflow per outbox row: carry it out with a bounded retry policy; when every attempt
failed, mark the row ``dead`` (the dead letter ``mutabaqa outbox list`` shows and
``mutabaqa outbox replay`` retries). Lifecycles start it and never wait for it."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.outbox import OutboxActivities
    from domain.effects import DeliveryInput, DeliveryPolicy, Effect, EffectKind
    from models.workflow_names import OUTBOX_WORKFLOW

from workflows.retries import MARK_RETRY, delivery_retry

#: One attempt of a mail, webhook or Temporal call.
SEND_TIMEOUT = timedelta(seconds=60)
#: One attempt of a PDF (rendering and signing are seconds of CPU; waiting for the
#: worker's renderer may take longer), with heartbeats.
PDF_TIMEOUT = timedelta(minutes=10)
PDF_HEARTBEAT = timedelta(seconds=30)
MARK_TIMEOUT = timedelta(seconds=30)
TEMPORAL_KINDS = {EffectKind.START_CERTIFICATE_WORKFLOW, EffectKind.SURVEILLANCE_OUTCOME}


def outbox_workflow_id(row_id: str) -> str:
    return f"outbox-{row_id}"


async def start_deliveries(ids: list[str], effects: list[Effect], policy: DeliveryPolicy) -> None:
    """From a lifecycle workflow: start one delivery per row written (``ids`` in the order
    of ``effects``); wait for the starts only, never for the deliveries."""
    for row_id, effect in zip(ids, effects, strict=True):
        await workflow.start_child_workflow(
            OUTBOX_WORKFLOW,
            DeliveryInput(row_id=row_id, kind=effect.kind, policy=policy),
            id=outbox_workflow_id(row_id),
            parent_close_policy=ParentClosePolicy.ABANDON,
        )


@workflow.defn(name=OUTBOX_WORKFLOW)
class OutboxDeliveryWorkflow:
    @workflow.run
    async def run(self, data: DeliveryInput) -> str:
        retry = delivery_retry(data.policy, data.kind)
        try:
            if data.kind in TEMPORAL_KINDS:
                await workflow.execute_activity_method(
                    OutboxActivities.deliver_temporal,
                    data.row_id,
                    start_to_close_timeout=SEND_TIMEOUT,
                    retry_policy=retry,
                )
            else:
                pdf = data.kind is EffectKind.CERTIFICATE_PDF
                await workflow.execute_activity_method(
                    OutboxActivities.deliver,
                    data.row_id,
                    start_to_close_timeout=PDF_TIMEOUT if pdf else SEND_TIMEOUT,
                    heartbeat_timeout=PDF_HEARTBEAT if pdf else None,
                    retry_policy=retry,
                )
        except ActivityError as exc:
            cause = exc.cause
            error = str(cause) if cause is not None else str(exc)
            if isinstance(cause, ApplicationError) and cause.type:
                error = f"{cause.type}: {error}"
            await workflow.execute_activity_method(
                OutboxActivities.mark_dead,
                args=[data.row_id, error],
                start_to_close_timeout=MARK_TIMEOUT,
                retry_policy=MARK_RETRY,
            )
            return "dead"
        return "delivered"
