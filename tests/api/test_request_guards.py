"""Each guard of SPEC section 4 (draft → sample receipt) refuses with the right status and
``type``, and leaves the request unchanged: its database rows and its workflow history."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from temporalio.client import WorkflowUpdateFailedError

from api.app import create_app
from domain.permissions import Actor, Role
from models.request_payloads import ActionInput, ActionResult
from mutabaqa.clients import connect_temporal
from mutabaqa.settings import Settings
from tests.api.requests_helpers import (
    Cast,
    act,
    create_request,
    get,
    make_cast,
    to_review,
    upload,
)
from tests.conftest import RunningWorker

TABLES = ("certification_request", "stored_file", "sample", "request_action")


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


def snapshot(engine: Engine, request_id: str) -> dict[str, Any]:
    """Every row that belongs to the request, and its audit events."""
    rows: dict[str, Any] = {}
    with engine.connect() as conn:
        for table in TABLES:
            column = "id" if table == "certification_request" else "request_id"
            rows[table] = sorted(
                tuple(map(str, r))
                for r in conn.execute(
                    sa.text(f"SELECT * FROM {table} WHERE {column} = :id"), {"id": request_id}
                )
            )
        rows["audit_event"] = conn.execute(
            sa.text("SELECT count(*), max(hash) FROM audit_event WHERE chain = :c"),
            {"c": f"request:{request_id}"},
        ).one()
    return rows


async def history_length(settings: Settings, workflow_id: str, *, settle: bool = False) -> int:
    """Events in the workflow's history; with ``settle``, first wait until background work
    (e-mails being sent) is done, so that only the action under test could add events."""
    client = await connect_temporal(settings)
    handle = client.get_workflow_handle(workflow_id)
    length = len((await handle.fetch_history()).events)
    quiet = 0
    for _ in range(150 if settle else 0):
        raw = (await handle.describe()).raw_description
        busy = bool(raw.pending_activities) or raw.HasField("pending_workflow_task")
        await asyncio.sleep(0.2)
        again = len((await handle.fetch_history()).events)
        quiet = 0 if busy or again != length else quiet + 1
        length = again
        if quiet >= 3:
            break
    return length


def workflow_id(engine: Engine, request_id: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.text("SELECT workflow_id FROM certification_request WHERE id = :id"),
                {"id": request_id},
            ).scalar_one()
        )


def in_status(client: TestClient, cast: Cast, status: str) -> str:
    """A fresh request brought to ``status``."""
    if status == "draft":
        return str(create_request(client, cast, key=uuid.uuid4().hex)["id"])
    rid = str(to_review(client, cast)["id"])
    if status == "awaiting_sample":
        assert act(client, cast.officer_auth, rid, "accept", {}).status_code == 200
    elif status == "withdrawn":
        assert act(client, cast.maker_auth, rid, "withdraw", {}).status_code == 200
    assert get(client, cast.maker_auth, rid)["status"] == status
    return rid


Who = Callable[[Cast], dict[str, str]]
MAKER: Who = lambda c: c.maker_auth  # noqa: E731
OFFICER: Who = lambda c: c.officer_auth  # noqa: E731
TECH: Who = lambda c: c.tech_auth  # noqa: E731
OTHER_TECH: Who = lambda c: c.other_tech_auth  # noqa: E731
OTHER_MAKER: Who = lambda c: c.other_maker_auth  # noqa: E731

CASES = [
    # (status, who, action, body, expected status, expected type)
    ("draft", MAKER, "submit", {}, 409, "missing-documents"),
    ("draft", OFFICER, "accept", {}, 404, "not-found"),  # officers do not see drafts
    ("draft", OTHER_MAKER, "withdraw", {}, 404, "not-found"),
    ("application_review", OFFICER, "request_info", {}, 422, "invalid-body"),
    ("application_review", OFFICER, "request_info", {"message": "  "}, 422, "invalid-body"),
    ("application_review", OFFICER, "decline", {}, 422, "invalid-body"),
    ("application_review", OFFICER, "decline", {"reason": "x", "extra": 1}, 422, "invalid-body"),
    ("application_review", OFFICER, "accept", {"centre_code": "NOPE"}, 404, "not-found"),
    ("application_review", MAKER, "accept", {}, 403, "forbidden"),
    ("application_review", MAKER, "respond", {"message": "hi"}, 409, "invalid-transition"),
    ("application_review", OFFICER, "submit", {}, 403, "forbidden"),
    (
        "application_review",
        TECH,
        "receive_sample",
        {"sample_ref": "s", "condition": "c"},
        404,
        "not-found",
    ),  # not yet assigned to the centre
    ("awaiting_sample", TECH, "reject_sample", {}, 422, "invalid-body"),
    ("awaiting_sample", TECH, "receive_sample", {"sample_ref": "S-1"}, 422, "invalid-body"),
    (
        "awaiting_sample",
        OTHER_TECH,
        "receive_sample",
        {"sample_ref": "s", "condition": "c"},
        404,
        "not-found",
    ),
    ("awaiting_sample", OFFICER, "accept", {}, 409, "invalid-transition"),
    (
        "awaiting_sample",
        OFFICER,
        "receive_sample",
        {"sample_ref": "s", "condition": "c"},
        403,
        "forbidden",
    ),
    ("withdrawn", MAKER, "withdraw", {}, 409, "request-finished"),
    ("withdrawn", MAKER, "submit", {}, 409, "request-finished"),
    ("withdrawn", OFFICER, "accept", {}, 409, "request-finished"),
]


@pytest.mark.parametrize(("status", "who", "action", "body", "code", "kind"), CASES)
def test_guard_refuses_and_changes_nothing(
    client: TestClient,
    cast: Cast,
    settings: Settings,
    engine: Engine,
    status: str,
    who: Who,
    action: str,
    body: dict[str, Any],
    code: int,
    kind: str,
) -> None:
    rid = in_status(client, cast, status)
    wid = workflow_id(engine, rid)
    history_before = asyncio.run(history_length(settings, wid, settle=True))
    before = snapshot(engine, rid)

    response = act(client, who(cast), rid, action, body)

    assert response.status_code == code, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith(f"/problems/{kind}")
    assert problem["status"] == code
    if code == 409:
        assert problem["request_status"] == status
        assert action not in problem["allowed_actions"]
    assert snapshot(engine, rid) == before
    assert asyncio.run(history_length(settings, wid)) == history_before


def test_document_upload_outside_draft_is_refused_unchanged(
    client: TestClient, cast: Cast, settings: Settings, engine: Engine
) -> None:
    rid = in_status(client, cast, "awaiting_sample")
    wid = workflow_id(engine, rid)
    history_before = asyncio.run(history_length(settings, wid, settle=True))
    before = snapshot(engine, rid)
    response = upload(client, cast.maker_auth, rid, "technical_file")
    assert response.status_code == 409
    assert response.json()["request_status"] == "awaiting_sample"
    assert snapshot(engine, rid) == before
    assert asyncio.run(history_length(settings, wid)) == history_before


async def _update(settings: Settings, wid: str, command: ActionInput) -> ActionResult:
    client = await connect_temporal(settings)
    result: ActionResult = await client.get_workflow_handle(wid).execute_update(
        command.action, command, id=command.key, result_type=ActionResult
    )
    return result


def test_the_workflow_validator_refuses_on_its_own_without_a_trace(
    client: TestClient, cast: Cast, settings: Settings, engine: Engine
) -> None:
    """Bypassing the API: the Update's validator is the authority, and a refused Update
    leaves no event in the workflow's history."""
    rid = in_status(client, cast, "draft")
    wid = workflow_id(engine, rid)
    history_before = asyncio.run(history_length(settings, wid, settle=True))
    maker = Actor(
        user_id=cast.maker["id"],
        roles=(Role.MANUFACTURER,),
        organization_id=cast.org["id"],
    )
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        asyncio.run(
            _update(
                settings,
                wid,
                ActionInput(
                    action="submit",
                    actor=maker,
                    body={},
                    key=uuid.uuid4().hex,
                    body_hash="x",
                ),
            )
        )
    assert "documents still to upload" in str(refused.value.cause)
    intruder = maker.model_copy(update={"organization_id": "someone-else"})
    with pytest.raises(WorkflowUpdateFailedError):
        asyncio.run(
            _update(
                settings,
                wid,
                ActionInput(
                    action="withdraw",
                    actor=intruder,
                    body={},
                    key=uuid.uuid4().hex,
                    body_hash="x",
                ),
            )
        )
    assert asyncio.run(history_length(settings, wid)) == history_before
    assert get(client, cast.maker_auth, rid)["status"] == "draft"
