"""Determinism guard: recorded histories of both workflows replay against today's code.

A change to a workflow that alters the commands it issues for a history already written
(an activity added, removed or reordered, a timer moved) makes a running workflow fail on
the next worker; put such a change behind ``workflow.patched()``. The histories in
``histories/`` were recorded from real runs; re-record them only on purpose (a release
that no longer has running workflows of the old shape) with::

    MUTABAQA_RECORD_HISTORIES=1 .venv/bin/pytest -q tests/workflows/test_replay.py \
        -k record_histories
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from api.app import create_app
from domain.seals import SEAL_HEADER
from models.request_payloads import RequestRef, RequestWorkflowInput
from models.requests import CertificationRequest
from models.system import CanaryInput
from models.workflow_names import REQUEST_WORKFLOW
from mutabaqa.clients import connect_temporal
from mutabaqa.codec import ENCODING, codec_for, data_converter
from mutabaqa.seals import SealCheckingInterceptor, seal_key
from mutabaqa.settings import Settings
from tests.api.helpers import API
from tests.api.lab_helpers import (
    FAILING_PARAFFIN,
    FFP2_PASSING,
    make_lab,
    put_result,
    record_all,
    to_evaluated,
)
from tests.api.requests_helpers import (
    PNG,
    act,
    create_request,
    make_cast,
    to_review,
    upload,
    wait_status,
)
from tests.conftest import RunningWorker
from workflows.canary import CanaryWorkflow
from workflows.certificate import CertificateWorkflow
from workflows.outbox import OutboxDeliveryWorkflow
from workflows.request import RequestWorkflow

HISTORIES = Path(__file__).parent / "histories"
#: File name -> the workflow id it was recorded under (``to_json`` leaves the id out).
MANIFEST = HISTORIES / "workflows.json"
REQUEST_FILE = "certification_request.json"
CANARY_FILE = "canary.json"
#: The certificate of the recorded request: its first issue's run (suspended, restored,
#: reissued: it continues as new) and the new issue's run (withdrawn: it completes).
CERTIFICATE_FILES = ("certificate_issue_0.json", "certificate_issue_1.json")
#: The Updates the rest of the request handlers need: a refusal overturned on appeal and
#: then granted (its certificate is terminated by the holder), a refusal upheld on appeal,
#: a declined application, a withdrawn draft.
APPEALS_FILE = "request_overturned.json"
UPHELD_FILE = "request_upheld.json"
DECLINED_FILE = "request_declined.json"
WITHDRAWN_FILE = "request_withdrawn.json"
TERMINATED_FILE = "certificate_terminated.json"
OTHER_REQUEST_FILES = (APPEALS_FILE, UPHELD_FILE, DECLINED_FILE, WITHDRAWN_FILE)
RECORDED_CERTIFICATE_UPDATES = {"suspend", "restore", "reissue", "withdraw", "terminate"}
RECORDING = os.environ.get("MUTABAQA_RECORD_HISTORIES") == "1"
#: The histories are recorded by the test session, with the development keys (payload
#: codec and seals), which the replay uses too.
KEYS = Settings()

#: The Updates the recorded request went through: every handler but the refusal branch.
RECORDED_UPDATES = {
    "created", "upload_document", "submit", "request_info", "respond", "accept",
    "reject_sample", "receive_sample", "record_result", "upload_evidence", "submit_results",
    "retract", "verify_results", "request_retest", "grant",
    "refuse", "appeal", "overturn", "uphold", "decline", "withdraw",
}  # fmt: skip


def _replayer(*workflows: type) -> Replayer:
    """Replays as the worker runs: encrypted payloads, seals checked."""
    return Replayer(
        workflows=list(
            workflows
            or (RequestWorkflow, CanaryWorkflow, CertificateWorkflow, OutboxDeliveryWorkflow)
        ),
        data_converter=data_converter(KEYS),
        interceptors=[SealCheckingInterceptor(seal_key(KEYS))],
    )


def _load(name: str) -> WorkflowHistory:
    ids: dict[str, str] = json.loads(MANIFEST.read_text())
    return WorkflowHistory.from_json(ids[name], (HISTORIES / name).read_text())


def _update_names(history: WorkflowHistory) -> set[str]:
    return {
        event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    }


async def _histories(*items: WorkflowHistory) -> AsyncIterator[WorkflowHistory]:
    for item in items:
        yield item


# --- the recorded histories ----------------------------------------------------------------


async def test_recorded_histories_replay_against_the_current_workflows() -> None:
    request, canary = _load(REQUEST_FILE), _load(CANARY_FILE)
    first, second = (_load(name) for name in CERTIFICATE_FILES)
    others = [_load(name) for name in OTHER_REQUEST_FILES]
    terminated = _load(TERMINATED_FILE)
    # The recordings cover what they claim: every request handler, a finished canary, and
    # certificates through every Update, a reissue (continue-as-new) and their ends.
    assert set().union(*(_update_names(h) for h in [request, *others])) >= RECORDED_UPDATES
    certificate_updates = _update_names(first) | _update_names(second)
    assert certificate_updates | _update_names(terminated) >= RECORDED_CERTIFICATE_UPDATES
    completed = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    for history in (request, canary, second, terminated, *others):
        assert history.events[-1].event_type == completed, history.workflow_id
    continued = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert first.events[-1].event_type == continued
    # Recorded as the product runs now: every start and Update sealed, payloads encrypted.
    for history in (request, canary, first, second):
        started = history.events[0].workflow_execution_started_event_attributes
        assert SEAL_HEADER in started.header.fields
        assert started.input.payloads[0].metadata["encoding"] == ENCODING
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                accepted = event.workflow_execution_update_accepted_event_attributes
                assert SEAL_HEADER in accepted.accepted_request.input.header.fields
    results = await _replayer().replay_workflows(
        _histories(request, canary, first, second, terminated, *others),
        raise_on_replay_failure=True,
    )
    assert results.replay_failures == {}


#: What a workflow payload says of the person acting: ids and roles, never an e-mail or a
#: name (personal data stays in the database, and renaming a user cannot break a replay).
ACTOR_FIELDS = {"user_id", "roles", "organization_id", "centre_code"}


def _actors(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "actor" and isinstance(item, dict):
                yield item
            yield from _actors(item)
    elif isinstance(value, list):
        for item in value:
            yield from _actors(item)


def test_workflow_payloads_carry_actors_as_ids_and_roles_only() -> None:
    request = _load(REQUEST_FILE)
    started = request.events[0].workflow_execution_started_event_attributes.input.payloads
    updates = [
        event.workflow_execution_update_accepted_event_attributes.accepted_request.input
        for event in request.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    stored: list[Payload] = [*started, *(p for update in updates for p in update.args.payloads)]
    inputs = [codec_for(KEYS).decrypt(p) for p in stored]
    actors = [actor for p in inputs for actor in _actors(json.loads(p.data))]
    assert len(actors) > len(RECORDED_UPDATES)  # the creator and every person who acted
    for actor in actors:
        assert set(actor) == ACTOR_FIELDS, actor


@workflow.defn(name=REQUEST_WORKFLOW)
class ReorderedRequestWorkflow(RequestWorkflow):
    """Today's request workflow with one change that breaks determinism: a timer before the
    first activity (as if someone added a delay without ``workflow.patched``)."""

    @workflow.run
    async def run(self, params: RequestWorkflowInput) -> RequestRef:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(params)


async def test_a_workflow_change_that_breaks_determinism_fails_the_replay() -> None:
    def replayer(workflow_class: type) -> Replayer:
        return Replayer(
            workflows=[workflow_class],
            data_converter=data_converter(KEYS),
            interceptors=[SealCheckingInterceptor(seal_key(KEYS))],
            # The variant lives in this test module, which the sandbox should not re-import.
            workflow_runner=UnsandboxedWorkflowRunner(),
        )

    history = _load(REQUEST_FILE)
    # Same runner, unchanged workflow: it replays; so the failure below is the change's.
    await replayer(RequestWorkflow).replay_workflow(history, raise_on_replay_failure=True)
    with pytest.raises(workflow.NondeterminismError, match="Timer"):
        await replayer(ReorderedRequestWorkflow).replay_workflow(
            history, raise_on_replay_failure=True
        )


# --- histories of this test session --------------------------------------------------------


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _workflow_id(engine: Engine, request_id: str) -> str:
    with Session(engine) as session:
        row = session.get(CertificationRequest, request_id)
        assert row is not None
        return row.workflow_id


def test_this_sessions_request_histories_replay(
    client: TestClient, settings: Settings, engine: Engine
) -> None:
    """Every request workflow this session's worker has run so far (at least the one made
    here, still running) replays against the code that produced it."""
    cast = make_cast(client, settings)
    request = to_review(client, cast)
    assert act(client, cast.officer_auth, request["id"], "accept", {}).status_code == 200
    mine = _workflow_id(engine, request["id"])

    async def replay_session() -> tuple[list[str], Mapping[str, Exception]]:
        temporal = await connect_temporal(settings)
        query = f"TaskQueue = '{settings.temporal_task_queue}'"
        deadline = time.monotonic() + 15
        while mine not in {w.id async for w in temporal.list_workflows(query)}:
            assert time.monotonic() < deadline, "the request is not visible in Temporal"
            await asyncio.sleep(0.2)
        replayed: list[str] = []

        async def histories() -> AsyncIterator[WorkflowHistory]:
            async for history in temporal.list_workflows(query).map_histories():
                replayed.append(history.workflow_id)
                yield history

        results = await _replayer().replay_workflows(histories(), raise_on_replay_failure=False)
        return replayed, results.replay_failures

    replayed, failures = asyncio.run(replay_session())
    assert mine in replayed
    assert failures == {}


# --- recording (on purpose only) -----------------------------------------------------------


def _scrubbed(history: WorkflowHistory) -> str:
    """The history as JSON, one event a line, without the recording machine's name (worker
    identities and sticky task queues are ``pid@host``; replay does not use them)."""
    data: Any = json.loads(history.to_json())

    def scrub(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: scrub(value) for key, value in node.items()}
        if isinstance(node, list):
            return [scrub(value) for value in node]
        if isinstance(node, str) and re.fullmatch(r"\d+@\S+", node):
            return "recorder"
        return node

    events = [json.dumps(scrub(event), separators=(",", ":")) for event in data["events"]]
    return '{"events":[\n' + ",\n".join(events) + "\n]}\n"


def _drive_full_request(
    client: TestClient, settings: Settings, engine: Engine
) -> tuple[str, str, dict[str, str]]:
    """One FFP2 request through every handler but refusal: information round, a rejected
    sample, a retracted submission, a failing item, a retest round and the grant."""
    cast = make_cast(client, settings)
    lab = make_lab(client, cast)
    maker, officer, tech = cast.maker_auth, cast.officer_auth, cast.tech_auth
    rid = str(to_review(client, cast)["id"])

    def ok(action: str, headers: dict[str, str], body: dict[str, Any] | None = None) -> None:
        response = act(client, headers, rid, action, body)
        assert response.status_code == 200, (action, response.text)

    ok("request_info", officer, {"message": "Please send the filter test certificate."})
    added = upload(client, maker, rid, "technical_file", filename="technical_file_v2.pdf")
    assert added.status_code == 201, added.text
    ok("respond", maker, {"message": "Updated technical file uploaded."})
    wait_status(client, officer, rid, "application_review")
    ok("accept", officer, {})
    ok("reject_sample", tech, {"reason": "Box damaged in transit."})
    ok("receive_sample", tech, {"sample_ref": "CTTH-REC-1", "condition": "Sealed box of 20"})
    record_all(client, tech, rid, {"PEN-PARAFFIN": FAILING_PARAFFIN})
    evidence = client.post(f"{API}/requests/{rid}/evidence", headers=tech,
                           files={"file": ("sample.png", PNG, "image/png")})  # fmt: skip
    assert evidence.status_code == 201, evidence.text
    ok("submit_results", tech)
    ok("retract", tech, {"reason": "Wrong equipment id on one item."})
    ok("submit_results", tech)
    ok("verify_results", lab.verifier_auth)
    ok("request_retest", officer, {"items": ["PEN-PARAFFIN"], "reason": "Fresh sample set."})
    again = put_result(client, tech, rid, "PEN-PARAFFIN", FFP2_PASSING["PEN-PARAFFIN"])
    assert again.status_code == 201, again.text
    ok("submit_results", tech)
    ok("verify_results", lab.verifier_auth)
    granted = act(client, officer, rid, "grant")
    assert granted.status_code == 200, granted.text
    return _workflow_id(engine, rid), str(granted.json()["certificate_number"]), officer


def _drive_certificate(client: TestClient, number: str, officer: dict[str, str]) -> None:
    """Suspend, restore and reissue the first issue; withdraw the second."""

    def ok(action: str, body: dict[str, str]) -> None:
        key = {"Idempotency-Key": f"record-{action}-{uuid.uuid4().hex}"}
        deadline = time.monotonic() + 30
        while True:  # during the reissue's switch: 503 + Retry-After, then the new run
            response = client.post(
                f"{API}/certificates/{number}/actions/{action}", json=body, headers=officer | key
            )
            if response.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert response.status_code == 200, (action, response.text)

    ok("suspend", {"reason": "Market surveillance finding"})
    ok("restore", {"reason": "Corrective action verified"})
    ok("reissue", {"reason": "Revised scope", "scope": "Filtering half masks, FFP2 NR D"})
    ok("withdraw", {"reason": "Product discontinued"})


def _drive_other_requests(
    client: TestClient, settings: Settings, engine: Engine
) -> tuple[dict[str, str], str, dict[str, str]]:
    """The handlers the full request does not take: refusal, appeal, overturn and a grant
    (whose certificate the holder terminates); a refusal upheld; a decline; a withdrawal.
    Returns each file's request workflow id, the terminated certificate's number and the
    holder's headers."""
    cast = make_cast(client, settings)
    lab = make_lab(client, cast)
    maker, officer, officer2 = cast.maker_auth, cast.officer_auth, lab.officer2_auth

    def ok(rid: str, action: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
        response = act(client, headers, rid, action, body)
        assert response.status_code == 200, (action, response.text)
        return response.json()

    overturned = to_evaluated(client, cast, lab)
    ok(overturned, "refuse", officer, {"reason": "Breathing resistance too high."})
    ok(overturned, "appeal", maker, {"reason": "The flow rate was wrong."})
    ok(overturned, "overturn", officer2, {"reason": "Method error."})
    number = str(ok(overturned, "grant", officer2, {})["certificate_number"])
    upheld = to_evaluated(client, cast, lab)
    ok(upheld, "refuse", officer, {"reason": "Breathing resistance too high."})
    ok(upheld, "appeal", maker, {"reason": "The flow rate was wrong."})
    ok(upheld, "uphold", officer2, {"reason": "The method was right."})
    declined = str(to_review(client, cast)["id"])
    ok(declined, "decline", officer, {"reason": "Outside the scheme's scope."})
    withdrawn = str(create_request(client, cast)["id"])
    ok(withdrawn, "withdraw", maker, {"reason": "Entered by mistake."})
    ids = {
        APPEALS_FILE: overturned,
        UPHELD_FILE: upheld,
        DECLINED_FILE: declined,
        WITHDRAWN_FILE: withdrawn,
    }
    return {name: _workflow_id(engine, rid) for name, rid in ids.items()}, number, maker


def _terminate(client: TestClient, number: str, holder: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while True:  # the certificate's workflow starts from the outbox: wait for it
        response = client.post(
            f"{API}/certificates/{number}/actions/terminate",
            json={"reason": "Product discontinued"},
            headers=holder | {"Idempotency-Key": f"record-terminate-{uuid.uuid4().hex}"},
        )
        if response.status_code not in (404, 503) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert response.status_code == 200, response.text


async def _finished_history(temporal: Client, workflow_id: str) -> WorkflowHistory:
    handle = temporal.get_workflow_handle(workflow_id)
    await asyncio.wait_for(handle.result(), 60)
    return await handle.fetch_history()


@pytest.mark.skipif(not RECORDING, reason="set MUTABAQA_RECORD_HISTORIES=1 to re-record")
def test_record_histories(client: TestClient, settings: Settings, engine: Engine) -> None:
    workflow_id, number, officer = _drive_full_request(client, settings, engine)
    _drive_certificate(client, number, officer)
    others, terminated, holder = _drive_other_requests(client, settings, engine)
    _terminate(client, terminated, holder)

    async def record() -> dict[str, WorkflowHistory]:
        temporal = await connect_temporal(settings)
        canary = await temporal.start_workflow(
            CanaryWorkflow.run,
            CanaryInput(delay_seconds=1.0, note="recorded"),
            id=f"canary-{uuid.uuid4()}",
            task_queue=settings.temporal_task_queue,
            execution_timeout=timedelta(seconds=60),
        )
        certificate = f"certificate-{number}"
        second = await _finished_history(temporal, certificate)
        started = second.events[0].workflow_execution_started_event_attributes
        first = await temporal.get_workflow_handle(
            certificate, run_id=started.continued_execution_run_id
        ).fetch_history()
        return {
            REQUEST_FILE: await _finished_history(temporal, workflow_id),
            CANARY_FILE: await _finished_history(temporal, canary.id),
            CERTIFICATE_FILES[0]: first,
            CERTIFICATE_FILES[1]: second,
            TERMINATED_FILE: await _finished_history(temporal, f"certificate-{terminated}"),
        } | {name: await _finished_history(temporal, wid) for name, wid in others.items()}

    histories = asyncio.run(record())
    requests = [histories[REQUEST_FILE], *(histories[name] for name in OTHER_REQUEST_FILES)]
    assert set().union(*(_update_names(h) for h in requests)) >= RECORDED_UPDATES
    HISTORIES.mkdir(exist_ok=True)
    for name, history in histories.items():
        (HISTORIES / name).write_text(_scrubbed(history))
    ids = {name: history.workflow_id for name, history in histories.items()}
    MANIFEST.write_text(json.dumps(ids, indent=1, sort_keys=True) + "\n")
