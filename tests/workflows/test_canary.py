"""The canary workflow on a real Temporal server, PostgreSQL and S3 store."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from minio import Minio
from sqlalchemy.engine import Engine

from models.system import CanaryInput, CanaryResult
from mutabaqa.clients import connect_temporal
from mutabaqa.settings import Settings
from mutabaqa.worker import ACTIVITY_THREADS, build_worker
from workflows.canary import CanaryWorkflow


@pytest.mark.timers
async def test_canary_timer_fires_then_checks_the_stack(
    settings: Settings, engine: Engine, store: Minio, task_queue: str
) -> None:
    client = await connect_temporal(settings)
    with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
        async with build_worker(
            client, settings, engine, store, executor=executor, task_queue=task_queue
        ):
            result = await client.execute_workflow(
                CanaryWorkflow.run,
                CanaryInput(delay_seconds=1.5, note="pytest"),
                id=f"canary-{uuid.uuid4()}",
                task_queue=task_queue,
                execution_timeout=timedelta(seconds=60),
            )
    assert isinstance(result, CanaryResult)
    assert result.fired_at - result.started_at >= timedelta(seconds=1.5)
    assert result.note == "pytest"
    assert result.stack.database == "ok"
    assert result.stack.object_store == "ok"
    assert result.stack.errors == {}
