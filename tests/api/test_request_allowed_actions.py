"""``allowed_actions`` tells the truth: for every status and role, each listed action
succeeds and each one not listed is refused — in the pure rules and through the API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from api.app import create_app
from domain.permissions import Actor, Role
from domain.request_rules import (
    ACTIONS,
    Refusal,
    RequestFacts,
    allowed_actions,
    check,
)
from models.requests import RequestStatus
from mutabaqa.settings import Settings
from tests.api.requests_helpers import Cast, act, create_request, get, make_cast, to_review
from tests.conftest import RunningWorker

VALID_BODY: dict[str, dict[str, Any]] = {
    "submit": {},
    "request_info": {"message": "Please add the lab report."},
    "respond": {"message": "Added."},
    "decline": {"reason": "Out of scope."},
    "accept": {"centre_code": "CTTH"},
    "reject_sample": {"reason": "Damaged."},
    "receive_sample": {"sample_ref": "S-9", "condition": "Sealed"},
    "withdraw": {"reason": "No longer needed."},
    "submit_results": {},
    "verify_results": {},
    "retract": {"reason": "Wrong balance used."},
    "grant": {},
    "refuse": {"reason": "Penetration above the limit."},
    "request_retest": {"items": ["PEN-NACL"], "reason": "Re-test filter penetration."},
    "appeal": {"reason": "The lab used the wrong flow rate."},
    "uphold": {"reason": "Method confirmed."},
    "overturn": {"reason": "Method error confirmed."},
}
DOCS = ("technical_file", "declaration_of_conformity", "user_instructions", "product_photos")

actors = st.builds(
    Actor,
    user_id=st.sampled_from(["u", "v", "w"]),
    email=st.just("u@example.ma"),
    full_name=st.just("U"),
    roles=st.lists(st.sampled_from(list(Role)), min_size=1, max_size=3, unique=True).map(tuple),
    organization_id=st.sampled_from([None, "org-a", "org-b"]),
    centre_code=st.sampled_from([None, "CTTH", "CETIEV"]),
)
PLAN = {"PEN-NACL": True, "CO2": True, "FLAME": False}
people = st.sets(st.sampled_from(["u", "v", "w"])).map(frozenset)
facts = st.builds(
    RequestFacts,
    status=st.sampled_from(list(RequestStatus)),
    organization_id=st.just("org-a"),
    centre_code=st.sampled_from([None, "CTTH", "CETIEV"]),
    proposed_centre_code=st.sampled_from([None, "CTTH"]),
    required_documents=st.just(DOCS),
    documents=st.sets(st.sampled_from(DOCS)).map(frozenset),
    round=st.integers(1, 3),
    plan=st.just(PLAN),
    retest_items=st.sets(st.sampled_from(list(PLAN))).map(frozenset),
    round_results=st.sets(st.sampled_from(list(PLAN))).map(frozenset),
    verdicts=st.dictionaries(
        st.sampled_from(list(PLAN)), st.sampled_from(["pass", "fail", "inconclusive"])
    ),
    round_recorders=people,
    recorders=people,
    verifiers=people,
    refused_by=st.sampled_from([None, "u", "v"]),
    excluded_decider=st.sampled_from([None, "u", "v"]),
    appeal_open=st.booleans(),
)


@hsettings(max_examples=600, deadline=None)
@given(facts=facts, actor=actors)
def test_listed_means_accepted_by_the_validator(facts: RequestFacts, actor: Actor) -> None:
    listed = allowed_actions(facts, actor)
    for action in ACTIONS:
        try:
            check(action, facts, actor, VALID_BODY[action])
            accepted = True
        except Refusal:
            accepted = False
        assert accepted == (action in listed), (action, facts, actor, listed)


# --- through the API, on the real stack ------------------------------------------------------


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


def bring_to(client: TestClient, cast: Cast, status: str) -> str:
    if status == "draft":
        return str(create_request(client, cast)["id"])
    rid = str(to_review(client, cast)["id"])
    steps = {
        "info_requested": [("officer", "request_info")],
        "awaiting_sample": [("officer", "accept")],
        "testing": [("officer", "accept"), ("tech", "receive_sample")],
        "declined": [("officer", "decline")],
    }.get(status, [])
    for who, action in steps:
        headers = cast.officer_auth if who == "officer" else cast.tech_auth
        assert act(client, headers, rid, action, VALID_BODY[action]).status_code == 200
    return rid


STATUSES = [
    "draft",
    "application_review",
    "info_requested",
    "awaiting_sample",
    "testing",
    "declined",
]
ROLES = ["maker", "officer", "tech", "other_maker", "other_tech"]


@pytest.mark.parametrize("status", STATUSES)
def test_every_role_every_action_matches_allowed_actions(
    client: TestClient, cast: Cast, status: str
) -> None:
    headers = {
        "maker": cast.maker_auth,
        "officer": cast.officer_auth,
        "tech": cast.tech_auth,
        "other_maker": cast.other_maker_auth,
        "other_tech": cast.other_tech_auth,
    }
    rid = bring_to(client, cast, status)
    for role in ROLES:
        seen = client.get(f"/api/v1/requests/{rid}", headers=headers[role])
        listed = seen.json()["allowed_actions"] if seen.status_code == 200 else []
        for action in ACTIONS:
            if action in listed:
                fresh = bring_to(client, cast, status)
                response = act(client, headers[role], fresh, action, VALID_BODY[action])
                assert response.status_code == 200, (role, status, action, response.text)
            else:
                response = act(client, headers[role], rid, action, VALID_BODY[action])
                assert response.status_code in (403, 404, 409), (role, status, action)
        assert get(client, cast.maker_auth, rid)["status"] == status
