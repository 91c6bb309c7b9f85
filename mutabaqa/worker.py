"""The worker: registers every workflow and activity on the configured task queue."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from minio import Minio
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.certificates import CertificateActivities
from activities.credentials import CredentialIssuer
from activities.lab import LabActivities
from activities.notifications import NotificationActivities
from activities.outbox import OutboxActivities
from activities.requests import RequestActivities
from activities.system import SystemActivities
from activities.webhooks import WebhookActivities
from mutabaqa.anchoring import checkpoint_periodically, install_audit_keys
from mutabaqa.db import create_db_engine
from mutabaqa.request_ids import RequestIdWorkerInterceptor
from mutabaqa.seals import SealCheckingInterceptor, seal_key
from mutabaqa.settings import Settings
from mutabaqa.sweeper import sweep_periodically
from mutabaqa.trust import ensure_signing_material
from workflows.canary import CanaryWorkflow
from workflows.certificate import CertificateWorkflow
from workflows.outbox import OutboxDeliveryWorkflow
from workflows.request import RequestWorkflow

WORKFLOWS: list[type] = [
    CanaryWorkflow,
    RequestWorkflow,
    CertificateWorkflow,
    OutboxDeliveryWorkflow,
]

log = logging.getLogger(__name__)

#: Activities are synchronous (database, S3 client); they run on this many threads.
ACTIVITY_THREADS = 16
#: Database connections beyond one per activity thread (bootstrap, checks, bursts).
DB_POOL_OVERFLOW = 4
#: On shutdown, in-flight activities get this long to finish before they are cancelled...
ACTIVITY_GRACE_SECONDS = 2.5
#: ...and the whole graceful shutdown this long; then the worker gives up on activities
#: still running (Temporal retries them after their timeout). Below the 10 s ``mutabaqa
#: dev`` (and ``docker compose stop``) allow before SIGKILL.
WORKER_SHUTDOWN_SECONDS = 4.0


def worker_engine(settings: Settings) -> Engine:
    """The worker's database engine: a pooled connection for every activity thread."""
    return create_db_engine(
        settings.resolved_database_url,
        pool_size=ACTIVITY_THREADS,
        max_overflow=DB_POOL_OVERFLOW,
        pool_timeout=settings.db_pool_timeout_seconds,
    )


def build_worker(
    client: Client,
    settings: Settings,
    engine: Engine,
    store: Minio,
    *,
    executor: ThreadPoolExecutor,
    task_queue: str | None = None,
    activity_grace: float = ACTIVITY_GRACE_SECONDS,
) -> Worker:
    install_audit_keys(settings)
    system = SystemActivities(engine, store, settings.s3_evidence_bucket)
    requests = RequestActivities(engine, store, settings)
    notifications = NotificationActivities(engine, settings)
    webhooks = WebhookActivities(engine, settings)
    signing = ensure_signing_material(settings)
    lab = LabActivities(engine, settings, store, signing)
    certificates = CertificateActivities(engine, lab)
    queue = task_queue or settings.temporal_task_queue
    credentials = CredentialIssuer(engine, settings, signing.keyring)
    outbox = OutboxActivities(engine, client, queue, notifications, webhooks, lab, credentials)
    return Worker(
        client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=[
            system.check_stack,
            requests.create_request,
            requests.intake_checks,
            requests.apply_transition,
            requests.record_file,
            requests.record_event,
            lab.record_result,
            lab.grant,
            outbox.deliver,
            outbox.deliver_temporal,
            outbox.mark_dead,
            certificates.apply_transition,
            certificates.reissue,
            certificates.surveillance_request,
        ],
        # Workflows believe only sealed starts, Updates and Signals; the key is bound here.
        # The request id follows the message into its workflow and activities (the client's
        # tracing interceptor, when on, is added by the worker itself).
        interceptors=[
            SealCheckingInterceptor(seal_key(settings), settings.temporal_seals_since),
            RequestIdWorkerInterceptor(),
        ],
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_THREADS,
        graceful_shutdown_timeout=timedelta(seconds=activity_grace),
    )


async def run_worker(
    client: Client,
    settings: Settings,
    engine: Engine,
    store: Minio,
    stop: asyncio.Event,
    *,
    shutdown_seconds: float | None = None,
) -> bool:
    """Run until ``stop`` is set, then shut down gracefully: in-flight activities get
    ``ACTIVITY_GRACE_SECONDS`` to finish, then are cancelled.

    With ``shutdown_seconds``, the shutdown is bounded: past it, return False without
    waiting for activity threads still busy (a synchronous activity cannot be interrupted);
    the caller should then exit the process at once (``os._exit``), since the interpreter
    would otherwise join those threads at exit. True: every task finished.

    Beside the worker run the audit checkpoint loop (``mutabaqa/anchoring.py``) and the
    orphan sweeper (``mutabaqa/sweeper.py``).
    """
    executor = ThreadPoolExecutor(ACTIVITY_THREADS, thread_name_prefix="activity")
    clean = False
    running: asyncio.Task[None] | None = None
    checkpoints: asyncio.Task[None] | None = None
    sweeps: asyncio.Task[None] | None = None
    try:
        worker = build_worker(client, settings, engine, store, executor=executor)
        running = asyncio.create_task(worker.run(), name="mutabaqa-worker")
        checkpoints = asyncio.create_task(
            checkpoint_periodically(
                settings, engine, store, ensure_signing_material(settings).keyring, stop
            ),
            name="mutabaqa-audit-checkpoints",
        )
        sweeps = asyncio.create_task(
            sweep_periodically(settings, engine, store, stop), name="mutabaqa-orphan-sweeps"
        )
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not running.done():
            shutdown = asyncio.create_task(worker.shutdown())
            done, _ = await asyncio.wait({running}, timeout=shutdown_seconds)
            shutdown.cancel()  # it returns once the run ends; nothing left to wait for
            if not done:
                log.warning(
                    "worker shutdown not complete after %.0f s; leaving activities still "
                    "running (Temporal retries them after their timeout)",
                    shutdown_seconds,
                )
                return False
        running.result()  # a fatal worker error surfaces here
        clean = True
        return True
    except BaseException:
        if running is not None:
            running.cancel()
        raise
    finally:
        if checkpoints is not None:
            checkpoints.cancel()
        if sweeps is not None:
            sweeps.cancel()
        executor.shutdown(wait=clean, cancel_futures=True)
