"""The read paths cost a fixed number of SQL statements per call, whatever the page size:
a list of 50 requests or certificates is read with as many queries as a list of 5 (no query
per row), on a database holding a few hundred bulk-written requests (``tests/bulk.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from mutabaqa.db import create_db_engine
from mutabaqa.migrate import upgrade
from mutabaqa.seed import seed
from mutabaqa.settings import Settings
from tests.api.helpers import API, Headers, login
from tests.bulk import PASSWORD, Seeded, Shape, bulk_seed
from tests.databases import own_deployment, private_database

pytestmark = pytest.mark.both_databases


@dataclass
class Reads:
    client: TestClient
    seeded: Seeded
    maker: Headers
    officer: Headers
    statements: list[str]


@pytest.fixture(scope="module")
def reads(
    settings: Settings, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Reads]:
    directory = tmp_path_factory.mktemp("reads")
    with private_database(database, Path(directory), "reads") as url:
        own = own_deployment(settings, url, "reads")
        upgrade(url, settings=own)
        engine = create_db_engine(url)
        try:
            seed(engine)
            seeded = bulk_seed(engine, Shape(requests=600, certificates=150))
        finally:
            engine.dispose()
        statements: list[str] = []
        database_name = sa.make_url(url).database

        def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            if conn.engine.url.database == database_name:
                statements.append(statement)

        sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
        try:
            with TestClient(create_app(own)) as client:
                yield Reads(
                    client,
                    seeded,
                    login(client, seeded.manufacturer_email, PASSWORD),
                    login(client, seeded.officer_email, PASSWORD),
                    statements,
                )
        finally:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)


def queries(r: Reads, path: str, headers: Headers | None = None) -> tuple[int, Any]:
    r.statements.clear()
    response = r.client.get(path, headers=headers or {})
    assert response.status_code == 200, response.text
    return len(r.statements), response.json()


@pytest.mark.parametrize(
    ("who", "path"),
    [
        ("officer", "/requests"),
        ("officer", "/requests?status=testing"),
        ("officer", "/requests?status=certified&scheme=FFP2-NM-EN-149"),
        ("maker", "/requests"),
        ("maker", "/requests?q=masque"),
        ("public", "/directory"),
        ("public", "/directory?q=Fabricant"),
        ("public", "/directory?status=active"),
    ],
)
def test_a_list_costs_the_same_queries_for_5_rows_as_for_50(
    reads: Reads, who: str, path: str
) -> None:
    headers = {"maker": reads.maker, "officer": reads.officer}.get(who)
    join = "&" if "?" in path else "?"
    small, few = queries(reads, f"{API}{path}{join}limit=5", headers)
    large, many = queries(reads, f"{API}{path}{join}limit=50", headers)
    assert len(few["items"]) == 5
    assert len(many["items"]) == 50  # the bulk data has that many rows for each filter
    assert 0 < large == small, reads.statements


def test_one_request_and_one_certificate_cost_a_bounded_number_of_queries(
    reads: Reads,
) -> None:
    """The detail of a certified request (documents, results, report, certificate) and of
    a draft cost the same few queries; so do two certificates."""
    ids = reads.seeded.own_request_ids
    costs = {}
    for request_id in ids[:40]:
        n, body = queries(reads, f"{API}/requests/{request_id}", reads.maker)
        costs[body["status"]] = n
    assert "certified" in costs and "draft" in costs, costs
    assert min(costs.values()) > 0 and max(costs.values()) <= 12, costs
    numbers = reads.seeded.certificate_numbers[:2]
    verify = [queries(reads, f"{API}/verify/{number}")[0] for number in numbers]
    assert 0 < verify[0] == verify[1] <= 3, verify
