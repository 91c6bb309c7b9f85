"""Request pipeline throughput: N FFP2 requests through the HTTP API against a bare baseline.

    .venv/bin/python bench/pipeline.py [--concurrency 10] [--requests 30]
                                       [--database-url URL] [--timeout 1800]

Starts the embedded stack itself (``mutabaqa dev`` on free loopback ports, data in a
temporary directory; SQLite unless ``--database-url`` names a fresh, empty database, which
the bench neither creates nor drops), waits for ``/health``, then:

1. one warm-up request through the API (``tests/walker.py``: creation, documents, submit,
   review, sample, nine results, submission, verification, grant, until ``/verify`` shows
   the certificate active and its PDF downloads), whose workflow histories give the counts
   of Updates (``WorkflowExecutionUpdateAccepted``) and activities
   (``ActivityTaskScheduled``) one real request costs, request and certificate workflows
   together, and of the outbox delivery workflows the request caused and their
   activities (printed);
2. the pipeline: ``--requests`` walks, at most ``--concurrency`` at a time;
3. the baseline, on the same Temporal server: a bare workflow on its own task queue, with
   its own worker in this process, that per request accepts the same number of no-op
   Updates (sent one after the other by a client, the first with start), executes the
   same number of no-op activities (regular, not local) and starts as many abandoned
   child workflows of one no-op activity each (the deliveries; a bare request ends when
   they have), as many requests at the same concurrency.

Prints for both the rate (requests/s), p50/p95 end-to-end latency, the ratio
pipeline/baseline, the errors (503, other 5xx, connection errors, 409, failed walks; all
should be 0) and the CPU seconds each process used during each phase (``/proc/<pid>/stat``
utime + stime): the bench itself, the ``mutabaqa dev`` supervisor, the API, the worker,
the Temporal server and the S3 store. Stops the stack by PID (SIGINT, SIGKILL after 15 s).
A benchmark, not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.workflow_names import OUTBOX_WORKFLOW  # noqa: E402
from mutabaqa.devstack import S3Ports, TemporalPorts, free_port  # noqa: E402
from mutabaqa.settings import Environment, Settings  # noqa: E402
from tests.walker import People, WalkResult, make_people, run_walks, walk  # noqa: E402

HEALTH_SECONDS = 180.0
STOP_SECONDS = 15.0
WALK_SECONDS = 300.0  # one request, at most
HISTORY_SECONDS = 60.0  # for the warm-up request's workflow to finish
#: The public routes are rate-limited per client address; the bench is one address.
RATE_ENV = {
    "MUTABAQA_ENV": "development",
    "MUTABAQA_PUBLIC_RATE_PER_MINUTE": "1000000",
    "MUTABAQA_PUBLIC_RATE_BURST": "100000",
}
COUNTED = {
    "updates": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    "activities": EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    "workflow tasks": EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    "timers": EventType.EVENT_TYPE_TIMER_STARTED,
    "markers (patches, local activities)": EventType.EVENT_TYPE_MARKER_RECORDED,
    "child workflows": EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
    "signals sent": EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
}


# --- the baseline ------------------------------------------------------------------------------


@activity.defn(name="bench_noop")
async def bench_noop() -> None:
    """Does nothing: the cost of an activity round trip through the server and the worker."""


@workflow.defn(name="BenchBareDelivery")
class BareDeliveryWorkflow:
    """Stands in for one outbox delivery: a child workflow running one no-op activity."""

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(bench_noop, start_to_close_timeout=timedelta(seconds=30))


@workflow.defn(name="BenchBareRequest")
class BareRequestWorkflow:
    """Accepts ``updates`` Updates; each executes the no-op activity as often as it is told
    and starts as many abandoned child workflows (deliveries) as it is told; the run ends
    once every child has."""

    def __init__(self) -> None:
        self.done = 0
        self.children: list[workflow.ChildWorkflowHandle[Any, Any]] = []

    @workflow.run
    async def run(self, updates: int) -> int:
        await workflow.wait_condition(lambda: self.done >= updates)
        await workflow.wait_condition(workflow.all_handlers_finished)
        for child in self.children:
            await child
        return self.done

    @workflow.update(name="step")
    async def step(self, work: tuple[int, int]) -> int:
        activities, children = work
        for _ in range(activities):
            await workflow.execute_activity(
                bench_noop, start_to_close_timeout=timedelta(seconds=30)
            )
        for _ in range(children):
            self.children.append(
                await workflow.start_child_workflow(
                    BareDeliveryWorkflow.run,
                    id=f"{workflow.info().workflow_id}-{len(self.children)}",
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                )
            )
        self.done += 1
        return self.done


def spread(activities: int, updates: int) -> list[int]:
    """``activities`` shared among ``updates`` Updates as evenly as possible."""
    return [activities // updates + (1 if i < activities % updates else 0) for i in range(updates)]


async def bare_request(client: Client, task_queue: str, plan: Sequence[tuple[int, int]]) -> float:
    """One bare request: the Updates in order, the first one with start; its seconds."""
    started = time.monotonic()
    start = WithStartWorkflowOperation(
        BareRequestWorkflow.run,
        len(plan),
        id=f"bench-bare-{uuid.uuid4().hex}",
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )
    _ = await client.execute_update_with_start_workflow(
        BareRequestWorkflow.step, plan[0], start_workflow_operation=start
    )
    handle = await start.workflow_handle()
    for activities in plan[1:]:
        _ = await handle.execute_update(BareRequestWorkflow.step, activities)
    await handle.result()
    return time.monotonic() - started


@dataclass
class BaselineRun:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)


async def run_baseline(
    client: Client,
    plan: Sequence[tuple[int, int]],
    count: int,
    concurrency: int,
    within: float,
    meter: CpuMeter,
) -> BaselineRun:
    """``count`` bare requests at ``concurrency``, with a worker of their own (after one
    warm-up request, and with ``meter`` running); bounded by ``within`` seconds."""
    task_queue = f"bench-bare-{uuid.uuid4().hex[:8]}"
    result = BaselineRun()
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            try:
                result.latencies.append(await bare_request(client, task_queue, plan))
            except Exception as exc:
                result.errors.append(f"{type(exc).__name__}: {exc}")

    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[BareRequestWorkflow, BareDeliveryWorkflow],
        activities=[bench_noop],
        max_concurrent_activities=64,
        # Sandboxed like the product's workflows, but this module is passed through rather
        # than imported again inside the sandbox.
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(
                BareRequestWorkflow.__module__
            )
        ),
    ):
        async with asyncio.timeout(within):
            await bare_request(client, task_queue, plan)  # warm-up
            meter.start()
            started = time.monotonic()
            await asyncio.gather(*(one() for _ in range(count)))
            result.seconds = time.monotonic() - started
            result.cpu = meter.stop()
    return result


# --- counting a real request's work ------------------------------------------------------------


def workflow_id_of(database_url: str, request_id: str) -> str:
    """The request's workflow id, from its row (``CertificationRequest.workflow_id``)."""
    import sqlalchemy as sa
    from sqlmodel import Session, select

    from models.requests import CertificationRequest

    engine = sa.create_engine(database_url)
    try:
        with Session(engine) as session:
            row = session.exec(
                select(CertificationRequest).where(CertificationRequest.id == request_id)
            ).one()
            return row.workflow_id
    finally:
        engine.dispose()


