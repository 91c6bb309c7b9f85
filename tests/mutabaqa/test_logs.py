"""Log lines: the JSON shape, the text shape, and which request ids are believed."""

from __future__ import annotations

import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from mutabaqa.logs import JsonFormatter, TextFormatter
from mutabaqa.request_ids import REQUEST_ID, RequestIdLogFilter, sane


def _record(message: str = "hello %s", *args: object) -> logging.LogRecord:
    record = logging.LogRecord("mutabaqa.test", logging.INFO, __file__, 1, message, args, None)
    RequestIdLogFilter().filter(record)
    return record


def test_a_json_line_has_the_request_id_and_the_trace_when_there_is_one() -> None:
    token = REQUEST_ID.set("call-1")
    try:
        plain = json.loads(JsonFormatter().format(_record("hello %s", "مطابقة")))
        tracer = TracerProvider().get_tracer("test")
        with tracer.start_as_current_span("work") as span:
            traced = json.loads(JsonFormatter().format(_record()))
    finally:
        REQUEST_ID.reset(token)
    assert plain["message"] == "hello مطابقة"
    assert (plain["request_id"], plain["level"], plain["logger"]) == (
        "call-1",
        "INFO",
        "mutabaqa.test",
    )
    assert "trace_id" not in plain
    assert traced["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert traced["span_id"] == format(span.get_span_context().span_id, "016x")


def test_a_text_line_shows_the_request_id_or_a_dash() -> None:
    assert "[-] hello" in TextFormatter().format(_record("hello"))
    token = REQUEST_ID.set("call-2")
    try:
        assert "[call-2] hello" in TextFormatter().format(_record("hello"))
    finally:
        REQUEST_ID.reset(token)


def test_only_sane_request_ids_are_believed() -> None:
    assert sane("0f8fad5b-d9cb-469f-a165-70867728950e") is not None
    assert sane("trace.1:2_x") is not None
    for value in (None, "", "-leading", "a b", "a\nb", "x" * 129, "é", "<tag>"):
        assert sane(value) is None, value
