"""`mutabaqa verify` on a credential the product issued, online as a verifier would run it:
the did:web resolved over HTTP to the running API's `/.well-known/did.json`, the status
lists fetched from it; a suspension shows as "NOT IN FORCE" once its list is republished.
The API runs on a loopback port whose `localhost` URL is the public base URL, and a worker
of its own signs with that DID."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from mutabaqa.settings import Settings
from tests.api.lab_helpers import make_lab
from tests.api.requests_helpers import make_cast
from tests.api.test_certificate_lifecycle import cert_act, issue
from tests.conftest import start_worker
from tests.databases import own_deployment, prepare, private_database
from tests.smtp import free_port

pytestmark = pytest.mark.both_databases


@pytest.fixture(scope="module")
def served(
    settings: Settings, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """The API on ``http://localhost:<port>`` (its did:web) with a worker of its own, on a
    deployment of its own: one deployment has one public base URL, and the session's
    database holds lists published under another one."""
    port = free_port()
    with private_database(database, tmp_path_factory.mktemp("vc-live"), "vclive") as url:
        own = own_deployment(
            settings,
            url,
            "vclive",
            public_base_url=f"http://localhost:{port}",
            public_rate_per_minute=100_000,
            public_rate_burst=10_000,
        )
        prepare(own)
        worker = start_worker(own)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(own), host="127.0.0.1", port=port, lifespan="on", log_level="warning"
            )
        )
        thread = threading.Thread(target=server.run, name="vc-api-under-test", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)
        try:
            yield own
        finally:
            server.should_exit = True
            thread.join(30)
            worker.stop()


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MUTABAQA_")}
    clean = {k: v for k, v in clean.items() if "proxy" not in k.lower()}
    return subprocess.run(
        [sys.executable, "-m", "mutabaqa", "verify", str(path)],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def poll(client: TestClient, path: str) -> Any:
    deadline = time.monotonic() + 60
    while (response := client.get(path)).status_code == 404:
        assert response.headers["retry-after"], response.text
        assert time.monotonic() < deadline, "credential not issued within 60 s"
        time.sleep(0.2)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_cli_verifies_an_issued_credential_and_sees_its_suspension(
    served: Settings, tmp_path: Path
) -> None:
    with TestClient(create_app(served)) as client:
        cast = make_cast(client, served)
        number = issue(client, cast, make_lab(client, cast))
        credential = poll(client, f"/credentials/{number}")
        path = tmp_path / f"{number}.json"
        path.write_text(json.dumps(credential), encoding="utf-8")

        genuine = verify(path)
        assert genuine.returncode == 0, genuine.stdout + genuine.stderr
        assert "IN FORCE: within its validity period" in genuine.stdout
        assert credential["issuer"]["id"] in genuine.stdout

        suspended = cert_act(client, cast.officer_auth, number, "suspend", "Market finding")
        assert suspended.status_code == 200, suspended.text
        # the list follows through the outbox: seconds, longer on a loaded machine
        deadline = time.monotonic() + 120
        while "NOT IN FORCE: suspended." not in (result := verify(path)).stdout:
            assert time.monotonic() < deadline, result.stdout + result.stderr
            time.sleep(0.5)
        assert result.returncode == 0  # genuine, not in force: the status line says so

        tampered = dict(credential, validUntil="2099-12-31T23:00:00Z")
        bad = tmp_path / "tampered.json"
        bad.write_text(json.dumps(tampered), encoding="utf-8")
        assert verify(bad).returncode == 1
