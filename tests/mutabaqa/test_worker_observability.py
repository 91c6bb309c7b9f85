"""``mutabaqa worker`` with JSON logs and the Temporal SDK's metrics on an endpoint of its own:
what an operator points a log collector and a Prometheus scraper at."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx

from mutabaqa.settings import Settings
from tests.mutabaqa.test_worker_crash import (
    start_worker_process,
    stop_process,
    wait_for,
    worker_env,
)
from tests.smtp import free_port


def _scrape(url: str) -> str:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return ""
    return response.text if response.status_code == 200 else ""


def test_the_worker_serves_sdk_metrics_and_logs_json(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "worker.log"
    env = worker_env(
        settings,
        temporal_task_queue=f"observe-{uuid.uuid4().hex}",
        log_format="json",
        worker_metrics_address=f"127.0.0.1:{port}",
    )
    worker = start_worker_process(env, log)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        # The SDK's own series: its client's requests, its pollers and task slots once the
        # worker polls (``temporal_`` prefix).
        slots = "temporal_worker_task_slots_available"
        text = wait_for("the worker's metrics", lambda: slots in (t := _scrape(url)) and t, 60, log)
        assert "temporal_request_total" in text, text[:2000]
    finally:
        stop_process(worker)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    # At least the shutdown's own line, in the JSON shape a collector reads.
    assert any("shutdown" in line["message"] for line in lines), log.read_text()[-3000:]
    for line in lines:
        assert {"time", "level", "logger", "message", "request_id"} <= line.keys(), line
