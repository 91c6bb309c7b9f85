"""Seals on the wire: the client side adds them, the worker side checks them.

- ``SealingInterceptor`` (a client interceptor, installed by ``connect_temporal``): every
  workflow start, Update (update-with-start included) and Signal the API, the worker's
  activities or the CLI send carries a ``mutabaqa-seal`` header, the HMAC of the message
  (``domain/seals.py``) under ``MUTABAQA_TEMPORAL_SEAL_KEY``.
- ``SealCheckingInterceptor`` (a worker interceptor, installed by ``build_worker``): a
  workflow believes a message only when its seal matches. An unsealed or wrongly sealed
  Update is refused by its validator (nothing reaches the history); a Signal is ignored and
  logged; a start fails the run before its first command (non-retryable). What a workflow
  sends on its own — child workflows (outbox deliveries, surveillance requests),
  continue-as-new, signals to other workflows — is sealed inside the worker with the same
  key, so no exemption exists that a caller from outside could use.

Workflow code never reads settings: the key is bound when the worker is built.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

from temporalio import client, workflow
from temporalio import worker as temporal_worker
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadConverter
from temporalio.exceptions import ApplicationError

from domain.seals import SEAL_HEADER, MessageKind, seal, verify
from mutabaqa.settings import Settings

#: The type of the failure an unsealed message gets.
UNSEALED = "unsealed-message"


def seal_key(settings: Settings) -> bytes:
    return settings.temporal_seal_key.get_secret_value().encode("utf-8")


def json_values(converter: PayloadConverter, args: Sequence[Any]) -> list[Any]:
    """The arguments as the JSON values the data converter writes for them."""
    values: list[Any] = []
    for payload in converter.to_payloads(args):
        encoding = payload.metadata.get("encoding", b"")
        if encoding == b"json/plain":
            values.append(json.loads(payload.data))
        elif encoding == b"binary/null":
            values.append(None)
        else:
            values.append({"binary": base64.b64encode(payload.data).decode()})
    return values


def _header(value: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


def _presented(headers: Mapping[str, Payload]) -> str | None:
    payload = headers.get(SEAL_HEADER)
    if payload is None:
        return None
    try:
        value = json.loads(payload.data)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


class Sealer:
    def __init__(self, key: bytes, converter: PayloadConverter) -> None:
        self._key = key
        self._converter = converter

    def headers(
        self,
        headers: Mapping[str, Payload],
        workflow_id: str,
        kind: MessageKind,
        name: str,
        args: Sequence[Any],
    ) -> dict[str, Payload]:
        value = seal(self._key, workflow_id, kind, name, json_values(self._converter, args))
        return {**headers, SEAL_HEADER: _header(value)}


# --- the client side -----------------------------------------------------------------------


class SealingInterceptor(client.Interceptor):
    def __init__(self, key: bytes, converter: PayloadConverter) -> None:
        self._sealer = Sealer(key, converter)

    def intercept_client(self, next: client.OutboundInterceptor) -> client.OutboundInterceptor:
        return _SealingOutbound(next, self._sealer)


class _SealingOutbound(client.OutboundInterceptor):
    def __init__(self, next: client.OutboundInterceptor, sealer: Sealer) -> None:
        super().__init__(next)
        self._sealer = sealer

    async def start_workflow(
        self, input: client.StartWorkflowInput
    ) -> client.WorkflowHandle[Any, Any]:
        input.headers = self._sealer.headers(
            input.headers, input.id, MessageKind.START, input.workflow, input.args
        )
        return await super().start_workflow(input)

    async def start_workflow_update(
        self, input: client.StartWorkflowUpdateInput
    ) -> client.WorkflowUpdateHandle[Any]:
        input.headers = self._sealer.headers(
            input.headers, input.id, MessageKind.UPDATE, input.update, input.args
        )
        return await super().start_workflow_update(input)

    async def start_update_with_start_workflow(
        self, input: client.StartWorkflowUpdateWithStartInput
    ) -> client.WorkflowUpdateHandle[Any]:
        start, update = input.start_workflow_input, input.update_workflow_input
        start.headers = self._sealer.headers(
            start.headers, start.id, MessageKind.START, start.workflow, start.args
        )
        update.headers = self._sealer.headers(
            update.headers, start.id, MessageKind.UPDATE, update.update, update.args
        )
        return await super().start_update_with_start_workflow(input)

    async def signal_workflow(self, input: client.SignalWorkflowInput) -> None:
        input.headers = self._sealer.headers(
            input.headers, input.id, MessageKind.SIGNAL, input.signal, input.args
        )
        await super().signal_workflow(input)


# --- the worker side -----------------------------------------------------------------------


class SealCheckingInterceptor(temporal_worker.Interceptor):
    """Binds the key to the workflows' inbound (checks) and outbound (seals) interceptors.

    ``since``: messages a workflow handled before this instant (workflow time, from the
    history, so replay agrees) are not checked: the histories of runs in flight when seals
    were introduced replay as they ran. Unset: every message is checked."""

    def __init__(self, key: bytes, since: datetime | None = None) -> None:
        self._key = key
        self._since = since

    def workflow_interceptor_class(
        self, input: temporal_worker.WorkflowInterceptorClassInput
    ) -> type[temporal_worker.WorkflowInboundInterceptor]:
        key, since = self._key, self._since

        class Bound(_CheckingInbound):
            _seal_key = key
            _seals_since = since

        return Bound


def _verified(
    key: bytes,
    since: datetime | None,
    headers: Mapping[str, Payload],
    kind: MessageKind,
    name: str,
    args: Sequence[Any],
) -> bool:
    moment = workflow.info().start_time if kind is MessageKind.START else workflow.now()
    if since is not None and moment < since:
        return True  # handled before seals existed (see ``SealCheckingInterceptor``)
    values = json_values(workflow.payload_converter(), args)
    return verify(key, _presented(headers), workflow.info().workflow_id, kind, name, values)


def _refuse(what: str) -> NoReturn:
    raise ApplicationError(
        f"{what} carries no valid seal: it was not sent by the API or a worker",
        {"status": 403, "kind": UNSEALED},
        type=UNSEALED,
        non_retryable=True,
    )


class _CheckingInbound(temporal_worker.WorkflowInboundInterceptor):
    _seal_key: bytes = b""
    _seals_since: datetime | None = None

    def init(self, outbound: temporal_worker.WorkflowOutboundInterceptor) -> None:
        super().init(_SealingWorkflowOutbound(outbound, self._seal_key))

    async def execute_workflow(self, input: temporal_worker.ExecuteWorkflowInput) -> Any:
        info = workflow.info()
        if not _verified(
            self._seal_key,
            self._seals_since,
            input.headers,
            MessageKind.START,
            info.workflow_type,
            input.args,
        ):
            workflow.logger.warning("refusing an unsealed start of %s", info.workflow_id)
            _refuse(f"the start of {info.workflow_type} {info.workflow_id}")
        return await super().execute_workflow(input)

    async def handle_signal(self, input: temporal_worker.HandleSignalInput) -> None:
        if not _verified(
            self._seal_key,
            self._seals_since,
            input.headers,
            MessageKind.SIGNAL,
            input.signal,
            input.args,
        ):
            workflow.logger.warning(
                "ignoring unsealed signal %r to %s", input.signal, workflow.info().workflow_id
            )
            return
        await super().handle_signal(input)

    def handle_update_validator(self, input: temporal_worker.HandleUpdateInput) -> None:
        if not _verified(
            self._seal_key,
            self._seals_since,
            input.headers,
            MessageKind.UPDATE,
            input.update,
            input.args,
        ):
            workflow.logger.warning(
                "refusing unsealed update %r to %s", input.update, workflow.info().workflow_id
            )
            _refuse(f"update {input.update!r}")
        super().handle_update_validator(input)

    async def handle_update_handler(self, input: temporal_worker.HandleUpdateInput) -> Any:
        # Updates without a validator (``created``) are checked here; for the others the
        # validator already did, and this agrees.
        if not _verified(
            self._seal_key,
            self._seals_since,
            input.headers,
            MessageKind.UPDATE,
            input.update,
            input.args,
        ):
            _refuse(f"update {input.update!r}")
        return await super().handle_update_handler(input)


class _SealingWorkflowOutbound(temporal_worker.WorkflowOutboundInterceptor):
    """What a workflow sends is sealed inside the worker (deterministic: same key, same
    arguments, same seal on replay)."""

    def __init__(self, next: temporal_worker.WorkflowOutboundInterceptor, key: bytes) -> None:
        super().__init__(next)
        self._key = key

    def _headers(
        self,
        headers: Mapping[str, Payload],
        workflow_id: str,
        kind: MessageKind,
        name: str,
        args: Sequence[Any],
    ) -> dict[str, Payload]:
        return Sealer(self._key, workflow.payload_converter()).headers(
            headers, workflow_id, kind, name, args
        )

    async def start_child_workflow(
        self, input: temporal_worker.StartChildWorkflowInput
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        input.headers = self._headers(
            input.headers, input.id, MessageKind.START, input.workflow, input.args
        )
        return await super().start_child_workflow(input)

    def continue_as_new(self, input: temporal_worker.ContinueAsNewInput) -> NoReturn:
        info = workflow.info()
        name = input.workflow or info.workflow_type
        input.headers = self._headers(
            input.headers, info.workflow_id, MessageKind.START, name, input.args
        )
        super().continue_as_new(input)

    async def signal_external_workflow(
        self, input: temporal_worker.SignalExternalWorkflowInput
    ) -> None:
        input.headers = self._headers(
            input.headers, input.workflow_id, MessageKind.SIGNAL, input.signal, input.args
        )
        await super().signal_external_workflow(input)

    async def signal_child_workflow(self, input: temporal_worker.SignalChildWorkflowInput) -> None:
        input.headers = self._headers(
            input.headers, input.child_workflow_id, MessageKind.SIGNAL, input.signal, input.args
        )
        await super().signal_child_workflow(input)
