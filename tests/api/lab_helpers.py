"""Helpers for laboratory and decision tests: FFP2 results that pass or fail, and a
request brought to ``evaluated`` through the API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from domain.permissions import Role
from tests.api.helpers import API, Headers, make_user
from tests.api.requests_helpers import Cast, act, to_review

#: Passing specimen values for every FFP2 item (limits in REFERENCE.md), U = 0.05 or 0.2.
FFP2_PASSING: dict[str, dict[str, Any]] = {
    "PEN-NACL": {"values": ["2.1", "1.8", "2.4"], "uncertainty": "0.2"},
    "PEN-PARAFFIN": {"values": ["3.2", "2.9", "3.5"], "uncertainty": "0.2"},
    "TIL-IND": {"values": ["4.5"] * 47 + ["11.5", "12.0", "12.2"], "uncertainty": "0.2"},
    "TIL-MEAN": {
        "values": ["5.1", "5.3", "4.9", "6.0", "5.5", "5.2", "4.8", "5.0", "9.1", "5.4"],
        "uncertainty": "0.2",
    },
    "RES-IN-30": {"values": ["0.52", "0.55", "0.50"], "uncertainty": "0.05"},
    "RES-IN-95": {"values": ["1.9", "2.0", "1.8"], "uncertainty": "0.05"},
    "RES-EX-160": {"values": ["2.2", "2.4", "2.1"], "uncertainty": "0.05"},
    "CO2": {"values": ["0.6", "0.7", "0.65"], "uncertainty": "0.05"},
    "FLAME": {"values": ["0", "1", "0", "2"], "uncertainty": "0.2"},
}

FAILING_PARAFFIN: dict[str, Any] = {
    "values": ["6.8", "7.0", "6.9"],
    "uncertainty": "0.2",
    "equipment_id": "TSI-8130",
    "remarks": "above the limit",
}


@dataclass
class Lab:
    """A second technician of the same centre (to verify) and a person who holds both the
    technician and the officer roles (for separation-of-duties tests)."""

    verifier: dict[str, Any]
    verifier_auth: Headers
    dual: dict[str, Any]
    dual_auth: Headers
    officer2: dict[str, Any]
    officer2_auth: Headers


def make_lab(client: TestClient, cast: Cast) -> Lab:
    verifier, verifier_auth = make_user(
        client, cast.admin, [Role.LAB_TECHNICIAN], centre_code="CTTH"
    )
    dual, dual_auth = make_user(
        client, cast.admin, [Role.LAB_TECHNICIAN, Role.COMPLIANCE_OFFICER], centre_code="CTTH"
    )
    officer2, officer2_auth = make_user(client, cast.admin, [Role.COMPLIANCE_OFFICER])
    return Lab(verifier, verifier_auth, dual, dual_auth, officer2, officer2_auth)


def put_result(
    client: TestClient, headers: Headers, rid: str, item: str, body: dict[str, Any]
) -> Any:
    return client.put(f"{API}/requests/{rid}/results/{item}", json=body, headers=headers)


def to_testing(client: TestClient, cast: Cast) -> str:
    rid = str(to_review(client, cast)["id"])
    assert act(client, cast.officer_auth, rid, "accept", {}).status_code == 200
    received = act(
        client,
        cast.tech_auth,
        rid,
        "receive_sample",
        {"sample_ref": "CTTH-2026-0420", "condition": "Sealed box of 20"},
    )
    assert received.status_code == 200, received.text
    return rid


def record_all(
    client: TestClient,
    headers: Headers,
    rid: str,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> None:
    for item, body in (FFP2_PASSING | (overrides or {})).items():
        response = put_result(client, headers, rid, item, body)
        assert response.status_code in (200, 201), (item, response.text)


def to_evaluated(
    client: TestClient,
    cast: Cast,
    lab: Lab,
    overrides: dict[str, dict[str, Any]] | None = None,
    recorder: Headers | None = None,
) -> str:
    rid = to_testing(client, cast)
    record_all(client, recorder or cast.tech_auth, rid, overrides)
    assert act(client, recorder or cast.tech_auth, rid, "submit_results").status_code == 200
    verified = act(client, lab.verifier_auth, rid, "verify_results")
    assert verified.status_code == 200, verified.text
    assert verified.json()["status"] == "evaluated"
    return rid
