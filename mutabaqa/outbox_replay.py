"""Replaying dead outbox rows: one function for ``mutabaqa outbox replay`` and the admin
portal. The rows are first put back to pending (``records.outbox.reset_dead``, a short
transaction of its own); then a fresh ``OutboxDelivery`` workflow is started by name for
each, through the caller's Temporal client (no worker code is imported)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from models.outbox import DeliveryInput, EffectKind
from mutabaqa.settings import Settings
from mutabaqa.timing import delivery_policy


async def start_replays(
    client: Client, settings: Settings, reset: Sequence[tuple[str, EffectKind]]
) -> list[str]:
    """Start a delivery for each row ``reset_dead`` put back to pending; return their ids."""
    policy = delivery_policy(settings)
    for row_id, kind in reset:
        # A fresh id: the run that marked the row dead may not have closed yet.
        await client.start_workflow(
            "OutboxDelivery",
            DeliveryInput(row_id=row_id, kind=kind, policy=policy),
            id=f"outbox-{row_id}-replay-{uuid.uuid4().hex[:12]}",
            task_queue=settings.temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
    return [row_id for row_id, _ in reset]
