"""Surveillance: every interval the certificate's workflow opens a request of kind
``surveillance`` at the centre, run by the same request workflow; a failed surveillance, or
one not completed by its deadline, suspends the certificate automatically."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from mutabaqa.settings import Settings
from tests.api.helpers import API
from tests.api.lab_helpers import FAILING_PARAFFIN, Lab, make_lab, record_all, to_evaluated
from tests.api.requests_helpers import Cast, act, make_cast
from tests.conftest import RunningWorker

pytestmark = pytest.mark.timers


def make_client(settings: Settings, deadline: float) -> TestClient:
    return TestClient(
        create_app(
            settings.model_copy(
                update={
                    "surveillance_interval_seconds": 2.0,
                    "surveillance_deadline_seconds": deadline,
                }
            )
        )
    )


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with make_client(settings, deadline=120.0) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


@pytest.fixture(scope="module")
def lab(client: TestClient, cast: Cast) -> Lab:
    return make_lab(client, cast)


def certify(client: TestClient, cast: Cast, lab: Lab) -> str:
    rid = to_evaluated(client, cast, lab)
    granted = act(client, cast.officer_auth, rid, "grant")
    assert granted.status_code == 200, granted.text
    return str(granted.json()["certificate_number"])


def surveillance_request(
    client: TestClient, cast: Cast, number: str, timeout: float = 30
) -> dict[str, Any]:
    """The surveillance request the certificate's workflow opened, as the centre sees it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = client.get(
            f"{API}/requests", params={"status": "awaiting_sample"}, headers=cast.tech_auth
        ).json()["items"]
        for item in listed:
            if item["kind"] == "surveillance":
                full = client.get(f"{API}/requests/{item['id']}", headers=cast.tech_auth).json()
                if number in full["scope"]:
                    return dict(full)
        time.sleep(0.3)
    raise AssertionError(f"no surveillance request for {number}")


def certificate_status(client: TestClient, number: str) -> str:
    body = client.get(f"/verify/{number}", headers={"Accept": "application/json"}).json()
    return str(body["status"])


def wait_certificate(client: TestClient, number: str, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while certificate_status(client, number) != status and time.monotonic() < deadline:
        time.sleep(0.3)
    assert certificate_status(client, number) == status


def run_surveillance(client: TestClient, cast: Cast, lab: Lab, rid: str, *, passing: bool) -> None:
    received = act(
        client,
        cast.tech_auth,
        rid,
        "receive_sample",
        {"sample_ref": "SURV-1", "condition": "Bought on the market"},
    )
    assert received.status_code == 200, received.text
    record_all(client, cast.tech_auth, rid, None if passing else {"PEN-PARAFFIN": FAILING_PARAFFIN})
    assert act(client, cast.tech_auth, rid, "submit_results").status_code == 200
    assert act(client, lab.verifier_auth, rid, "verify_results").status_code == 200
    if passing:
        done = act(client, cast.officer_auth, rid, "grant")
        assert done.status_code == 200 and done.json()["status"] == "verified", done.text
    else:
        done = act(client, cast.officer_auth, rid, "refuse", {"reason": "Penetration too high"})
        assert done.status_code == 200 and done.json()["status"] == "refused", done.text


def test_surveillance_passed_keeps_the_certificate_active(
    client: TestClient, cast: Cast, lab: Lab
) -> None:
    number = certify(client, cast, lab)
    request = surveillance_request(client, cast, number)
    assert (request["kind"], request["centre"], request["status"]) == (
        "surveillance",
        "CTTH",
        "awaiting_sample",
    )
    assert request["certificate_number"] is None  # a surveillance issues no new certificate
    run_surveillance(client, cast, lab, request["id"], passing=True)
    time.sleep(1.0)
    assert certificate_status(client, number) == "active"
    maker_view = client.get(f"{API}/requests/{request['id']}", headers=cast.maker_auth)
    assert maker_view.status_code == 200  # the holder follows its surveillance too


def test_failed_surveillance_suspends(client: TestClient, cast: Cast, lab: Lab) -> None:
    number = certify(client, cast, lab)
    request = surveillance_request(client, cast, number)
    run_surveillance(client, cast, lab, request["id"], passing=False)
    wait_certificate(client, number, "suspended")
    timeline = client.get(f"{API}/certificates/{number}/timeline", headers=cast.officer_auth)
    suspension = timeline.json()["items"][-1]
    assert (suspension["action"], suspension["actor"]) == ("suspend", "system")
    assert suspension["detail"]["reason"] == "surveillance failed"


def test_missed_surveillance_suspends(
    settings: Settings, worker: RunningWorker, cast: Cast, lab: Lab
) -> None:
    with make_client(settings, deadline=3.0) as short:
        number = certify(short, cast, lab)
        surveillance_request(short, cast, number)
        wait_certificate(short, number, "suspended", timeout=40)
        timeline = short.get(f"{API}/certificates/{number}/timeline", headers=cast.officer_auth)
        reasons = [e["detail"].get("reason") for e in timeline.json()["items"]]
        assert "surveillance not completed by its deadline" in reasons
