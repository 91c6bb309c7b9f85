"""PostgreSQL stopped under the API (a crash: ``pg_ctl stop -m immediate``), then started
again (crash recovery): meanwhile every call answers 503 with ``Retry-After`` — a passing
refusal the client repeats — never 500; afterwards the same calls answer 200 again without
restarting the API. On a private cluster of the test's own (``initdb`` + ``pg_ctl``),
never the machine's shared server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from mutabaqa.settings import Settings
from tests.api.helpers import API, Headers, admin_headers, assert_problem
from tests.databases import own_deployment, prepare
from tests.faults.stack import PrivatePostgres


@pytest.fixture
def cluster() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.close()


def calls(client: TestClient, admin: Headers) -> list[httpx.Response]:
    """A public read, an authenticated read (the caller is looked up) and a write."""
    return [
        client.get(f"{API}/directory"),
        client.get(f"{API}/users/me", headers=admin),
        client.post(
            f"{API}/organizations",
            headers=admin,
            json={"name": "Org", "registration_id": f"{time.time_ns()}"[-15:], "address": "Fès",
                  "country": "MA"},
        ),
    ]  # fmt: skip


def test_a_postgresql_crash_and_recovery_answer_503_then_200(
    settings: Settings, cluster: PrivatePostgres
) -> None:
    url = cluster.create_database("restart")
    own = prepare(own_deployment(settings, url, "pgrestart"))
    with TestClient(create_app(own), raise_server_exceptions=False) as client:
        admin = admin_headers(client, own)
        assert [r.status_code for r in calls(client, admin)] == [200, 200, 201]

        cluster.stop("immediate")
        for response in calls(client, admin):
            problem = assert_problem(response, 503, "database-unavailable")
            assert int(response.headers["retry-after"]) > 0, problem

        cluster.start()  # crash recovery first, then it accepts connections
        seen: list[int] = []
        deadline = time.monotonic() + 60
        while (statuses := [r.status_code for r in calls(client, admin)]) != [200, 200, 201]:
            seen += statuses
            assert time.monotonic() < deadline, f"not back within 60 s: {seen}"
            time.sleep(0.5)
        # connections the crash broke are found and replaced, each as a 503 at most
        assert set(seen) <= {503, 200, 201}, seen