async def count_events(client: Client, workflow_id: str) -> tuple[Counter[str], Counter[str]]:
    """Counts of the ``COUNTED`` events in a workflow's history, and of activities by type."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    counts: Counter[str] = Counter()
    types: Counter[str] = Counter()
    for event in history.events:
        for name, event_type in COUNTED.items():
            if event.event_type == event_type:
                counts[name] += 1
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            types[event.activity_task_scheduled_event_attributes.activity_type.name] += 1
    return counts, types


async def delivery_workflows(client: Client, within: float) -> list[str]:
    """The ids of every outbox delivery workflow so far (the warm-up request's), once all
    have closed (waiting at most ``within`` s)."""
    deadline = time.monotonic() + within
    query = f"WorkflowType = '{OUTBOX_WORKFLOW}'"
    while True:
        ids, running = [], 0
        async for execution in client.list_workflows(query):
            ids.append(execution.id)
            running += execution.status == WorkflowExecutionStatus.RUNNING
        if not running or time.monotonic() > deadline:
            return ids
        await asyncio.sleep(0.5)


async def wait_closed(client: Client, workflow_id: str, within: float) -> str:
    """Wait (at most ``within`` s) for the request's workflow to end; returns its status."""
    deadline = time.monotonic() + within
    handle = client.get_workflow_handle(workflow_id)
    while True:
        status = (await handle.describe()).status
        if status != WorkflowExecutionStatus.RUNNING or time.monotonic() > deadline:
            return status.name if status is not None else "UNKNOWN"
        await asyncio.sleep(0.2)


# --- processes and CPU -------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its threads included, its children not)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_time(pid: int) -> int:
    return int(_stat(pid)[19])


def sigint_ignored(pid: int) -> bool:
    with contextlib.suppress(OSError, ValueError):
        for row in Path(f"/proc/{pid}/status").read_text().splitlines():
            if row.startswith("SigIgn:"):
                return bool(int(row.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
    return sorted(found)


def label(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    words = [Path(a.decode(errors="replace")).name for a in argv if a]
    if "temporal" in words[:1]:
        return "temporal"
    if "weed" in words[:1]:
        return "weed"
    for role in ("api", "worker"):
        if role in words:
            return role
    return " ".join(words[:3])


@dataclass(frozen=True)
class Proc:
    name: str
    pid: int
    started: int  # /proc start time: guards against a reused PID


class Stack:
    """``mutabaqa dev`` on free ports in ``data_dir``; stopped by PID."""

    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.port = free_port()
        self.temporal = TemporalPorts.free()
        self.s3 = S3Ports.free()
        self.url = f"http://127.0.0.1:{self.port}"
        self.popen: subprocess.Popen[bytes] | None = None
        self.procs: list[Proc] = []
        self.log = data_dir / "dev.log"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MUTABAQA_")} | RATE_ENV
        if self.database_url:
            env["MUTABAQA_DATABASE_URL"] = self.database_url
        argv = [
            str(Path(sys.executable).parent / "mutabaqa"),
            "dev",
            f"--data-dir={self.data_dir}",
            f"--port={self.port}",
            f"--temporal-port={self.temporal.grpc}",
            f"--temporal-ui-port={self.temporal.ui}",
            f"--temporal-http-port={self.temporal.http}",
            f"--temporal-metrics-port={self.temporal.metrics}",
            f"--s3-port={self.s3.s3}",
            f"--s3-internal-port={self.s3.internal_base}",
        ]
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def wait_healthy(self, timeout: float) -> None:
        assert self.popen is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"mutabaqa dev exited ({self.popen.returncode}):\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                answer = httpx.get(self.url + "/health", timeout=5)
                if answer.status_code == 200 and answer.json().get("status") == "ok":
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"not healthy after {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.5)
        self.procs = [Proc("dev", self.popen.pid, start_time(self.popen.pid))]
        for pid in children_of(self.popen.pid):
            with contextlib.suppress(OSError):
                self.procs.append(Proc(label(pid), pid, start_time(pid)))

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _alive(self, proc: Proc) -> bool:
        try:
            return start_time(proc.pid) == proc.started
        except (OSError, IndexError, ValueError):
            return False

    def stop(self) -> None:
        """SIGINT to ``mutabaqa dev`` (it stops its children); SIGKILL after 15 s, to it and
        to any child of it still running (checked by PID and start time)."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            # SIGINT as Ctrl-C would; SIGTERM (also a clean stop) if the stack inherited an
            # ignored SIGINT (the bench started in the background by a shell script).
            ignored = sigint_ignored(self.popen.pid)
            self.popen.send_signal(signal.SIGTERM if ignored else signal.SIGINT)
            try:
                self.popen.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                print(f"  mutabaqa dev (pid {self.popen.pid}) still running: SIGKILL")
                self.popen.kill()
                self.popen.wait(5)
        for proc in self.procs[1:]:
            if self._alive(proc):
                print(f"  {proc.name} (pid {proc.pid}) still running: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all processes, not idle nor iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of each watched process between ``start()`` and ``stop()``, and of the
    whole machine (``"machine"``: other processes load it too)."""

    def __init__(self, procs: Sequence[Proc]) -> None:
        self.procs = [Proc("bench", os.getpid(), start_time(os.getpid())), *procs]
        self._start: dict[Proc, float] = {}
        self._machine = 0.0

    def start(self) -> None:
        self._start = {p: cpu_seconds(p.pid) for p in self.procs}
        self._machine = machine_busy_seconds()

    def stop(self) -> dict[str, float]:
        used: dict[str, float] = {"machine": machine_busy_seconds() - self._machine}
        for p in self.procs:
            name = p.name if p.name not in used else f"{p.name} {p.pid}"
            with contextlib.suppress(OSError):
                used[name] = cpu_seconds(p.pid) - self._start[p]
        return used


class CallCounter:
    """Counts the HTTP calls the walkers send, by method and route (ids left out)."""

    def __init__(self, api_port: int) -> None:
        self.api_port = api_port
        self.counts: Counter[str] = Counter()

    async def hook(self, request: httpx.Request) -> None:
        parts = request.url.path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            parts = parts[2:]
        if len(parts) > 1 and parts[0] in ("requests", "certificates", "verify"):
            parts[1] = "{id}"
        if len(parts) > 3 and parts[2] in ("actions", "results"):
            parts[3] = "{name}"
        route = "/".join(parts) if request.url.port == self.api_port else "S3"
        self.counts[f"{request.method} {route}"] += 1


# --- figures -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 < q <= 100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def line(name: str, done: int, seconds: float, latencies: Sequence[float]) -> str:
    rate = done / seconds if seconds > 0 else float("nan")
    return (
        f"  {name:<9} {done:>4} requests in {seconds:7.1f} s  {rate:7.2f} req/s"
        f"  p50 {percentile(latencies, 50):6.2f} s  p95 {percentile(latencies, 95):6.2f} s"
    )


def cpu_line(used: dict[str, float], seconds: float) -> str:
    ours = {name: value for name, value in used.items() if name != "machine"}
    total = sum(ours.values())
    parts = ", ".join(f"{name} {value:.1f}" for name, value in ours.items())
    machine = used.get("machine", float("nan"))
    cores = (
        f" = {total / seconds:.2f} cores; whole machine busy {machine / seconds:.2f}"
        f" of {os.cpu_count()} cores"
        if seconds > 0
        else ""
    )
    return f"    CPU s: {parts}; total {total:.1f}{cores}"


def walk_errors(results: Sequence[WalkResult]) -> dict[str, int]:
    return {
        "failed walks": sum(not r.ok for r in results),
        "503": sum(r.unavailable for r in results),
        "other 5xx": sum(r.server_errors for r in results),
        "connection errors": sum(r.connection_errors for r in results),
        "409": sum(r.conflict_count for r in results),
        "429": sum(r.throttled for r in results),
    }


# --- main --------------------------------------------------------------------------------------


async def run_bench(stack: Stack, args: argparse.Namespace, database_url: str) -> int:
    deadline = time.monotonic() + args.timeout
    settings = Settings(env=Environment.DEVELOPMENT, data_dir=stack.data_dir)
    limits = httpx.Limits(max_connections=max(100, 2 * args.concurrency))
    calls = CallCounter(stack.port)
    async with httpx.AsyncClient(
        base_url=stack.url, limits=limits, event_hooks={"request": [calls.hook]}
    ) as http:
        people: People = await make_people(
            http, settings.admin_email, settings.admin_password.get_secret_value()
        )
        warm = await walk(http, people, timeout=WALK_SECONDS)
        if not warm.ok or warm.request_id is None:
            print(f"warm-up request failed: {warm.errors}\n{stack.tail()}")
            return 1
        temporal = await Client.connect(f"127.0.0.1:{stack.temporal.grpc}")
        request_wf = workflow_id_of(database_url, warm.request_id)
        ended = await wait_closed(temporal, request_wf, HISTORY_SECONDS)
        counts = {request_wf: await count_events(temporal, request_wf)}
        with contextlib.suppress(RPCError):
            cert_wf = f"certificate-{warm.certificate_number}"
            counts[cert_wf] = await count_events(temporal, cert_wf)
        deliveries = await delivery_workflows(temporal, HISTORY_SECONDS)
        delivery_total: Counter[str] = Counter()
        delivery_types: Counter[str] = Counter()
        for wf in deliveries:
            counter, types = await count_events(temporal, wf)
            delivery_total.update(counter)
            delivery_types.update(types)
        total: Counter[str] = Counter()
        print("one real request's workflow histories (warm-up request):")
        for wf, (counter, types) in counts.items():
            total.update(counter)
            shown = ", ".join(f"{name} {counter[name]}" for name in COUNTED)
            print(f"  {wf}: {shown}")
            if types:
                print("    activities: " + ", ".join(f"{t} {n}" for t, n in types.most_common()))
        shown = ", ".join(f"{name} {delivery_total[name]}" for name in COUNTED)
        print(f"  {len(deliveries)} outbox deliveries together: {shown}")
        if delivery_types:
            print(
                "    activities: " + ", ".join(f"{t} {n}" for t, n in delivery_types.most_common())
            )
        print(f"  (request workflow {ended.lower()} when counted)")
        updates = total["updates"]
        activities = total["activities"]
        children = len(deliveries)
        print(
            f"  baseline per request: {updates} Updates, {activities} activities in the"
            f" lifecycles, {children} child workflows with"
            f" {delivery_total['activities']} activities"
        )
        if updates < 1:
            print("no Update found in the histories: cannot build the baseline")
            return 1
        # Each bare delivery runs one activity; any further delivery activity (a retry, a
        # dead letter's mark) is run by the parent instead.
        extra = max(0, delivery_total["activities"] - children)
        plan = list(
            zip(spread(activities + extra, updates), spread(children, updates), strict=True)
        )

        meter = CpuMeter(stack.procs)
        print(
            f"\npipeline: {args.requests} requests through the API,"
            f" concurrency {args.concurrency} ...",
            flush=True,
        )
        meter.start()
        calls.counts.clear()
        started = time.monotonic()
        results = await run_walks(
            http,
            people,
            args.requests,
            concurrency=args.concurrency,
            total_timeout=max(1.0, deadline - time.monotonic()),
            walk_timeout=WALK_SECONDS,
        )
        pipeline_seconds = time.monotonic() - started
        pipeline_cpu = meter.stop()

    print(
        f"baseline: {args.requests} bare requests, concurrency {args.concurrency} ...", flush=True
    )
    baseline = await run_baseline(
        temporal,
        plan,
        args.requests,
        args.concurrency,
        within=max(1.0, deadline - time.monotonic()),
        meter=meter,
    )
    baseline_cpu = baseline.cpu

    ok = [r for r in results if r.ok]
    pipeline_rate = len(ok) / pipeline_seconds
    baseline_rate = len(baseline.latencies) / baseline.seconds if baseline.seconds else 0.0
    errors = walk_errors(results)
    db = "SQLite (embedded default)" if args.database_url is None else "PostgreSQL/other (given)"
    print(
        f"\n{args.requests} requests, concurrency {args.concurrency}, database {db},"
        f" {os.cpu_count()} CPUs"
    )
    print(line("pipeline", len(ok), pipeline_seconds, [r.total_seconds for r in ok]))
    print(cpu_line(pipeline_cpu, pipeline_seconds))
    print(
        f"    HTTP calls: {calls.counts.total()} ({calls.counts.total() / max(1, len(results)):.0f}"
        " a request): " + ", ".join(f"{route} {n}" for route, n in calls.counts.most_common(8))
    )
    print(line("baseline", len(baseline.latencies), baseline.seconds, baseline.latencies))
    print(cpu_line(baseline_cpu, baseline.seconds))
    ratio = pipeline_rate / baseline_rate if baseline_rate else float("nan")
    print(f"  ratio pipeline/baseline: {ratio:.2f}")
    steps: dict[str, list[float]] = {}
    for r in ok:
        for step, seconds in r.steps.items():
            steps.setdefault(step.split(":")[0], []).append(seconds)
    print(
        "  pipeline mean seconds per step: "
        + ", ".join(f"{step} {statistics.fmean(values):.2f}" for step, values in steps.items())
    )
    print(
        "  errors: "
        + ", ".join(f"{name} {count}" for name, count in errors.items())
        + f", baseline {len(baseline.errors)}"
    )
    retried: Counter[str] = Counter()
    for r in results:
        for message in r.retried:  # what each retried call got
            retried[message[:160]] += 1
    for message, count in retried.most_common(10):
        print(f"    retried {count}x: {message}")
    for r in results:
        for message in r.errors:
            print(f"    walk {r.request_id or r.walk_id}: {message}")
        for conflict in r.conflicts:
            problem = conflict.problem
            detail = problem.get("detail") if isinstance(problem, dict) else problem
            print(
                f"    409 at {conflict.step} (read showed {conflict.seen_status}):"
                f" {detail}; events between read and action:"
                f" {len(conflict.intervening_events())}"
            )
    for message in baseline.errors[:10]:
        print(f"    baseline: {message}")
    failed = errors["failed walks"] or baseline.errors
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=10, help="1..200 (default 10)")
    parser.add_argument("--requests", type=int, default=30, help="1..2000 (default 30)")
    parser.add_argument(
        "--database-url",
        default=None,
        help="MUTABAQA_DATABASE_URL for the stack (a fresh, empty database); "
        "default: the embedded SQLite",
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the stack's data directory (and logs)"
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="bound of the whole run, s (default 1800)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.concurrency <= 200 or not 1 <= args.requests <= 2000:
        parser.error("concurrency must be 1..200 and requests 1..2000")
    if not 60 <= args.timeout <= 4 * 3600:
        parser.error("timeout must be 60..14400 s")

    data_dir = Path(tempfile.mkdtemp(prefix="mutabaqa-bench-pipeline-"))
    stack = Stack(data_dir, args.database_url)
    database_url = (
        args.database_url
        or Settings(env=Environment.DEVELOPMENT, data_dir=data_dir).resolved_database_url
    )
    try:
        print(f"starting mutabaqa dev in {data_dir} (API {stack.url}) ...", flush=True)
        stack.start()
        stack.wait_healthy(HEALTH_SECONDS)
        print("  processes: " + ", ".join(f"{p.name} {p.pid}" for p in stack.procs), flush=True)
        return asyncio.run(run_bench(stack, args, database_url))
    finally:
        print("stopping the stack ...", flush=True)
        stack.stop()
        if args.keep_data:
            print(f"data and logs kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    # Run as ``bench.pipeline``, not ``__main__``: the workflow sandbox then takes the
    # baseline workflow's module as it is (passed through) instead of running it again.
    import importlib

    sys.exit(importlib.import_module("bench.pipeline").main())
