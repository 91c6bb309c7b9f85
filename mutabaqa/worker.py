"""The worker: registers every workflow and activity on the configured task queue."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from minio import Minio
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.certificates import CertificateActivities
from activities.lab import LabActivities
from activities.notifications import NotificationActivities
from activities.requests import RequestActivities
from activities.system import SystemActivities
from activities.webhooks import WebhookActivities
from mutabaqa.settings import Settings
from mutabaqa.trust import ensure_signing_material
from workflows.canary import CanaryWorkflow
from workflows.certificate import CertificateWorkflow
from workflows.request import RequestWorkflow

WORKFLOWS: list[type] = [CanaryWorkflow, RequestWorkflow, CertificateWorkflow]

#: Activities are synchronous (database, S3 client); they run on this many threads.
ACTIVITY_THREADS = 16


def build_worker(
    client: Client,
    settings: Settings,
    engine: Engine,
    store: Minio,
    *,
    executor: ThreadPoolExecutor,
    task_queue: str | None = None,
) -> Worker:
    system = SystemActivities(engine, store, settings.s3_evidence_bucket)
    requests = RequestActivities(engine, store, settings)
    notifications = NotificationActivities(engine, settings)
    webhooks = WebhookActivities(engine, settings)
    lab = LabActivities(engine, settings, store, ensure_signing_material(settings))
    certificates = CertificateActivities(engine, lab)
    return Worker(
        client,
        task_queue=task_queue or settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=[
            system.check_stack,
            requests.create_request,
            requests.intake_checks,
            requests.apply_transition,
            requests.record_file,
            requests.record_event,
            notifications.notify,
            webhooks.deliver,
            lab.record_result,
            lab.issue_certificate,
            certificates.apply_transition,
            certificates.reissue,
            certificates.surveillance_request,
        ],
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_THREADS,
    )


async def run_worker(
    client: Client, settings: Settings, engine: Engine, store: Minio, stop: asyncio.Event
) -> None:
    """Run until ``stop`` is set, then let in-flight tasks finish (graceful shutdown)."""
    with ThreadPoolExecutor(ACTIVITY_THREADS, thread_name_prefix="activity") as executor:
        worker = build_worker(client, settings, engine, store, executor=executor)
        async with worker:
            await stop.wait()
