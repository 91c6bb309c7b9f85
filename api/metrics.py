"""``/metrics``: what this API process counts itself, and what the record says.

- **HTTP**, recorded here: ``mutabaqa_http_requests_total{method,route,status}`` and
  ``mutabaqa_http_request_duration_seconds{method,route}``, labelled by the route's
  template (``/api/v1/requests/{request_id}``), never by the raw path: the label set is
  bounded by the routes. A path no route matches is ``route="unmatched"``.
- **The record**, read at scrape time (``records/metrics.py``) in the thread pool, in one
  short read transaction, kept ``MUTABAQA_METRICS_DB_CACHE_SECONDS``: actions and
  transitions by type, stage durations, escalations, the outbox's depth and dead letters,
  uploads. The worker writes these (another process); the record's counts are exact and
  survive restarts. Several API processes each serve the same figures: aggregate them
  with ``max``, not ``sum``.
- The process's own (CPU, memory, file descriptors, garbage collector) from
  ``prometheus_client``.

The Temporal SDK's metrics are the worker's, on its own endpoint (``mutabaqa/tracing.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from records.metrics import STAGE_BUCKETS, RecordFigures, read_figures

log = logging.getLogger(__name__)

UNMATCHED = "unmatched"
#: Methods labelled as themselves; any other token a client sends is ``other`` (a label
#: value per invented method would let anyone grow the series without bound).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """Pure ASGI middleware counting each HTTP answer by method, route template and status.
    It wraps the whole application, so an unexpected exception counts as a 500."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "mutabaqa_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "mutabaqa_http_request_duration_seconds",
            "Time to answer an HTTP request (to the end of its body), by route template.",
            ("method", "route"),
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        path = str(scope.get("path", ""))  # as asked: routing may rewrite the scope's

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            template = route_template(scope, path)
            method = str(scope.get("method", ""))
            method = method if method in KNOWN_METHODS else "other"
            self.requests.labels(method, template, str(status)).inc()
            self.duration.labels(method, template).observe(time.perf_counter() - started)


def route_template(scope: Scope, path: str) -> str:
    """The template of the route that answered (``/api/v1/requests/{request_id}``).

    The route in the scope knows its path within its router only (FastAPI no longer copies
    included routes with their prefixes), so the prefix is taken from the request's path:
    as many leading segments as the path has beyond the route's own. Prefixes here have no
    parameters, so it never holds an id."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(route, BaseRoute) or not isinstance(template, str):
        return UNMATCHED
    if isinstance(route, Mount):
        return template  # /static: one label for everything below
    parts = path.split("/")
    depth = template.count("/")
    return "/".join(parts[: max(len(parts) - depth, 0)]) + template


class RecordCollector(Collector):
    """The record's figures as metric families, computed at most once per ``cache_seconds``."""

    def __init__(self, engine: Callable[[], Engine | None], cache_seconds: float) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._figures: RecordFigures | None = None
        self._up = False

    def _current(self) -> tuple[RecordFigures | None, bool]:
        with self._lock:
            engine = self._engine()
            if engine is not None and time.monotonic() - self._read_at >= self._cache_seconds:
                try:
                    with engine.connect() as connection, connection.begin():
                        self._figures = read_figures(connection)
                    self._up = True
                except Exception:
                    log.exception("metrics: the record could not be read")
                    self._up = False
                self._read_at = time.monotonic()
            return self._figures, self._up

    def collect(self) -> Iterator[Metric]:
        figures, up = self._current()
        yield GaugeMetricFamily(
            "mutabaqa_metrics_record_up",
            "1 when the last read of the record's figures succeeded (else the figures are "
            "those of the last good read, or absent).",
            value=1 if up else 0,
        )
        if figures is not None:
            yield from record_families(figures)


def record_families(figures: RecordFigures) -> Iterable[Metric]:
    actions = CounterMetricFamily(
        "mutabaqa_actions",
        "Accepted actions on requests and certificates (people's and the system's steps).",
        labels=("action",),
    )
    for action, count in sorted(figures.actions.items()):
        actions.add_metric((action,), count)
    yield actions
    transitions = CounterMetricFamily(
        "mutabaqa_transitions",
        "Status changes of requests and certificates, by object type, action, from and to status.",
        labels=("object_type", "action", "from_status", "to_status"),
    )
    for key, count in sorted(figures.transitions.items()):
        transitions.add_metric(key, count)
    yield transitions
    escalations = CounterMetricFamily(
        "mutabaqa_escalations",
        "Escalations raised (a request's stage target overrun), by stage.",
        labels=("stage",),
    )
    for stage, count in sorted(figures.escalations.items()):
        escalations.add_metric((stage,), count)
    yield escalations
    stages = HistogramMetricFamily(
        "mutabaqa_stage_duration_seconds",
        "How long requests stayed in a status, over the stays that have ended, by stage.",
        labels=("stage",),
    )
    for stage, durations in sorted(figures.stages.items()):
        buckets = [
            (_bound(bound), float(count))
            for bound, count in zip(STAGE_BUCKETS, durations.buckets, strict=True)
        ]
        buckets.append(("+Inf", float(durations.count)))
        stages.add_metric((stage,), buckets, durations.total_seconds)
    yield stages
    outbox = GaugeMetricFamily(
        "mutabaqa_outbox_rows",
        "Outbox rows (side effects), by kind and status (pending, delivered, dead).",
        labels=("kind", "status"),
    )
    for kind_status, count in sorted(figures.outbox.items()):
        outbox.add_metric(kind_status, count)
    yield outbox
    yield GaugeMetricFamily(
        "mutabaqa_outbox_depth",
        "Side effects written and not yet delivered (pending outbox rows).",
        value=sum(n for (_, status), n in figures.outbox.items() if status == "pending"),
    )
    yield GaugeMetricFamily(
        "mutabaqa_outbox_dead_letters",
        "Side effects whose every attempt failed (dead outbox rows; mutabaqa outbox replay).",
        value=sum(n for (_, status), n in figures.outbox.items() if status == "dead"),
    )
    oldest = figures.oldest_pending
    yield GaugeMetricFamily(
        "mutabaqa_outbox_oldest_pending_age_seconds",
        "Age of the oldest pending outbox row (0 when none is pending).",
        value=0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds()),
    )
    uploads = CounterMetricFamily(
        "mutabaqa_uploads",
        "Files recorded (documents and test evidence), by purpose.",
        labels=("purpose",),
    )
    upload_bytes = CounterMetricFamily(
        "mutabaqa_upload_bytes",
        "Bytes of the files recorded, by purpose.",
        labels=("purpose",),
    )
    for purpose, (count, size) in sorted(figures.uploads.items()):
        uploads.add_metric((purpose,), count)
        upload_bytes.add_metric((purpose,), size)
    yield uploads
    yield upload_bytes


def _bound(seconds: float) -> str:
    return f"{seconds:g}" if seconds < 1e6 else f"{seconds:.1f}"


def make_registry(engine: Callable[[], Engine | None], cache_seconds: float) -> CollectorRegistry:
    """The API process's registry: the process collectors and the record's figures (read
    through ``engine()``, the API's engine once started); the HTTP metrics register
    themselves (``HttpMetrics``)."""
    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    registry.register(RecordCollector(engine, cache_seconds))
    return registry


def metrics_endpoint(registry: CollectorRegistry) -> Callable[[Request], Awaitable[Response]]:
    """``GET /metrics``: the registry in the format the scraper accepts; collected in the
    thread pool (the record's queries block), no connection held across an await."""

    async def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        body = await run_in_threadpool(encoder, registry)
        return Response(body, media_type=content_type)

    return metrics
