"""Guards of the second half of SPEC section 4: each refuses with the right status and type
and leaves the request unchanged (rows and workflow history); appeals; one winner."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.app import create_app
from mutabaqa.settings import Settings
from tests.api.helpers import Headers
from tests.api.lab_helpers import (
    FAILING_PARAFFIN,
    Lab,
    make_lab,
    record_all,
    to_evaluated,
    to_testing,
)
from tests.api.requests_helpers import Cast, act, get, make_cast
from tests.api.test_request_guards import history_length, snapshot, workflow_id
from tests.conftest import RunningWorker

APPEAL_WINDOW = 3.0


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    short = settings.model_copy(update={"appeal_window_seconds": APPEAL_WINDOW})
    with TestClient(create_app(short)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


@pytest.fixture(scope="module")
def lab(client: TestClient, cast: Cast) -> Lab:
    return make_lab(client, cast)


def refused_unchanged(
    client: TestClient,
    settings: Settings,
    engine: Engine,
    rid: str,
    headers: Headers,
    action: str,
    body: dict[str, Any],
    code: int,
    kind: str,
) -> dict[str, Any]:
    wid = workflow_id(engine, rid)
    history_before = asyncio.run(history_length(settings, wid, settle=True))
    before = snapshot(engine, rid)
    response = act(client, headers, rid, action, body)
    assert response.status_code == code, response.text
    problem = dict(response.json())
    assert problem["type"].endswith(f"/problems/{kind}")
    assert snapshot(engine, rid) == before
    assert asyncio.run(history_length(settings, wid)) == history_before
    return problem


def test_a_person_who_recorded_results_may_not_decide(
    client: TestClient, cast: Cast, lab: Lab, settings: Settings, engine: Engine
) -> None:
    # The dual-role person records (as technician), then tries to decide (as officer).
    rid = to_evaluated(client, cast, lab, recorder=lab.dual_auth)
    for action, body in (
        ("grant", {}),
        ("refuse", {"reason": "no"}),
        ("request_retest", {"items": ["CO2"], "reason": "again"}),
    ):
        problem = refused_unchanged(
            client, settings, engine, rid, lab.dual_auth, action, body, 409, "separation-of-duties"
        )
        assert problem["request_status"] == "evaluated"
        assert action not in problem["allowed_actions"]
    assert act(client, cast.officer_auth, rid, "grant").status_code == 200


def test_a_person_who_verified_results_may_not_decide(
    client: TestClient, cast: Cast, lab: Lab, settings: Settings, engine: Engine
) -> None:
    rid = to_testing(client, cast)
    record_all(client, cast.tech_auth, rid)
    assert act(client, cast.tech_auth, rid, "submit_results").status_code == 200
    assert act(client, lab.dual_auth, rid, "verify_results").status_code == 200
    refused_unchanged(
        client, settings, engine, rid, lab.dual_auth, "grant", {}, 409, "separation-of-duties"
    )


def test_grant_with_a_failing_mandatory_item_is_refused(
    client: TestClient, cast: Cast, lab: Lab, settings: Settings, engine: Engine
) -> None:
    rid = to_evaluated(client, cast, lab, {"PEN-PARAFFIN": FAILING_PARAFFIN})
    problem = refused_unchanged(
        client,
        settings,
        engine,
        rid,
        cast.officer_auth,
        "grant",
        {},
        409,
        "mandatory-item-not-passed",
    )
    assert "PEN-PARAFFIN" in problem["detail"]


def test_retest_of_an_item_outside_the_plan_is_404(
    client: TestClient, cast: Cast, lab: Lab, settings: Settings, engine: Engine
) -> None:
    rid = to_evaluated(client, cast, lab)
    refused_unchanged(
        client,
        settings,
        engine,
        rid,
        cast.officer_auth,
        "request_retest",
        {"items": ["NOT-AN-ITEM"], "reason": "x"},
        404,
        "not-found",
    )


def test_appeals(
    client: TestClient, cast: Cast, lab: Lab, settings: Settings, engine: Engine
) -> None:
    rid = to_evaluated(client, cast, lab, {"PEN-PARAFFIN": FAILING_PARAFFIN})
    refused = act(client, cast.officer_auth, rid, "refuse", {"reason": "Penetration too high."})
    assert refused.status_code == 200
    assert refused.json()["status"] == "refused"
    assert refused.json()["appeal_until"] is not None
    assert get(client, cast.maker_auth, rid)["allowed_actions"] == ["appeal"]

    refused_unchanged(
        client, settings, engine, rid, cast.maker_auth, "withdraw", {}, 409, "invalid-transition"
    )
    appealed = act(client, cast.maker_auth, rid, "appeal", {"reason": "Flow rate was wrong."})
    assert appealed.status_code == 200 and appealed.json()["status"] == "under_appeal"
    # Decided by someone other than the refusing officer.
    refused_unchanged(
        client,
        settings,
        engine,
        rid,
        cast.officer_auth,
        "overturn",
        {"reason": "I was wrong"},
        409,
        "separation-of-duties",
    )
    refused_unchanged(
        client, settings, engine, rid, cast.maker_auth, "withdraw", {}, 409, "invalid-transition"
    )
    overturned = act(client, lab.officer2_auth, rid, "overturn", {"reason": "Method error."})
    assert overturned.status_code == 200 and overturned.json()["status"] == "evaluated"
    # The next decision is not taken by the one who refused.
    refused_unchanged(
        client,
        settings,
        engine,
        rid,
        cast.officer_auth,
        "request_retest",
        {"items": ["PEN-PARAFFIN"], "reason": "again"},
        409,
        "separation-of-duties",
    )
    retest = act(
        client,
        lab.officer2_auth,
        rid,
        "request_retest",
        {"items": ["PEN-PARAFFIN"], "reason": "Re-test at 95 l/min."},
    )
    assert retest.status_code == 200 and retest.json()["round"] == 2
    with engine.connect() as conn:
        decision = conn.execute(
            sa.text("SELECT decision, decided_by FROM appeal WHERE request_id = :r"), {"r": rid}
        ).one()
    assert tuple(decision) == ("overturned", lab.officer2["id"])


def test_one_appeal_per_refusal_and_upheld_is_final(
    client: TestClient, cast: Cast, lab: Lab, settings: Settings, engine: Engine
) -> None:
    rid = to_evaluated(client, cast, lab, {"PEN-PARAFFIN": FAILING_PARAFFIN})
    assert act(client, cast.officer_auth, rid, "refuse", {"reason": "No."}).status_code == 200
    assert act(client, cast.maker_auth, rid, "appeal", {"reason": "Yes."}).status_code == 200
    upheld = act(client, lab.officer2_auth, rid, "uphold", {"reason": "Confirmed."})
    assert upheld.status_code == 200 and upheld.json()["status"] == "refused"
    problem = refused_unchanged(
        client,
        settings,
        engine,
        rid,
        cast.maker_auth,
        "appeal",
        {"reason": "Again"},
        409,
        "request-finished",
    )
    assert problem["allowed_actions"] == []


@pytest.mark.timers
def test_appeal_after_the_window_is_refused(
    client: TestClient, cast: Cast, lab: Lab, settings: Settings, engine: Engine
) -> None:
    rid = to_evaluated(client, cast, lab, {"PEN-PARAFFIN": FAILING_PARAFFIN})
    assert act(client, cast.officer_auth, rid, "refuse", {"reason": "No."}).status_code == 200
    time.sleep(APPEAL_WINDOW + 1.0)
    problem = refused_unchanged(
        client,
        settings,
        engine,
        rid,
        cast.maker_auth,
        "appeal",
        {"reason": "Late"},
        409,
        "request-finished",
    )
    assert problem["request_status"] == "refused"


def test_withdraw_after_a_decision_is_refused(
    client: TestClient, cast: Cast, lab: Lab, settings: Settings, engine: Engine
) -> None:
    rid = to_evaluated(client, cast, lab)
    assert act(client, cast.officer_auth, rid, "grant").status_code == 200
    refused_unchanged(
        client, settings, engine, rid, cast.maker_auth, "withdraw", {}, 409, "request-finished"
    )


@pytest.mark.concurrency
def test_grant_and_refuse_at_the_same_moment_have_one_winner(
    client: TestClient, cast: Cast, lab: Lab, engine: Engine
) -> None:
    rid = to_evaluated(client, cast, lab)
    calls = [
        (cast.officer_auth, "grant", {}),
        (lab.officer2_auth, "refuse", {"reason": "Competing decision."}),
    ]
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda c: act(client, c[0], rid, c[1], c[2]), calls))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409], [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 200).json()["status"]
    assert winner in ("certified", "refused")
    assert get(client, cast.maker_auth, rid)["status"] == winner
    with engine.connect() as conn:
        decisions = (
            conn.execute(
                sa.text(
                    "SELECT action FROM audit_event "
                    "WHERE chain = :c AND action IN ('grant', 'refuse')"
                ),
                {"c": f"request:{rid}"},
            )
            .scalars()
            .all()
        )
        certificates = conn.execute(
            sa.text("SELECT count(*) FROM certificate WHERE request_id = :r"), {"r": rid}
        ).scalar_one()
    assert len(decisions) == 1
    assert certificates == (1 if winner == "certified" else 0)
