"""Observability of one request's walk to its certificate: ``/metrics`` counts it exactly
(from a database of its own, so every count is known), its request id reaches the log
lines of the activities it sets going, and with tracing on the API call and the workflow's
activities share one trace."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from mutabaqa.logs import JsonFormatter
from mutabaqa.request_ids import RequestIdLogFilter
from mutabaqa.settings import Settings
from tests.api.helpers import API
from tests.api.lab_helpers import make_lab, to_evaluated
from tests.api.requests_helpers import FFP2_DOCUMENTS, PDF, PNG, make_cast, wait_pdf_link
from tests.conftest import start_worker
from tests.databases import own_deployment, prepare, private_pg_database

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Walk:
    settings: Settings
    client: TestClient
    request_id: str
    number: str
    grant_request_id: str
    spans: InMemorySpanExporter
    records: list[logging.LogRecord]


def in_memory_spans() -> InMemorySpanExporter:
    """The process's tracer provider exports to memory too (installed once per process)."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture(scope="module")
def own_settings(settings: Settings) -> Iterator[Settings]:
    """A PostgreSQL database, buckets, task queue and certificate prefix of this module's
    own, on the session's Temporal server: the counts of /metrics are this walk's alone."""
    with private_pg_database("observe") as url:
        own = own_deployment(
            settings,
            url,
            "observe",
            metrics_db_cache_seconds=0.0,
            # A credential waits for its PDF by retrying: keep the walk short.
            outbox_initial_interval_seconds=0.5,
            otel_enabled=True,
        )
        yield prepare(own)


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.addFilter(RequestIdLogFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def series(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def labelled(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (sample, labels), value in samples.items() if sample == name}


@pytest.fixture(scope="module")
def walk(own_settings: Settings) -> Iterator[Walk]:
    spans = in_memory_spans()
    keep = _Keep()
    activity_logger = logging.getLogger("temporalio.activity")
    previous_level = activity_logger.level
    activity_logger.setLevel(logging.INFO)
    activity_logger.addHandler(keep)
    worker = start_worker(own_settings)
    try:
        with TestClient(create_app(own_settings)) as client:
            cast = make_cast(client, own_settings)
            lab = make_lab(client, cast)
            rid = to_evaluated(client, cast, lab)
            grant_id = f"grant-{uuid.uuid4().hex}"
            granted = client.post(
                f"{API}/requests/{rid}/actions/grant",
                json={},
                headers=cast.officer_auth | {"X-Request-ID": grant_id},
            )
            assert granted.status_code == 200, granted.text
            assert granted.headers["X-Request-ID"] == grant_id
            number = granted.json()["certificate_number"]
            wait_pdf_link(client, cast.maker_auth, number)
            # Every side effect delivered: the outbox is empty (bounded wait).
            deadline = time.monotonic() + 60
            while series(scrape(client), "mutabaqa_outbox_depth") != 0:
                assert time.monotonic() < deadline, "the outbox did not empty"
                time.sleep(0.2)
            yield Walk(own_settings, client, rid, number, grant_id, spans, keep.records)
    finally:
        worker.stop()
        spans.shutdown()  # keeps nothing more for the rest of the session
        activity_logger.removeHandler(keep)
        activity_logger.setLevel(previous_level)


#: The walk's status changes: (action, from, to) -> count.
WALK_TRANSITIONS = {
    ("create", "", "draft"): 1,
    ("submit", "draft", "submitted"): 1,
    ("intake", "submitted", "application_review"): 1,
    ("accept", "application_review", "awaiting_sample"): 1,
    ("receive_sample", "awaiting_sample", "testing"): 1,
    ("submit_results", "testing", "results_submitted"): 1,
    ("verify_results", "results_submitted", "evaluated"): 1,
    ("grant", "evaluated", "certified"): 1,
}


def test_metrics_count_the_walk_from_the_record(walk: Walk) -> None:
    samples = scrape(walk.client)
    transitions = {
        (dict(labels)["action"], dict(labels)["from_status"], dict(labels)["to_status"]): value
        for labels, value in labelled(samples, "mutabaqa_transitions_total").items()
        if dict(labels)["object_type"] == "request"
    }
    assert transitions == WALK_TRANSITIONS
    # Each status the request left was one stay, in the histogram of its stage.
    for _action, before, _after in WALK_TRANSITIONS:
        if before:
            assert series(samples, "mutabaqa_stage_duration_seconds_count", stage=before) == 1
            assert (
                series(samples, "mutabaqa_stage_duration_seconds_bucket", stage=before, le="+Inf")
                == 1
            )
            total = series(samples, "mutabaqa_stage_duration_seconds_sum", stage=before)
            assert total is not None and total >= 0
    assert labelled(samples, "mutabaqa_escalations_total") == {}
    # The side effects: all delivered, none dead.
    outbox = labelled(samples, "mutabaqa_outbox_rows")
    assert outbox, samples
    assert {dict(labels)["status"] for labels in outbox} == {"delivered"}
    assert series(samples, "mutabaqa_outbox_rows", kind="certificate_pdf", status="delivered") == 1
    assert series(samples, "mutabaqa_outbox_depth") == 0
    assert series(samples, "mutabaqa_outbox_dead_letters") == 0
    assert series(samples, "mutabaqa_outbox_oldest_pending_age_seconds") == 0
    # The dossier's documents.
    assert series(samples, "mutabaqa_uploads_total", purpose="document") == len(FFP2_DOCUMENTS)
    # Three PDFs and the product photo (a PNG).
    assert series(samples, "mutabaqa_upload_bytes_total", purpose="document") == 3 * len(PDF) + len(
        PNG
    )
    assert series(samples, "mutabaqa_actions_total", action="grant") == 1
    assert series(samples, "mutabaqa_metrics_record_up") == 1


def test_http_metrics_are_labelled_by_route_template(walk: Walk) -> None:
    samples = scrape(walk.client)
    actions = "/api/v1/requests/{request_id}/actions/{action}"
    # submit, accept, receive_sample, submit_results, verify_results, grant: all 200.
    assert (
        series(samples, "mutabaqa_http_requests_total", method="POST", route=actions, status="200")
        == 6
    )
    routes = {dict(labels)["route"] for labels in labelled(samples, "mutabaqa_http_requests_total")}
    assert not any(walk.request_id in route for route in routes), routes
    walk.client.get(f"/no/such/{uuid.uuid4().hex}")
    walk.client.request("BREW", "/health")  # an invented method is "other"
    after = scrape(walk.client)
    assert {
        dict(labels)["method"] for labels in labelled(after, "mutabaqa_http_requests_total")
    } <= {
        "GET",
        "POST",
        "PUT",
        "other",
    }
    assert (
        series(after, "mutabaqa_http_requests_total", method="other", route="/health", status="405")
        == 1
    )
    assert series(
        after, "mutabaqa_http_requests_total", method="GET", route="unmatched", status="404"
    ) == (series(samples, "mutabaqa_http_requests_total", method="GET", route="unmatched",
                 status="404") or 0) + 1  # fmt: skip


def test_a_request_id_is_taken_when_sane_and_made_otherwise(walk: Walk) -> None:
    given = walk.client.get("/health", headers={"X-Request-ID": "abc-123.x:y"})
    assert given.headers["X-Request-ID"] == "abc-123.x:y"
    for insane in ("", "a" * 200, "x y", "<script>"):
        made = walk.client.get("/health", headers={"X-Request-ID": insane})
        assert made.headers["X-Request-ID"] not in (insane, "")
    assert len(walk.client.get("/health").headers["X-Request-ID"]) == 32


def test_the_request_id_reaches_the_activities_it_sets_going(walk: Walk) -> None:
    sent = [
        record
        for record in walk.records
        if record.getMessage().startswith("notification ")
        and getattr(record, "request_id", None) == walk.grant_request_id
    ]
    assert sent, [(r.getMessage(), getattr(r, "request_id", None)) for r in walk.records]
    line = json.loads(JsonFormatter().format(sent[0]))
    assert line["request_id"] == walk.grant_request_id
    assert line["level"] == "INFO"
    assert line["temporal_activity"]["activity_type"] == "outbox_deliver"


def _server_spans(spans: list[ReadableSpan], method: str, route: str) -> list[ReadableSpan]:
    return [
        span
        for span in spans
        if span.kind == trace.SpanKind.SERVER
        and span.attributes is not None
        and span.attributes.get("http.route") == route
        and span.attributes.get("http.request.method", span.attributes.get("http.method")) == method
    ]


def test_one_trace_from_the_api_call_to_the_workflows_activities(walk: Walk) -> None:
    spans = list(walk.spans.get_finished_spans())
    # The call that created the request: its workflow and the workflow's activities are in
    # its trace.
    (created,) = _server_spans(spans, "POST", "/api/v1/requests")
    in_trace = {span.name for span in spans if span.context.trace_id == created.context.trace_id}
    assert {
        "POST /api/v1/requests",
        "StartUpdateWithStartWorkflow:CertificationRequest.v2",
        "RunWorkflow:CertificationRequest.v2",
        "RunActivity:create_request",
        "RunActivity:apply_transition",
        "RunActivity:issue_certificate",
    } <= in_trace, in_trace
    # A later action (the grant): Temporal's interceptor keeps an Update in its workflow's
    # trace and links it to the call that sent it.
    grants = [span for span in spans if span.name == "StartWorkflowUpdate:grant"]
    (grant,) = grants
    (call,) = (
        [s for s in spans if s.context.span_id == grant.parent.span_id] if grant.parent else []
    )
    assert call.kind == trace.SpanKind.SERVER
    (handled,) = [span for span in spans if span.name == "HandleUpdate:grant"]
    assert handled.context.trace_id == created.context.trace_id
    assert [link.context.span_id for link in handled.links] == [grant.context.span_id]
