"""The second half of the lifecycle through the HTTP API only: every FFP2 item with specimen
values, evidence, one failing item, a retest round and a grant — on PostgreSQL, a real
Temporal server and a real S3 store."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.app import create_app
from mutabaqa.settings import Settings
from tests.api.helpers import API
from tests.api.lab_helpers import (
    FAILING_PARAFFIN,
    FFP2_PASSING,
    Lab,
    make_lab,
    put_result,
    record_all,
    to_testing,
)
from tests.api.requests_helpers import (
    PNG,
    Cast,
    act,
    get,
    make_cast,
    upload_all,
    wait_status,
)
from tests.conftest import RunningWorker
from tests.smtp import SmtpSink

#: End-to-end paths: on SQLite (the embedded default) and on PostgreSQL.
pytestmark = pytest.mark.both_databases


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


@pytest.fixture(scope="module")
def lab(client: TestClient, cast: Cast) -> Lab:
    return make_lab(client, cast)


def test_ffp2_from_testing_to_certified_with_a_retest_round(
    client: TestClient, cast: Cast, lab: Lab, engine: Engine
) -> None:
    rid = to_testing(client, cast)
    tech = cast.tech_auth

    # Round 1: every item, one failing (paraffin penetration 6.9 ± 0.2 > 6).
    first = put_result(client, tech, rid, "PEN-NACL", FFP2_PASSING["PEN-NACL"])
    assert first.status_code == 201
    assert first.json()["verdict"] == "pass" and first.json()["round"] == 1
    correction = put_result(
        client, tech, rid, "PEN-NACL", {"values": ["2.2", "1.8", "2.4"], "uncertainty": "0.2"}
    )
    assert correction.status_code == 200
    assert correction.json()["revision"] == 2
    record_all(client, tech, rid, {"PEN-PARAFFIN": FAILING_PARAFFIN})
    til = get(client, cast.officer_auth, rid)["results"]
    assert {r["item_code"]: r["verdict"] for r in til}["PEN-PARAFFIN"] == "fail"

    evidence = client.post(
        f"{API}/requests/{rid}/evidence",
        headers=tech,
        data={"item_code": "PEN-PARAFFIN", "description": "Raw photometer export"},
        files={
            "file": ("paraffin.csv", b"specimen,penetration\n1,6.8\n2,7.0\n3,6.9\n", "text/csv")
        },
    )
    assert evidence.status_code == 201, evidence.text
    photo = client.post(
        f"{API}/requests/{rid}/evidence",
        headers=tech,
        files={"file": ("sample.png", PNG, "image/png")},
    )
    assert photo.status_code == 201, photo.text

    assert act(client, tech, rid, "submit_results").status_code == 200
    self_check = act(client, tech, rid, "verify_results")
    assert self_check.status_code == 409
    assert self_check.json()["type"].endswith("/separation-of-duties")
    verified = act(client, lab.verifier_auth, rid, "verify_results")
    assert verified.status_code == 200, verified.text
    assert verified.json()["status"] == "evaluated"
    report_1 = verified.json()["test_report"]
    assert report_1["version"] == 1 and re.fullmatch(r"sha256:[0-9a-f]{64}", report_1["digest"])

    refused_grant = act(client, cast.officer_auth, rid, "grant")
    assert refused_grant.status_code == 409
    assert refused_grant.json()["type"].endswith("/mandatory-item-not-passed")
    assert "PEN-PARAFFIN" in refused_grant.json()["detail"]

    retest = act(
        client,
        cast.officer_auth,
        rid,
        "request_retest",
        {"items": ["PEN-PARAFFIN"], "reason": "Re-test with a fresh sample set."},
    )
    assert retest.status_code == 200, retest.text
    assert (retest.json()["status"], retest.json()["round"]) == ("testing", 2)
    assert retest.json()["retest_items"] == ["PEN-PARAFFIN"]

    # Round 2: only the listed item.
    not_listed = put_result(client, tech, rid, "PEN-NACL", FFP2_PASSING["PEN-NACL"])
    assert not_listed.status_code == 409
    assert not_listed.json()["type"].endswith("/not-in-retest")
    again = put_result(
        client, tech, rid, "PEN-PARAFFIN", {"values": ["4.1", "4.3", "4.0"], "uncertainty": "0.2"}
    )
    assert again.status_code == 201
    assert (again.json()["round"], again.json()["verdict"]) == (2, "pass")
    assert act(client, tech, rid, "submit_results").status_code == 200
    second = act(client, lab.verifier_auth, rid, "verify_results")
    assert second.status_code == 200
    report_2 = second.json()["test_report"]
    assert report_2["version"] == 2 and report_2["digest"] != report_1["digest"]

    granted = act(client, cast.officer_auth, rid, "grant")
    assert granted.status_code == 200, granted.text
    done = granted.json()
    assert done["status"] == "certified"
    year = date.today().year
    assert re.fullmatch(rf"MA-CTTH-{year}-\d{{6}}", done["certificate_number"])
    assert done["allowed_actions"] == []

    # Every round stays on record; items not re-tested keep their round-1 result.
    rounds = {(r["item_code"], r["round"]): r for r in done["results"]}
    assert rounds[("PEN-PARAFFIN", 1)]["verdict"] == "fail"
    assert rounds[("PEN-PARAFFIN", 2)]["verdict"] == "pass"
    assert rounds[("PEN-NACL", 1)]["revision"] == 3  # two corrections kept as revisions
    assert ("PEN-NACL", 2) not in rounds
    assert len(done["results"]) == len(FFP2_PASSING) + 1
    assert all(r["verified_by"] for r in done["results"])

    with engine.connect() as conn:
        reports = conn.execute(
            sa.text(
                "SELECT version, superseded_at IS NULL FROM test_report WHERE request_id = :r "
                "ORDER BY version"
            ),
            {"r": rid},
        ).all()
        certificates = conn.execute(
            sa.text(
                "SELECT number, issue, test_report_digest, valid_until FROM certificate "
                "WHERE request_id = :r"
            ),
            {"r": rid},
        ).all()
        revisions = conn.execute(
            sa.text("SELECT count(*) FROM test_result WHERE request_id = :r"), {"r": rid}
        ).scalar_one()
    assert [tuple(r) for r in reports] == [(1, False), (2, True)]
    assert len(certificates) == 1
    number, issue, digest, valid_until = certificates[0]
    assert (number, issue, digest) == (done["certificate_number"], 0, report_2["digest"])
    # 36 months of validity (raw SQL: SQLite answers the date as text)
    assert date.fromisoformat(str(valid_until)[:10]).year == year + 3
    assert revisions == len(FFP2_PASSING) + 3  # two corrections, one retest

    timeline = client.get(f"{API}/requests/{rid}/timeline", headers=cast.officer_auth).json()
    actions = [e["action"] for e in timeline["items"]]
    assert actions.count("verify_results") == 2
    assert actions[-2:] == ["issue_certificate", "grant"]


def test_safety_verification_ends_verified_with_its_test_report(
    client: TestClient, cast: Cast, lab: Lab, engine: Engine, mailbox: SmtpSink
) -> None:
    created = client.post(
        f"{API}/requests",
        json={
            "product_id": cast.product["id"],
            "scheme_code": "FFP2-NM-EN-149",
            "kind": "safety_verification",
        },
        headers=cast.maker_auth,
    )
    assert created.status_code == 201
    rid = created.json()["id"]
    upload_all(client, cast, rid)
    assert act(client, cast.maker_auth, rid, "submit").status_code == 200
    wait_status(client, cast.officer_auth, rid, "application_review")
    assert act(client, cast.officer_auth, rid, "accept", {}).status_code == 200
    assert (
        act(
            client, cast.tech_auth, rid, "receive_sample", {"sample_ref": "SV-1", "condition": "ok"}
        ).status_code
        == 200
    )
    record_all(client, cast.tech_auth, rid)
    assert act(client, cast.tech_auth, rid, "submit_results").status_code == 200
    assert act(client, lab.verifier_auth, rid, "verify_results").status_code == 200
    granted = act(client, cast.officer_auth, rid, "grant")
    assert granted.status_code == 200, granted.text
    done = granted.json()
    assert done["status"] == "verified"
    assert done["certificate_number"] is None
    assert done["test_report"]["digest"].startswith("sha256:")
    with engine.connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT count(*) FROM certificate WHERE request_id = :r"), {"r": rid}
            ).scalar_one()
            == 0
        )
    number = done["number"]
    mailbox.wait_for(
        lambda mails: any(
            m.message["X-Mutabaqa-Request"] == number
            and m.message["X-Mutabaqa-Notification"] == "verified"
            and m.rcpt_tos == [cast.maker["email"]]
            for m in mails
        ),
        timeout=30,
    )
