"""The request id: one id per HTTP call, in every log line it causes — the API's, and those
of the workflows and activities it sets going.

- The API takes the caller's ``X-Request-ID`` when it is sane (``sane``), else makes one,
  and echoes it in the response (``api/request_ids.py``); it lives in ``REQUEST_ID``, a
  context variable, for the call.
- ``RequestIdClientInterceptor`` (installed by ``connect_temporal``) copies it into a
  Temporal header, ``mutabaqa-request-id``, of every start, Update and Signal — the way
  the seals travel (``mutabaqa/seals.py``); the header is not part of the seal.
- ``RequestIdWorkerInterceptor`` (installed by ``build_worker``) reads it back: a workflow's
  run, Update handler or Signal handler runs with the id of the message that started it
  (each handler is an asyncio task of its own, so ids never mix), and passes it on in the
  header of each activity, child workflow and signal it sends; an activity runs with the
  id of its header. A request workflow's own later steps (timers) keep the id of the call
  that started it.
- ``RequestIdLogFilter`` puts the current id in every log record (``request_id``), which
  the JSON log format writes (``mutabaqa/logs.py``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from logging import Filter, LogRecord
from typing import Any, NoReturn

from temporalio import client, workflow
from temporalio import worker as temporal_worker
from temporalio.api.common.v1 import Payload

#: The Temporal header that carries the id.
REQUEST_ID_HEADER = "mutabaqa-request-id"
#: The HTTP header (request and response).
HTTP_HEADER = "X-Request-ID"

REQUEST_ID: ContextVar[str | None] = ContextVar("mutabaqa_request_id", default=None)

#: What a caller's id may look like: letters, digits and ``._:-``, at most 128 characters
#: (a UUID, a proxy's trace id); anything else is replaced, never logged as given.
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane(value: str | None) -> str | None:
    """``value`` if it may be used as a request id, else None."""
    return value if value is not None and _SANE.fullmatch(value) else None


def _payload(value: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


def read_header(headers: Mapping[str, Payload]) -> str | None:
    payload = headers.get(REQUEST_ID_HEADER)
    if payload is None:
        return None
    try:
        value = json.loads(payload.data)
    except ValueError:
        return None
    return sane(value) if isinstance(value, str) else None


def with_header(headers: Mapping[str, Payload]) -> Mapping[str, Payload]:
    """``headers`` plus the current request id, if there is one."""
    current = REQUEST_ID.get()
    if current is None:
        return headers
    return {**headers, REQUEST_ID_HEADER: _payload(current)}


class RequestIdLogFilter(Filter):
    """Adds ``request_id`` (the current one, or None) to every record it sees."""

    def filter(self, record: LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


# --- the client side -----------------------------------------------------------------------


class RequestIdClientInterceptor(client.Interceptor):
    def intercept_client(self, next: client.OutboundInterceptor) -> client.OutboundInterceptor:
        return _ClientOutbound(next)


class _ClientOutbound(client.OutboundInterceptor):
    async def start_workflow(
        self, input: client.StartWorkflowInput
    ) -> client.WorkflowHandle[Any, Any]:
        input.headers = with_header(input.headers)
        return await super().start_workflow(input)

    async def start_workflow_update(
        self, input: client.StartWorkflowUpdateInput
    ) -> client.WorkflowUpdateHandle[Any]:
        input.headers = with_header(input.headers)
        return await super().start_workflow_update(input)

    async def start_update_with_start_workflow(
        self, input: client.StartWorkflowUpdateWithStartInput
    ) -> client.WorkflowUpdateHandle[Any]:
        start, update = input.start_workflow_input, input.update_workflow_input
        start.headers = with_header(start.headers)
        update.headers = with_header(update.headers)
        return await super().start_update_with_start_workflow(input)

    async def signal_workflow(self, input: client.SignalWorkflowInput) -> None:
        input.headers = with_header(input.headers)
        await super().signal_workflow(input)


# --- the worker side -----------------------------------------------------------------------


class RequestIdWorkerInterceptor(temporal_worker.Interceptor):
    def intercept_activity(
        self, next: temporal_worker.ActivityInboundInterceptor
    ) -> temporal_worker.ActivityInboundInterceptor:
        return _ActivityInbound(next)

    def workflow_interceptor_class(
        self, input: temporal_worker.WorkflowInterceptorClassInput
    ) -> type[temporal_worker.WorkflowInboundInterceptor]:
        return _WorkflowInbound


class _ActivityInbound(temporal_worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: temporal_worker.ExecuteActivityInput) -> Any:
        # A synchronous activity runs in a copy of this context (temporalio copies it).
        token = REQUEST_ID.set(read_header(input.headers))
        try:
            return await super().execute_activity(input)
        finally:
            REQUEST_ID.reset(token)


class _WorkflowInbound(temporal_worker.WorkflowInboundInterceptor):
    def init(self, outbound: temporal_worker.WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound))

    async def execute_workflow(self, input: temporal_worker.ExecuteWorkflowInput) -> Any:
        REQUEST_ID.set(read_header(input.headers))  # this run's own task
        return await super().execute_workflow(input)

    async def handle_signal(self, input: temporal_worker.HandleSignalInput) -> None:
        REQUEST_ID.set(read_header(input.headers))  # each handler is a task of its own
        await super().handle_signal(input)

    async def handle_update_handler(self, input: temporal_worker.HandleUpdateInput) -> Any:
        REQUEST_ID.set(read_header(input.headers))
        return await super().handle_update_handler(input)


class _WorkflowOutbound(temporal_worker.WorkflowOutboundInterceptor):
    def start_activity(
        self, input: temporal_worker.StartActivityInput
    ) -> workflow.ActivityHandle[Any]:
        input.headers = with_header(input.headers)
        return super().start_activity(input)

    def start_local_activity(
        self, input: temporal_worker.StartLocalActivityInput
    ) -> workflow.ActivityHandle[Any]:
        input.headers = with_header(input.headers)
        return super().start_local_activity(input)

    async def start_child_workflow(
        self, input: temporal_worker.StartChildWorkflowInput
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        input.headers = with_header(input.headers)
        return await super().start_child_workflow(input)

    async def signal_external_workflow(
        self, input: temporal_worker.SignalExternalWorkflowInput
    ) -> None:
        input.headers = with_header(input.headers)
        await super().signal_external_workflow(input)

    def continue_as_new(self, input: temporal_worker.ContinueAsNewInput) -> NoReturn:
        input.headers = with_header(input.headers)
        super().continue_as_new(input)
