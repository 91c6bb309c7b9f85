"""An operator finds a request with the Temporal CLI by its search attributes (status,
manufacturer, centre, scheme), as SPEC section 4 promises."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from api.app import create_app
from models.requests import CertificationRequest
from mutabaqa.devstack import find_binary
from mutabaqa.settings import Settings
from tests.api.requests_helpers import FFP2, act, make_cast, to_review
from tests.conftest import RunningWorker

#: Visibility is eventually consistent: how long a change may take to show in a list.
VISIBILITY_SECONDS = 15


@pytest.fixture
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def temporal_list(settings: Settings, query: str) -> list[dict[str, Any]]:
    """``temporal workflow list --query ...`` against the test server, parsed."""
    assert settings.temporal_address is not None
    result = subprocess.run(
        [
            find_binary("temporal"), "workflow", "list",
            "--address", settings.temporal_address,
            "--namespace", settings.temporal_namespace,
            "--query", query,
            "--output", "json",
            "--disable-config-file", "--disable-config-env",
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout or "[]")
    assert isinstance(listed, list), listed
    return listed


def ids_listed(settings: Settings, query: str, expect: str | None = None) -> set[str]:
    """The workflow ids the query lists; waits (up to the visibility delay) for ``expect``."""
    deadline = time.monotonic() + VISIBILITY_SECONDS
    while True:
        ids = {w["execution"]["workflowId"] for w in temporal_list(settings, query)}
        if expect is None or expect in ids or time.monotonic() > deadline:
            return ids
        time.sleep(0.5)


def test_a_request_is_found_with_the_temporal_cli_by_its_search_attributes(
    client: TestClient, settings: Settings, engine: Engine
) -> None:
    cast = make_cast(client, settings)
    rid = str(to_review(client, cast)["id"])
    accepted = act(client, cast.officer_auth, rid, "accept", {"centre_code": "CTTH"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "awaiting_sample"
    with Session(engine) as session:
        row = session.get(CertificationRequest, rid)
        assert row is not None
        workflow_id = row.workflow_id
    org = cast.org["id"]

    def query(status: str, centre: str = "CTTH", manufacturer: str = org) -> str:
        return (
            f"MutabaqaStatus = '{status}' AND MutabaqaCentre = '{centre}' "
            f"AND MutabaqaManufacturer = '{manufacturer}' AND MutabaqaScheme = '{FFP2}'"
        )

    found = ids_listed(settings, query("awaiting_sample"), expect=workflow_id)
    assert found == {workflow_id}  # the manufacturer has this one request
    by_kind = ids_listed(
        settings, f"MutabaqaManufacturer = '{org}' AND MutabaqaKind = 'certification'"
    )
    assert by_kind == {workflow_id}

    # The attributes are the current ones: not the statuses it went through, nor other
    # centres or manufacturers.
    assert ids_listed(settings, query("application_review")) == set()
    assert ids_listed(settings, query("draft")) == set()
    assert ids_listed(settings, query("awaiting_sample", centre="CETIEV")) == set()
    assert ids_listed(settings, query("awaiting_sample", manufacturer="someone-else")) == set()

    # A status change shows in the CLI as well.
    received = act(client, cast.tech_auth, rid, "receive_sample",
                   {"sample_ref": "CTTH-SA-1", "condition": "Sealed box of 20"})  # fmt: skip
    assert received.status_code == 200, received.text
    assert ids_listed(settings, query("testing"), expect=workflow_id) == {workflow_id}
    assert ids_listed(settings, query("awaiting_sample")) == set()
