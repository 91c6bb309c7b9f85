"""Log lines of the API and the worker: text for people, or JSON (``MUTABAQA_LOG_FORMAT=json``)
for a log collector — one object a line with the time, level, logger, message and the
request id (``mutabaqa/request_ids.py``), plus the workflow's or activity's identity when
Temporal's loggers give it, and the trace and span ids when tracing is on."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from mutabaqa.request_ids import RequestIdLogFilter
from mutabaqa.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

#: What Temporal's workflow and activity loggers add to a record (``extra``), kept as given.
_TEMPORAL_EXTRAS = ("temporal_workflow", "temporal_activity")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:  # tracing on: the line names its trace and span
            line["trace_id"] = format(span.trace_id, "032x")
            line["span_id"] = format(span.span_id, "016x")
        for name in _TEMPORAL_EXTRAS:
            value = getattr(record, name, None)
            if isinstance(value, dict):
                line[name] = {key: str(item) for key, item in value.items()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The text format; a line outside any call shows ``[-]`` for its request id."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"
            try:
                return super().formatMessage(record)
            finally:
                record.request_id = None
        return super().formatMessage(record)


def log_handler(settings: Settings) -> logging.Handler:
    """A stderr handler in the configured format, adding the request id to each record."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdLogFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    return handler


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    """The root logger writes to stderr in the configured format; uvicorn's loggers go
    through it too (``uvicorn_log_config``)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(log_handler(settings))
    root.setLevel(level)


def uvicorn_log_config() -> dict[str, Any]:
    """Uvicorn's loggers without handlers of their own: their records reach the root's."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
