"""Impartiality through the API and the workflow's validators: a person who belongs to the
manufacturer's organisation never acts as staff on its requests, and nothing is recorded
when they try; on another organisation's request they act as any member of staff."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from api.app import create_app
from domain.permissions import Role
from domain.statuses import FilePurpose
from models.requests import StoredFile
from mutabaqa.settings import Settings
from tests.api.helpers import API, Headers, make_user
from tests.api.lab_helpers import FFP2_PASSING, Lab, make_lab, put_result, to_evaluated, to_testing
from tests.api.requests_helpers import PDF, Cast, act, get, make_cast
from tests.api.test_decision_guards import refused_unchanged
from tests.conftest import RunningWorker


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


@pytest.fixture(scope="module")
def other(client: TestClient, settings: Settings) -> Cast:
    """Another organisation, its manufacturer and product (and the same kind of staff)."""
    return make_cast(client, settings)


@pytest.fixture(scope="module")
def lab(client: TestClient, cast: Cast) -> Lab:
    return make_lab(client, cast)


@pytest.fixture(scope="module")
def insider(client: TestClient, cast: Cast) -> Headers:
    """A manufacturer of ``cast``'s organisation who is also an officer and a technician."""
    _, headers = make_user(
        client,
        cast.admin,
        [Role.MANUFACTURER, Role.COMPLIANCE_OFFICER, Role.LAB_TECHNICIAN],
        organization_id=cast.org["id"],
        centre_code="CTTH",
    )
    return headers


def test_grant_on_ones_own_organisations_request_is_refused(
    client: TestClient,
    cast: Cast,
    lab: Lab,
    insider: Headers,
    settings: Settings,
    engine: Engine,
) -> None:
    rid = to_evaluated(client, cast, lab)
    assert "grant" not in get(client, insider, rid)["allowed_actions"]
    problem = refused_unchanged(
        client, settings, engine, rid, insider, "grant", {}, 409, "impartiality"
    )
    assert "organisation" in problem["detail"]
    assert "grant" not in problem["allowed_actions"]
    # An impartial officer grants it.
    assert act(client, cast.officer_auth, rid, "grant").status_code == 200


def test_the_same_person_grants_another_organisations_request(
    client: TestClient, other: Cast, lab: Lab, insider: Headers
) -> None:
    rid = to_evaluated(client, other, lab)
    assert "grant" in get(client, insider, rid)["allowed_actions"]
    granted = act(client, insider, rid, "grant")
    assert granted.status_code == 200, granted.text
    assert granted.json()["status"] == "certified"


def test_results_and_evidence_on_ones_own_organisations_request_are_refused(
    client: TestClient, cast: Cast, other: Cast, insider: Headers, engine: Engine
) -> None:
    rid = to_testing(client, cast)
    listed = get(client, insider, rid)["allowed_actions"]
    assert not {"record_result", "upload_evidence", "submit_results"} & set(listed)

    item, body = next(iter(FFP2_PASSING.items()))
    refused = put_result(client, insider, rid, item, body)
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/problems/impartiality")
    uploaded = client.post(
        f"{API}/requests/{rid}/evidence",
        files={"file": ("raw.pdf", PDF, "application/pdf")},
        headers=insider,
    )
    assert uploaded.status_code == 409, uploaded.text
    assert uploaded.json()["type"].endswith("/problems/impartiality")
    with Session(engine) as session:
        files = session.exec(select(StoredFile).where(StoredFile.request_id == rid)).all()
    assert [f.purpose for f in files if f.purpose is FilePurpose.EVIDENCE] == []
    assert get(client, cast.officer_auth, rid)["status"] == "testing"

    # The same technician records on another organisation's request.
    elsewhere = to_testing(client, other)
    assert put_result(client, insider, elsewhere, item, body).status_code in (200, 201)
