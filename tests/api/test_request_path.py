"""The request path under load: no async route holds a database session, overload is a 503
with Retry-After, an unexpected error a 500 problem with an error id that is also logged."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Iterator

import pytest
import sqlalchemy.exc
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute

import api.routes.requests as request_routes
from api.app import create_app
from api.deps import get_read_session, get_session
from api.problems import install_problem_handlers
from mutabaqa.settings import Settings
from tests.api.helpers import API, assert_problem
from tests.api.requests_helpers import Cast, create_request, make_cast
from tests.conftest import RunningWorker

SESSION_DEPENDENCIES = {get_session, get_read_session}


def _calls(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # an included router
        if included is not None:
            yield from _api_routes(included.routes)


def test_no_async_route_holds_a_request_session(settings: Settings) -> None:
    """Async routes await Temporal or the object store: they (and every dependency they
    use) read in short sessions of their own, never in the request-long one."""
    app = create_app(settings)
    async_routes = [
        route for route in _api_routes(app.routes) if inspect.iscoroutinefunction(route.endpoint)
    ]
    assert {r.endpoint.__name__ for r in async_routes} >= {
        "create_request",
        "act",
        "upload_document",
        "upload_evidence",
        "record_result",
        "certificate_action",
    }
    offenders = [
        f"{sorted(route.methods or ())} {route.path}"
        for route in async_routes
        if SESSION_DEPENDENCIES & set(_calls(route.dependant))
    ]
    assert offenders == []


@pytest.fixture
def cast(settings: Settings, worker: RunningWorker) -> Cast:
    with TestClient(create_app(settings)) as client:
        return make_cast(client, settings)


@pytest.mark.concurrency
def test_an_exhausted_database_pool_answers_503_with_retry_after(
    settings: Settings, worker: RunningWorker, cast: Cast
) -> None:
    tight = settings.model_copy(
        update={"api_db_pool_size": 1, "api_db_max_overflow": 0, "db_pool_timeout_seconds": 0.5}
    )
    with TestClient(create_app(tight)) as client:
        request = create_request(client, cast)
        held = client.app.state.ctx.engine.connect()  # type: ignore[attr-defined]
        try:
            busy = client.get(f"{API}/requests/{request['id']}", headers=cast.maker_auth)
            problem = assert_problem(busy, 503, "database-busy")
            assert busy.headers["Retry-After"] == "5"
            assert "safe" in problem["detail"]
        finally:
            held.close()
        # Nothing was lost: once a connection is free, the same call answers.
        again = client.get(f"{API}/requests/{request['id']}", headers=cast.maker_auth)
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "draft"


def test_an_unexpected_error_is_a_500_problem_with_a_logged_error_id(
    settings: Settings,
    worker: RunningWorker,
    cast: Cast,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        request = create_request(client, cast)

        def broken(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(request_routes, "request_view", broken)
        with caplog.at_level(logging.ERROR, logger="mutabaqa.api"):
            response = client.get(f"{API}/requests/{request['id']}", headers=cast.maker_auth)
        problem = assert_problem(response, 500, "internal-error")
        error_id = problem["error_id"]
        assert error_id in problem["detail"]
        assert "a bug" not in response.text  # no internals on the wire
        assert any(error_id in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("message", "status"),
    [
        ("database is locked", 503),  # SQLite's lock not had within the busy timeout
        ("connection refused", 503),  # PostgreSQL restarting
        ("no such table: certificate", 500),  # a bug (code ahead of its migration)
    ],
)
def test_database_errors_are_503_only_when_transient(message: str, status: int) -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception(message))

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert_problem(response, status)
    assert ("Retry-After" in response.headers) is (status == 503)
