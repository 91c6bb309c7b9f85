"""A client takes a request from creation to a granted certificate on ``mutabaqa dev``: with
its defaults (SQLite in the data directory) and on PostgreSQL — the README's run command,
used the way a new user and a production database would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mutabaqa.settings import Settings
from tests.databases import private_pg_database
from tests.mutabaqa.test_dev_stack import Ports, interrupt, wait_healthy
from tests.walker import make_people, walk

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    with private_pg_database("dev") as url:
        yield url


def _start(data_dir: Path, ports: Ports, log: Path, url: str | None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUTABAQA_")}
    if url:
        env["MUTABAQA_DATABASE_URL"] = url
    argv = [sys.executable, "-m", "mutabaqa", "dev", "--data-dir", str(data_dir)]
    argv += ["--port", str(ports.api), "--temporal-port", str(ports.temporal.grpc)]
    argv += ["--temporal-ui-port", str(ports.temporal.ui)]
    argv += ["--temporal-http-port", str(ports.temporal.http)]
    argv += ["--temporal-metrics-port", str(ports.temporal.metrics)]
    argv += ["--s3-port", str(ports.s3.s3), "--s3-internal-port", str(ports.s3.internal_base)]
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
async def test_a_client_takes_a_request_to_a_certificate(
    tmp_path: Path, db: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("fresh_pg") if db == "postgresql" else None
    ports = Ports.free()
    log = tmp_path / "dev.log"
    proc = _start(tmp_path / "data", ports, log, url)
    defaults = Settings()  # what `mutabaqa dev` uses with no MUTABAQA_* variable set
    try:
        wait_healthy(proc, ports.api, log)
        if url is None:  # the default: SQLite in the data directory
            assert (tmp_path / "data" / "mutabaqa.db").exists()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports.api}") as client:
            people = await make_people(
                client, defaults.admin_email, defaults.admin_password.get_secret_value()
            )
            result = await walk(client, people, timeout=300)
            assert result.ok, (result.errors, log.read_text()[-3000:])
            assert result.retried == []  # one client, an idle stack: nothing to retry
            shown = await client.get(
                f"/api/v1/requests/{result.request_id}", headers=people.maker_auth
            )
            assert shown.json()["status"] == "certified"
            assert shown.json()["certificate_number"] == result.certificate_number
            public = await client.get(
                f"/verify/{result.certificate_number}", headers={"Accept": "application/json"}
            )
            assert public.json()["status"] == "active"
    finally:
        interrupt(proc, ports)
