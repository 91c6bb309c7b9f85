"""The real upload route against a direct S3 put: ``POST /api/v1/requests/{id}/documents``.

    .venv/bin/python bench/upload_route.py [--size-mib 190] [--rounds 1]

``bench/upload.py`` measures the streaming engine alone, in a harness app. This bench runs
the whole product (``mutabaqa dev`` on free loopback ports, SQLite, data in a temporary
directory, as ``bench/pipeline.py`` does), logs in as the development admin, makes a
manufacturer with a product (``tests/walker.make_people``), creates a certification
request, then times, on the same S3 store and in the same run:

- (a) a direct multipart ``put_object`` of the bytes (part size as the API's);
- (b) ``POST /api/v1/requests/{id}/documents`` with the same bytes as a multipart form,
  authenticated as the manufacturer. The route answers 201 only once the request's
  workflow has recorded the file (``record_file``: the stored version checked against the
  upload's size and digests, docs/uploads.md; the row and its audit event written; the
  retention lock set), so its time is the user's wait from the first byte to the recorded
  document. The time ``record_file`` took is read from the workflow's history.

The bytes are pseudo-random, generated on the fly (``bench/upload.py``'s generator), and
the SHA-256 the API reports is checked. Rounds alternate the order, the store's writes are
flushed before each run, and the best run of each path is kept. Prints MB/s of both, the
ratio route/direct and whether the goal (>= 0.9) is met, and the CPU seconds each process
used during each run. Stops the stack by PID. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pipeline import CpuMeter, Stack, workflow_id_of  # noqa: E402
from upload import PseudoRandom, Run, put_direct  # noqa: E402

from mutabaqa.clients import make_object_store  # noqa: E402
from mutabaqa.settings import Environment, MiB, Settings  # noqa: E402
from tests.walker import make_people  # noqa: E402

API = "/api/v1"
GOAL_RATIO = 0.9
HEALTH_SECONDS = 180.0
TIMEOUT_SECONDS = 600.0
KIND = "technical_file"
FFP2 = "FFP2-NM-EN-149"


def document_form(boundary: str, data: PseudoRandom) -> tuple[int, Iterator[bytes]]:
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="kind"\r\n\r\n{KIND}\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="technical-file.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        yield from data.chunks()
        yield tail

    return len(head) + data.size + len(tail), body()


def post_document(
    url: str, auth: dict[str, str], request_id: str, data: PseudoRandom
) -> tuple[Run, dict[str, Any]]:
    boundary = uuid.uuid4().hex
    length, body = document_form(boundary, data)
    headers = auth | {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(length),
    }
    started = time.perf_counter()
    response = httpx.post(
        f"{url}{API}/requests/{request_id}/documents",
        content=body,
        headers=headers,
        timeout=TIMEOUT_SECONDS,
    )
    seconds = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"the route answered {response.status_code}: {response.text[:500]}")
    return Run("POST .../documents", data.size, seconds), response.json()


async def record_file_seconds(temporal_port: int, workflow_id: str) -> float:
    """Scheduled to completed, of the workflow's last ``record_file`` activity."""
    client = await Client.connect(f"127.0.0.1:{temporal_port}")
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled: dict[int, datetime] = {}
    last = 0.0
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            if name == "record_file":
                scheduled[event.event_id] = event.event_time.ToDatetime()
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            begun = scheduled.get(event.activity_task_completed_event_attributes.scheduled_event_id)
            if begun is not None:
                last = (event.event_time.ToDatetime() - begun).total_seconds()
    return last


async def prepare(url: str, settings: Settings) -> tuple[dict[str, str], str]:
    """The manufacturer's headers and a new draft request of theirs."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        people = await make_people(
            http, settings.admin_email, settings.admin_password.get_secret_value()
        )
        response = await http.post(
            f"{API}/requests",
            json={"product_id": people.product["id"], "scheme_code": FFP2, "kind": "certification"},
            headers=people.maker_auth | {"Idempotency-Key": uuid.uuid4().hex},
        )
        if response.status_code not in (200, 201):
            raise RuntimeError(f"creating the request: {response.status_code} {response.text}")
        return dict(people.maker_auth), str(response.json()["id"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=190)
    parser.add_argument("--rounds", type=int, default=1, help="rounds (1..3; default 1)")
    args = parser.parse_args(argv)
    size = args.size_mib * MiB
    rounds = max(1, min(args.rounds, 3))
    if not 1 <= args.size_mib <= 200:
        parser.error("size must be 1..200 MiB (the development upload limit)")

    workdir = Path(tempfile.mkdtemp(prefix="mutabaqa-bench-route-"))
    stack = Stack(workdir, None)
    direct_runs: list[Run] = []
    route_runs: list[Run] = []
    recording: list[float] = []  # record_file's seconds, per route run
    try:
        print("starting mutabaqa dev ...", flush=True)
        stack.start()
        stack.wait_healthy(HEALTH_SECONDS)
        settings = Settings(
            env=Environment.DEVELOPMENT,
            data_dir=workdir,
            s3_endpoint=f"http://127.0.0.1:{stack.s3.s3}",
        )
        part_size = settings.upload_part_size
        store = make_object_store(settings, timeout=TIMEOUT_SECONDS)
        bucket = settings.s3_evidence_bucket
        auth, request_id = asyncio.run(prepare(stack.url, settings))
        workflow_id = workflow_id_of(settings.resolved_database_url, request_id)

        print(f"expected SHA-256 of {size} bytes ...", flush=True)
        expected = hashlib.sha256()
        for chunk in PseudoRandom(size).chunks():
            expected.update(chunk)

        # Warm up both paths with a small file (imports, connections, the workflow).
        post_document(stack.url, auth, request_id, PseudoRandom(256 * 1024))
        put_direct(store, bucket, PseudoRandom(256 * 1024), part_size)

        meter = CpuMeter(stack.procs)
        for round_no in range(rounds):
            order = ("direct", "route") if round_no % 2 == 0 else ("route", "direct")
            for which in order:
                os.sync()
                time.sleep(1.0)
                meter.start()
                if which == "direct":
                    run = put_direct(store, bucket, PseudoRandom(size), part_size)
                    direct_runs.append(run)
                else:
                    run, recorded = post_document(stack.url, auth, request_id, PseudoRandom(size))
                    if recorded["sha256"] != expected.hexdigest() or recorded["size"] != size:
                        raise RuntimeError(f"recorded digest or size differs: {recorded}")
                    route_runs.append(run)
                run.cpu = meter.stop()
                if which == "route":
                    recording.append(
                        asyncio.run(record_file_seconds(stack.temporal.grpc, workflow_id))
                    )
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    direct = max(direct_runs, key=lambda r: r.mb_per_s)
    route = max(route_runs, key=lambda r: r.mb_per_s)
    ratio = route.mb_per_s / direct.mb_per_s
    print(f"\nsize {size} bytes ({args.size_mib} MiB), best of {rounds} round(s)")
    for run in (direct, route):
        print(
            f"  {run.name:<22} {run.size:>12} bytes  {run.seconds:7.2f} s  {run.mb_per_s:7.1f} MB/s"
            "  (CPU s: " + ", ".join(f"{name} {sec:.1f}" for name, sec in run.cpu.items()) + ")"
        )
    best = route_runs.index(route)
    print(
        f"  of which record_file (scheduled to completed): {recording[best]:.2f} s"
        f" ({recording[best] / route.seconds:.0%} of the route's time)"
    )
    print(
        f"  throughput ratio route/direct: {ratio:.2f} (goal >= {GOAL_RATIO})"
        f" {'met' if ratio >= GOAL_RATIO else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
