"""Carrying out one outbox row: dispatch by kind to the existing senders, at most once.

A delivered row is never delivered again (its status is checked first, and set after); each
failed attempt is counted on the row with its error; the delivery workflow marks the row
``dead`` when its bounded retries are spent.
"""

from __future__ import annotations

import contextlib

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.credentials import CredentialIssuer
from activities.lab import LabActivities
from activities.notifications import NotificationActivities
from activities.webhooks import WebhookActivities
from models.certificate_lifecycle import CertificateWorkflowInput, SurveillanceOutcome
from models.notifications import NotifyInput
from models.outbox import EffectKind, OutboxRow, OutboxStatus
from models.webhook_events import WebhookInput
from models.workflow_names import CERTIFICATE_WORKFLOW
from records import outbox

#: Error type of a row that cannot be delivered (unknown row, closed target): no retry.
UNDELIVERABLE = "outbox-undeliverable"


def _undeliverable(message: str) -> ApplicationError:
    return ApplicationError(message, type=UNDELIVERABLE, non_retryable=True)


class OutboxActivities:
    def __init__(
        self,
        engine: Engine,
        client: Client,
        task_queue: str,
        notifications: NotificationActivities,
        webhooks: WebhookActivities,
        lab: LabActivities,
        credentials: CredentialIssuer,
    ) -> None:
        self._engine = engine
        self._client = client
        self._task_queue = task_queue
        self._notifications = notifications
        self._webhooks = webhooks
        self._lab = lab
        self._credentials = credentials

    def _pending(self, row_id: str) -> OutboxRow | None:
        row = outbox.get(self._engine, row_id)
        if row is None:
            raise _undeliverable(f"outbox row {row_id} does not exist")
        return row if row.status is OutboxStatus.PENDING else None

    # --- synchronous senders (SMTP, HTTP, PDF rendering) ----------------------------------

    @activity.defn(name="outbox_deliver")
    def deliver(self, row_id: str) -> bool:
        """Mail, webhook, PDF, credential or status lists. False: already delivered (or
        dead), nothing done."""
        row = self._pending(row_id)
        if row is None:
            return False
        try:
            if row.kind is EffectKind.EMAIL:
                self._notifications.notify(NotifyInput.model_validate(row.payload))
            elif row.kind is EffectKind.WEBHOOK:
                self._webhooks.deliver(WebhookInput.model_validate(row.payload))
            elif row.kind is EffectKind.CERTIFICATE_PDF:
                # The PDF, then the credential that carries its digest (both once).
                self._lab.ensure_pdf(str(row.payload["certificate_id"]))
                self._credentials.ensure_credential(str(row.payload["certificate_id"]))
            elif row.kind is EffectKind.CERTIFICATE_CREDENTIAL:
                self._credentials.ensure_credential(str(row.payload["certificate_id"]))
            elif row.kind is EffectKind.STATUS_LIST:
                self._credentials.refresh_lists(str(row.payload["certificate_id"]))
            else:
                raise _undeliverable(f"outbox row {row_id}: {row.kind} is not a synchronous kind")
        except Exception as exc:
            outbox.record_attempt(self._engine, row_id, f"{type(exc).__name__}: {exc}")
            raise
        outbox.mark_delivered(self._engine, row_id)
        return True

    # --- Temporal (start the certificate's workflow, signal the surveillance outcome) -----

    @activity.defn(name="outbox_deliver_temporal")
    async def deliver_temporal(self, row_id: str) -> bool:
        row = self._pending(row_id)
        if row is None:
            return False
        try:
            if row.kind is EffectKind.START_CERTIFICATE_WORKFLOW:
                await self._start_certificate(CertificateWorkflowInput.model_validate(row.payload))
            elif row.kind is EffectKind.SURVEILLANCE_OUTCOME:
                await self._signal_outcome(row.payload)
            else:
                raise _undeliverable(f"outbox row {row_id}: {row.kind} is not a Temporal kind")
        except Exception as exc:
            outbox.record_attempt(self._engine, row_id, f"{type(exc).__name__}: {exc}")
            raise
        outbox.mark_delivered(self._engine, row_id)
        return True

    async def _start_certificate(self, params: CertificateWorkflowInput) -> None:
        """Start it once: a running one is reused, a closed one is not started again."""
        with contextlib.suppress(WorkflowAlreadyStartedError):  # it ran already, has closed
            await self._client.start_workflow(
                CERTIFICATE_WORKFLOW,
                params,
                id=f"certificate-{params.number}",
                task_queue=self._task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )

    async def _signal_outcome(self, payload: dict[str, object]) -> None:
        target = str(payload["workflow_id"])
        outcome = SurveillanceOutcome.model_validate(payload["outcome"])
        handle: WorkflowHandle[object, object] = self._client.get_workflow_handle(target)
        try:
            await handle.signal("surveillance_outcome", outcome)
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                # The certificate's workflow has closed: the outcome changes nothing now.
                raise _undeliverable(f"workflow {target} has closed: {exc.message}") from None
            raise

    @activity.defn(name="outbox_mark_dead")
    def mark_dead(self, row_id: str, error: str) -> None:
        """The dead letter: the row keeps its error (a webhook's log says ``failed`` too)."""
        row = outbox.get(self._engine, row_id)
        outbox.mark_dead(self._engine, row_id, error)
        if row is not None and row.kind is EffectKind.WEBHOOK:
            self._webhooks.give_up(WebhookInput.model_validate(row.payload), error)
