"""OpenTelemetry tracing and the worker's Temporal SDK metrics, both off unless configured.

- ``MUTABAQA_OTEL_ENABLED=true``: the API's HTTP server spans (the FastAPI
  instrumentation, ``api/app.py``) and Temporal's spans — starts, Updates, Signals,
  workflow runs and handlers, activities (``temporalio.contrib.opentelemetry``'s
  ``TracingInterceptor``, on every client made by ``connect_temporal`` and so on the
  worker) — share one trace per call, carried from the API into the workflow and its
  activities in a Temporal header. Spans are exported over OTLP to the collector named by
  the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
  variables (``OTEL_EXPORTER_OTLP_PROTOCOL``: ``grpc`` or ``http/protobuf``, the default).
- ``MUTABAQA_WORKER_METRICS_ADDRESS=host:port``: the worker's Temporal runtime serves the
  SDK's own metrics (task slots, poll and schedule latencies, workflow and activity
  outcomes) in the Prometheus format at ``http://host:port/metrics``.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from mutabaqa.settings import Settings


def _otlp_exporter() -> SpanExporter:
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter()


def setup_tracing(settings: Settings, process: str) -> None:
    """With tracing on, install the process's tracer provider, exporting over OTLP — unless
    one is installed already (a test's in-memory exporter, or an earlier call)."""
    if not settings.otel_enabled:
        return
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"{settings.otel_service_name}-{process}"})
    )
    provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
    trace.set_tracer_provider(provider)


def shutdown_tracing() -> None:
    """Export the spans still buffered (the processes leave with ``os._exit``)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def tracing_interceptors(settings: Settings) -> list[Interceptor]:
    """Temporal's tracing interceptor when tracing is on (it is a worker interceptor too:
    a worker built on such a client traces its workflows and activities)."""
    return [TracingInterceptor()] if settings.otel_enabled else []


def worker_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime serving the SDK's metrics at ``MUTABAQA_WORKER_METRICS_ADDRESS``
    (bound now), or None (the default runtime, no metrics endpoint)."""
    if not settings.worker_metrics_address:
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=settings.worker_metrics_address,
                counters_total_suffix=True,
                durations_as_seconds=True,
            )
        )
    )
