"""Seals: reaching the Temporal frontend is not enough to act. A client that holds the
payload codec (so its payloads decode) but not the seal key — or the wrong one — cannot
make an officer's decision, fake a surveillance outcome or start a request past its
checks; the same messages sealed by the product's own client go through."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from api.app import create_app
from domain.keys import client_key, update_id
from domain.permissions import Actor, Role
from domain.seals import MessageKind, seal, verify
from models.certificate_lifecycle import SurveillanceOutcome
from models.lab import Certificate
from models.request_payloads import ActionInput, ActionResult, RequestWorkflowInput, SchemeSnapshot
from models.requests import CertificationRequest, RequestKind, RequestStatus
from models.workflow_names import REQUEST_WORKFLOW
from mutabaqa.clients import connect_temporal
from mutabaqa.codec import data_converter
from mutabaqa.seals import UNSEALED, SealCheckingInterceptor, SealingInterceptor, seal_key
from mutabaqa.settings import Settings
from mutabaqa.timing import timing_of
from records.canonical import action_digest
from tests.api.lab_helpers import Lab, make_lab, to_evaluated
from tests.api.requests_helpers import Cast, act, get, make_cast
from tests.conftest import RunningWorker
from workflows.certificate import CertificateWorkflow
from workflows.outbox import OutboxDeliveryWorkflow
from workflows.request import RequestWorkflow

FORGERS = ("no seal", "wrong key")
#: A certificate's run recorded before seals existed (its start, Updates and child starts
#: carry none): what a deployment has in flight when it upgrades.
PRE_SEALS = Path(__file__).parent / "histories" / "pre_seals" / "certificate_issue_0.json"


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


@pytest.fixture(scope="module")
def lab(client: TestClient, cast: Cast) -> Lab:
    return make_lab(client, cast)


async def forger(settings: Settings, how: str) -> Client:
    """Someone who reaches Temporal and has the payload codec, not the seal key."""
    converter = data_converter(settings)
    interceptors = (
        [SealingInterceptor(b"a guessed key, not the deployment's", converter.payload_converter)]
        if how == "wrong key"
        else []
    )
    return await Client.connect(
        settings.resolved_temporal_address, data_converter=converter, interceptors=interceptors
    )


def _workflow_id(engine: Engine, request_id: str) -> str:
    with Session(engine) as session:
        row = session.get(CertificationRequest, request_id)
        assert row is not None
        return row.workflow_id


def _events(settings: Settings, workflow_id: str) -> list[Any]:
    async def fetch() -> list[Any]:
        temporal = await connect_temporal(settings)
        return list((await temporal.get_workflow_handle(workflow_id).fetch_history()).events)

    return asyncio.run(fetch())


# --- the seal itself -------------------------------------------------------------------------


def test_a_seal_binds_every_part_of_the_message() -> None:
    key = b"k" * 32
    args = [
        {
            "actor": {"user_id": "u1", "roles": ["compliance_officer"]},
            "key": "client:1",
            "body": {"reason": "x"},
        }
    ]
    sealed = seal(key, "wf-1", MessageKind.UPDATE, "grant", args)
    assert verify(key, sealed, "wf-1", MessageKind.UPDATE, "grant", args)
    other_actor = [{**args[0], "actor": {"user_id": "u2", "roles": ["compliance_officer"]}}]
    other_roles = [{**args[0], "actor": {"user_id": "u1", "roles": ["manufacturer"]}}]
    other_body = [{**args[0], "body": {"reason": "y"}}]
    for changed in (
        ("wf-2", MessageKind.UPDATE, "grant", args),
        ("wf-1", MessageKind.SIGNAL, "grant", args),
        ("wf-1", MessageKind.UPDATE, "refuse", args),
        ("wf-1", MessageKind.UPDATE, "grant", other_actor),
        ("wf-1", MessageKind.UPDATE, "grant", other_roles),
        ("wf-1", MessageKind.UPDATE, "grant", [{**args[0], "key": "client:2"}]),
        ("wf-1", MessageKind.UPDATE, "grant", other_body),
    ):
        assert not verify(key, sealed, *changed), changed
    assert not verify(b"x" * 32, sealed, "wf-1", MessageKind.UPDATE, "grant", args)
    assert not verify(key, None, "wf-1", MessageKind.UPDATE, "grant", args)


# --- Updates ---------------------------------------------------------------------------------


def test_a_forged_grant_is_refused_and_changes_nothing(
    client: TestClient, settings: Settings, engine: Engine, cast: Cast, lab: Lab
) -> None:
    rid = to_evaluated(client, cast, lab)
    workflow_id = _workflow_id(engine, rid)
    officer = Actor(user_id=cast.officer["id"], roles=(Role.COMPLIANCE_OFFICER,))

    def command() -> ActionInput:
        return ActionInput(
            action="grant",
            actor=officer,
            body={},
            key=client_key(uuid.uuid4().hex),
            body_hash=action_digest("grant", {}),
        )

    async def send(temporal: Client, cmd: ActionInput) -> ActionResult:
        handle = temporal.get_workflow_handle(workflow_id)
        result: ActionResult = await handle.execute_update(
            "grant", cmd, id=update_id(cmd.key, cmd.body_hash), result_type=ActionResult
        )
        return result

    for how in FORGERS:
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            asyncio.run(_with(forger(settings, how), lambda t: send(t, command())))
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == UNSEALED, (how, cause)

    # Nothing changed: the record, the workflow's own state, the history.
    assert get(client, cast.officer_auth, rid)["status"] == "evaluated"
    with Session(engine) as session:
        assert session.exec(select(Certificate).where(Certificate.request_id == rid)).all() == []
    facts = asyncio.run(
        _with(
            connect_temporal(settings), lambda t: t.get_workflow_handle(workflow_id).query("facts")
        )
    )
    assert facts["status"] == "evaluated"
    accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    names = [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in _events(settings, workflow_id)
        if e.event_type == accepted
    ]
    assert "grant" not in names

    # The same decision through the API (sealed) goes through: the forgery was well formed.
    granted = act(client, cast.officer_auth, rid, "grant")
    assert granted.status_code == 200, granted.text
    assert granted.json()["status"] == "certified"


async def _with(connecting: Any, call: Any) -> Any:
    temporal = await connecting
    return await call(temporal)


# --- Signals ---------------------------------------------------------------------------------


@pytest.mark.timers
def test_a_forged_surveillance_outcome_is_ignored(
    settings: Settings, engine: Engine, cast: Cast, lab: Lab
) -> None:
    surveilled = settings.model_copy(
        update={"surveillance_interval_seconds": 2.0, "surveillance_deadline_seconds": 600.0}
    )
    with TestClient(create_app(surveilled)) as short:
        rid = to_evaluated(short, cast, lab)
        granted = act(short, cast.officer_auth, rid, "grant")
        assert granted.status_code == 200, granted.text
        number = str(granted.json()["certificate_number"])
    target = f"certificate-{number}"

    def state() -> dict[str, Any]:
        return dict(
            asyncio.run(
                _with(
                    connect_temporal(settings),
                    lambda t: t.get_workflow_handle(target).query("state"),
                )
            )
        )

    deadline = time.monotonic() + 30
    while (open_request := state()["surveillance_request"]) is None:
        assert time.monotonic() < deadline, "no surveillance opened"
        time.sleep(0.2)
    failed = SurveillanceOutcome(request_workflow_id=open_request, passed=False, status="refused")
    for how in FORGERS:
        asyncio.run(
            _with(
                forger(settings, how),
                lambda t: t.get_workflow_handle(target).signal("surveillance_outcome", failed),
            )
        )

    # Both signals reached the workflow and were handled (a task completed after them)...
    def handled() -> bool:
        events = _events(settings, target)
        signalled = [
            i
            for i, e in enumerate(events)
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        ]
        done = [
            i
            for i, e in enumerate(events)
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        ]
        return len(signalled) >= 2 and bool(done) and done[-1] > signalled[-1]

    deadline = time.monotonic() + 30
    while not handled():
        assert time.monotonic() < deadline, "the forged signals were never handled"
        time.sleep(0.2)
    # ...and ignored: the surveillance is still open, the certificate still active.
    after = state()
    assert after["surveillance_request"] == open_request
    assert after["status"] == "active"
    with Session(engine) as session:
        rows = session.exec(select(Certificate).where(Certificate.number == number)).all()
        assert [row.status.value for row in rows] == ["active"]

    # The same outcome sealed (as the outbox would send it) suspends the certificate.
    asyncio.run(
        _with(
            connect_temporal(settings),
            lambda t: t.get_workflow_handle(target).signal("surveillance_outcome", failed),
        )
    )
    deadline = time.monotonic() + 30
    while state()["status"] != "suspended":
        assert time.monotonic() < deadline, "a sealed failed outcome did not suspend"
        time.sleep(0.2)


# --- Starts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", FORGERS)
def test_a_forged_start_fails_before_its_first_activity(
    how: str, settings: Settings, engine: Engine, cast: Cast
) -> None:
    """A request that would begin at the sample stage, as a surveillance request does, at a
    centre of the forger's choosing: the run fails at once and writes nothing."""
    request_id = uuid.uuid4().hex
    forged = RequestWorkflowInput(
        request_id=request_id,
        organization_id=cast.org["id"],
        product_id=cast.product["id"],
        product_name="Forged mask",
        scheme=SchemeSnapshot(
            id=1, code="FFP2", version=1, sector="ppe", title="FFP2", required_documents=()
        ),
        kind=RequestKind.CERTIFICATION,
        scope="Filtering half masks",
        actor=Actor(
            user_id=cast.maker["id"], roles=(Role.MANUFACTURER,), organization_id=cast.org["id"]
        ),
        timing=timing_of(settings),
        initial_status=RequestStatus.AWAITING_SAMPLE,
        centre_code="CTTH",
    )
    workflow_id = f"forged-{request_id}"

    async def start(temporal: Client) -> Any:
        handle = await temporal.start_workflow(
            REQUEST_WORKFLOW, forged, id=workflow_id, task_queue=settings.temporal_task_queue
        )
        return await asyncio.wait_for(handle.result(), 60)

    with pytest.raises(WorkflowFailureError) as failed:
        asyncio.run(_with(forger(settings, how), start))
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == UNSEALED
    events = _events(settings, workflow_id)
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    scheduled = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    assert [e for e in events if e.event_type == scheduled] == []
    with Session(engine) as session:
        assert session.get(CertificationRequest, request_id) is None


# --- upgrading a deployment with runs in flight --------------------------------------------


async def test_runs_from_before_seals_replay_only_with_seals_since() -> None:
    history = WorkflowHistory.from_json("certificate-MA-CTTH-2026-000001", PRE_SEALS.read_text())
    keys = Settings()

    def replayer(since: datetime | None) -> Replayer:
        return Replayer(
            workflows=[CertificateWorkflow, RequestWorkflow, OutboxDeliveryWorkflow],
            data_converter=data_converter(keys),
            interceptors=[SealCheckingInterceptor(seal_key(keys), since)],
        )

    # Checked from the start, the unsealed start fails the replay...
    strict = await replayer(None).replay_workflow(history, raise_on_replay_failure=False)
    assert strict.replay_failure is not None
    # ...with MUTABAQA_TEMPORAL_SEALS_SINCE at the upgrade, the run replays as it ran.
    await replayer(datetime.now(UTC)).replay_workflow(history, raise_on_replay_failure=True)
