"""``Idempotency-Key``: same key, same result — concurrently, and after the workflow ended."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.app import create_app
from mutabaqa.clients import connect_temporal
from mutabaqa.settings import Settings
from tests.api.helpers import API
from tests.api.requests_helpers import FFP2, Cast, act, make_cast
from tests.conftest import RunningWorker


@pytest.fixture
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


def _post(client: TestClient, cast: Cast, key: str, scheme: str = FFP2) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = client.post(
        f"{API}/requests",
        json={"product_id": cast.product["id"], "scheme_code": scheme, "kind": "certification"},
        headers=cast.maker_auth | {"Idempotency-Key": key},
    )
    return response.status_code, response.json()


async def _workflows_of(settings: Settings, organization_id: str) -> list[str]:
    client = await connect_temporal(settings)
    query = f"MutabaqaManufacturer = '{organization_id}'"
    ids: list[str] = []
    for _ in range(50):  # visibility is eventually consistent
        ids = [wf.id async for wf in client.list_workflows(query)]
        if ids:
            break
        await asyncio.sleep(0.2)
    return ids


@pytest.mark.concurrency
def test_concurrent_creates_with_one_key_make_one_request_and_one_workflow(
    client: TestClient, cast: Cast, settings: Settings, engine: Engine
) -> None:
    key = f"create-{uuid.uuid4()}"
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: _post(client, cast, key), range(2)))
    codes = sorted(code for code, _ in results)
    assert codes in ([200, 201], [201, 201]) or codes == [200, 201], results
    assert results[0][1]["id"] == results[1][1]["id"]
    assert results[0][1]["number"] == results[1][1]["number"]
    with engine.connect() as conn:
        count = conn.execute(
            sa.text(
                "SELECT count(*) FROM certification_request "
                "WHERE organization_id = :org AND idempotency_key = :key"
            ),
            {"org": cast.org["id"], "key": key},
        ).scalar_one()
    assert count == 1
    assert len(asyncio.run(_workflows_of(settings, cast.org["id"]))) == 1


def test_same_key_after_withdrawal_returns_the_same_request(client: TestClient, cast: Cast) -> None:
    key = f"create-{uuid.uuid4()}"
    code, first = _post(client, cast, key)
    assert code == 201
    assert act(client, cast.maker_auth, first["id"], "withdraw", {}).status_code == 200
    code, again = _post(client, cast, key)
    assert code == 200
    assert again["id"] == first["id"]
    assert again["status"] == "withdrawn"


def test_same_key_with_another_body_is_422(client: TestClient, cast: Cast) -> None:
    key = f"create-{uuid.uuid4()}"
    assert _post(client, cast, key)[0] == 201
    code, problem = _post(client, cast, key, scheme="MEDMASK-IIR-NM-EN-14683")
    assert code == 422
    assert problem["type"].endswith("/idempotency-key-reused")


def test_repeated_action_with_one_key_acts_once(client: TestClient, cast: Cast) -> None:
    _, request = _post(client, cast, f"create-{uuid.uuid4()}")
    rid = request["id"]
    key = f"withdraw-{uuid.uuid4()}"
    first = act(client, cast.maker_auth, rid, "withdraw", {"reason": "changed plans"}, key=key)
    second = act(client, cast.maker_auth, rid, "withdraw", {"reason": "changed plans"}, key=key)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["status"] == second.json()["status"] == "withdrawn"
    other = act(client, cast.maker_auth, rid, "withdraw", {"reason": "other"}, key=key)
    assert other.status_code == 422
    timeline = client.get(f"{API}/requests/{rid}/timeline", headers=cast.maker_auth).json()
    assert [e["action"] for e in timeline["items"]].count("withdraw") == 1


@pytest.mark.timers
def test_no_worker_answers_503_with_retry_after(
    settings: Settings, cast: Cast, worker: RunningWorker
) -> None:
    lonely = settings.model_copy(
        update={"temporal_task_queue": f"nobody-{uuid.uuid4().hex}", "workflow_answer_seconds": 2.0}
    )
    with TestClient(create_app(lonely)) as other:
        key = f"create-{uuid.uuid4()}"
        response = other.post(
            f"{API}/requests",
            json={"product_id": cast.product["id"], "scheme_code": FFP2},
            headers=cast.maker_auth | {"Idempotency-Key": key},
        )
        assert response.status_code == 503
        assert response.headers["retry-after"].isdigit()
        assert response.headers["content-type"] == "application/problem+json"
