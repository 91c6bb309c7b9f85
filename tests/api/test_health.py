"""``GET /health`` checks each dependency for real and recovers when it comes back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from mutabaqa.clients import ensure_buckets, make_object_store
from mutabaqa.settings import Settings
from tests.api.helpers import admin_headers
from tests.conftest import S3Server, run_s3


def _health(
    client: TestClient, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    response = client.get("/health", headers=headers)
    assert response.headers["content-type"].startswith("application/json")
    return response.status_code, response.json()


def test_all_dependencies_up(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        status, body = _health(client)
    assert status == 200
    assert body == {
        "status": "ok",
        "checks": {"database": "ok", "temporal": "ok", "object_store": "ok"},
    }


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[tuple[S3Server, Path]]:
    server = run_s3(tmp_path)
    try:
        yield server, tmp_path
    finally:
        server.process.stop()


def _wait_for(
    client: TestClient,
    expected: int,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    status, body = _health(client, headers)
    while status != expected and time.monotonic() < deadline:
        time.sleep(0.3)
        status, body = _health(client, headers)
    assert status == expected, body
    return body


def test_object_store_down_gives_503_and_recovers(
    settings: Settings, own_s3: tuple[S3Server, Path]
) -> None:
    server, data_dir = own_s3
    local = settings.model_copy(
        update={"s3_endpoint": server.endpoint, "s3_secret_key": settings.s3_secret_key}
    )
    ensure_buckets(make_object_store(local), local)
    with TestClient(create_app(local)) as client:
        assert _wait_for(client, 200)["checks"] == {
            "database": "ok",
            "temporal": "ok",
            "object_store": "ok",
        }

        server.process.stop()
        body = _wait_for(client, 503)
        assert body["status"] == "degraded"
        assert body["checks"] == {"database": "ok", "temporal": "ok", "object_store": "down"}
        assert "errors" not in body  # why is for admins (and the log)
        detailed = _wait_for(client, 503, headers=admin_headers(client, local))
        assert "object_store" in detailed["errors"]  # type: ignore[operator]

        restarted = run_s3(data_dir, server.ports)  # same data, same ports
        try:
            assert _wait_for(client, 200)["status"] == "ok"
        finally:
            restarted.process.stop()


def test_unreachable_temporal_and_database_are_reported(settings: Settings) -> None:
    broken = settings.model_copy(
        update={
            "temporal_address": "127.0.0.1:1",
            "database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none",
        }
    )
    with TestClient(create_app(broken)) as client:
        status, body = _health(client)
    assert status == 503
    assert body["checks"] == {"database": "down", "temporal": "down", "object_store": "ok"}


def test_framework_errors_are_problem_details(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        missing = client.get("/no-such-page")
        wrong_method = client.post("/health")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["type"].endswith("/problems/not-found")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["status"] == 405


def test_metrics_are_exposed(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert "python_info" in response.text
