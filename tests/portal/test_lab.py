"""The laboratory's pages over plain HTTP: the centre's reach, CSRF, results and evidence.

A technician sees their centre's requests only (another centre's request is 404, as in
the JSON API); a POST without its token is 403 and records nothing; a value outside the
limits is shown failing once saved; the same technician cannot verify their own results.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from minio import Minio

import api.portal.lab as lab_pages
from api.app import create_app
from domain.actions import ACTION_BODIES, ReasonBody
from domain.permissions import Role
from mutabaqa.settings import Settings
from tests.api.helpers import API, make_user
from tests.api.lab_helpers import FAILING_PARAFFIN, FFP2_PASSING, Lab, make_lab, to_testing
from tests.api.requests_helpers import PDF, Cast, get, make_cast, to_review
from tests.conftest import RunningWorker
from tests.portal.helpers import csrf_of, policy_is_strict, portal_login


@pytest.fixture(scope="module")
def people(settings: Settings, worker: RunningWorker) -> tuple[Cast, Lab, dict[str, Any]]:
    with TestClient(create_app(settings)) as client:
        cast = make_cast(client, settings)
        lab = make_lab(client, cast)
        stranger, _ = make_user(client, cast.admin, [Role.LAB_TECHNICIAN], centre_code="CETIEV")
        return cast, lab, stranger


@pytest.fixture
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _results(client: TestClient, cast: Cast, rid: str) -> list[dict[str, Any]]:
    return list(get(client, cast.tech_auth, rid)["results"])


def _form(values: dict[str, str], page: Any) -> dict[str, str]:
    key = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', page.text)
    assert key
    return values | {"csrf": csrf_of(page), "idempotency_key": key.group(1)}


def _evidence_objects(store: Minio, settings: Settings, rid: str) -> list[str]:
    """The request's evidence objects in the bucket (its dossier is under documents/)."""
    found = store.list_objects(
        settings.s3_evidence_bucket, prefix=f"requests/{rid}/evidence/", recursive=True
    )
    return [str(item.object_name) for item in found]


BOUNDARY = "lab-portal-test-boundary"


def _multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart body whose parts come in the given order (name, filename, content)."""
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        kind = "Content-Type: application/pdf\r\n" if filename else ""
        head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{kind}\r\n"
        body += head.encode() + content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def test_the_work_list_is_the_centres_and_another_centre_gets_404(
    client: TestClient, people: tuple[Cast, Lab, dict[str, Any]]
) -> None:
    cast, _lab, stranger = people
    waiting = to_review(client, cast)["id"]
    assert client.post(
        f"{API}/requests/{waiting}/actions/accept", json={}, headers=cast.officer_auth
    ).is_success
    number = get(client, cast.tech_auth, waiting)["number"]

    assert portal_login(client, cast.tech["email"]).status_code == 303
    home = client.get("/")
    assert 'href="/lab"' in home.text
    work = client.get("/lab?lang=en")
    assert work.status_code == 200 and policy_is_strict(work)
    assert "script-src 'self'" in work.headers["content-security-policy"]
    assert f'href="/lab/requests/{waiting}/sample"' in work.text and number in work.text
    assert "In this status for" in work.text
    only_testing = client.get("/lab?status=testing")
    assert number not in only_testing.text
    sample = client.get(f"/lab/requests/{waiting}/sample")
    assert sample.status_code == 200 and 'name="sample_ref"' in sample.text

    client.cookies.clear()
    assert portal_login(client, stranger["email"]).status_code == 303
    assert number not in client.get("/lab").text
    for path in ("sample", "results"):
        assert client.get(f"/lab/requests/{waiting}/{path}").status_code == 404
    # Their own valid token does not reach another centre's request either.
    token = csrf_of(client.get("/lab"))
    refused = client.post(
        f"/lab/requests/{waiting}/actions/receive_sample",
        data={"csrf": token, "sample_ref": "X-1", "condition": "fine"},
    )
    assert refused.status_code == 404
    assert get(client, cast.tech_auth, waiting)["status"] == "awaiting_sample"


def test_past_the_cap_the_work_list_keeps_the_longest_waiting_and_says_so(
    client: TestClient, people: tuple[Cast, Lab, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cast, _lab, _stranger = people
    to_testing(client, cast), to_testing(client, cast)
    monkeypatch.setattr(lab_pages, "LAB_LIMIT", 1)
    assert portal_login(client, cast.tech["email"]).status_code == 303
    page = client.get("/lab?status=testing&lang=en")
    assert page.status_code == 200 and 'class="list-capped"' in page.text
    listed = client.get(f"{API}/requests?status=testing&limit=200", headers=cast.tech_auth).json()
    assert listed["next_cursor"] is None
    oldest = min(listed["items"], key=lambda item: (item["updated_at"], item["id"]))
    shown = re.findall(r'href="/lab/requests/([^/"]+)/results"', page.text)
    assert shown == [oldest["id"]]  # the one unchanged the longest, not the newest


def test_results_need_the_token_and_a_value_outside_the_limits_fails(
    client: TestClient, people: tuple[Cast, Lab, dict[str, Any]]
) -> None:
    cast, _lab, _stranger = people
    rid = to_testing(client, cast)
    assert portal_login(client, cast.tech["email"]).status_code == 303
    sheet = client.get(f"/lab/requests/{rid}/results?lang=en")
    assert sheet.status_code == 200
    assert 'src="/static/results.js" defer' in sheet.text and "<script>" not in sheet.text
    assert 'data-lower="' in sheet.text and 'data-rule="guarded"' in sheet.text
    body = {
        "values": " ".join(FAILING_PARAFFIN["values"]),
        "uncertainty": FAILING_PARAFFIN["uncertainty"],
    }

    forged = client.post(f"/lab/requests/{rid}/results/PEN-PARAFFIN", data=body)
    assert forged.status_code == 403
    assert _results(client, cast, rid) == []

    saved = client.post(f"/lab/requests/{rid}/results/PEN-PARAFFIN", data=_form(body, sheet))
    assert saved.status_code == 200 and saved.url.fragment == "item-PEN-PARAFFIN"
    assert 'data-saved-verdict="fail"' in saved.text
    [result] = _results(client, cast, rid)
    assert result["verdict"] == "fail" and result["values"] == FAILING_PARAFFIN["values"]

    unreadable = client.post(
        f"/lab/requests/{rid}/results/CO2", data=_form({"values": "0,6 0.7"}, sheet)
    )
    assert unreadable.status_code == 422
    assert 'aria-describedby="item-CO2-error"' in unreadable.text
    assert len(_results(client, cast, rid)) == 1


def test_evidence_is_refused_without_the_token_and_stored_with_it(
    client: TestClient,
    people: tuple[Cast, Lab, dict[str, Any]],
    settings: Settings,
    store: Minio,
) -> None:
    cast, _lab, _stranger = people
    rid = to_testing(client, cast)
    assert portal_login(client, cast.tech["email"]).status_code == 303
    sheet = client.get(f"/lab/requests/{rid}/results")
    assert re.search(r"<form data-upload [^>]*enctype=\"multipart/form-data\"", sheet.text)
    token = csrf_of(sheet)
    url = f"/lab/requests/{rid}/evidence"
    files = {"file": ("report.pdf", PDF, "application/pdf")}

    assert client.post(url, files=files, data={"item_code": "CO2"}).status_code == 403
    wrong = client.post(url, files=files, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    # The token must come before the file: it is checked before any of the file is stored.
    late = client.post(
        url,
        content=_multipart(("file", "late.pdf", PDF), ("csrf", None, token.encode())),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert late.status_code == 403
    assert get(client, cast.tech_auth, rid)["evidence"] == []
    assert _evidence_objects(store, settings, rid) == []  # nor any byte in the store

    stored = client.post(url, files=files, data={"csrf": token, "item_code": "CO2"})
    assert stored.status_code == 200 and "report.pdf" in stored.text
    by_header = client.post(
        url, files={"file": ("raw.pdf", PDF, "application/pdf")}, headers={"X-CSRF-Token": token}
    )
    assert by_header.status_code == 200
    evidence = get(client, cast.tech_auth, rid)["evidence"]
    assert sorted(e["filename"] for e in evidence) == ["raw.pdf", "report.pdf"]
    assert len(_evidence_objects(store, settings, rid)) == 2  # where the check above looked


def test_the_recorder_cannot_verify_and_a_colleague_can(
    client: TestClient, people: tuple[Cast, Lab, dict[str, Any]]
) -> None:
    cast, lab, _stranger = people
    rid = to_testing(client, cast)
    assert portal_login(client, cast.tech["email"]).status_code == 303
    for item, body in FFP2_PASSING.items():
        sheet = client.get(f"/lab/requests/{rid}/results")
        form = {"values": " ".join(body["values"]), "uncertainty": body["uncertainty"]}
        assert client.post(
            f"/lab/requests/{rid}/results/{item}", data=_form(form, sheet)
        ).is_success
    sheet = client.get(f"/lab/requests/{rid}/results")
    submitted = client.post(f"/lab/requests/{rid}/actions/submit_results", data=_form({}, sheet))
    assert submitted.status_code == 200
    assert get(client, cast.tech_auth, rid)["status"] == "results_submitted"

    own = client.post(f"/lab/requests/{rid}/actions/verify_results", data=_form({}, submitted))
    assert own.status_code == 409 and 'role="alert"' in own.text
    assert "recorded none of this round" in own.text  # the server's reason, and in French:
    assert "aucun résultat de ce cycle" in own.text
    assert client.post(f"/lab/requests/{rid}/actions/verify_results").status_code == 403

    client.cookies.clear()
    assert portal_login(client, lab.verifier["email"]).status_code == 303
    sheet = client.get(f"/lab/requests/{rid}/results")
    verified = client.post(f"/lab/requests/{rid}/actions/verify_results", data=_form({}, sheet))
    assert verified.status_code == 200
    assert get(client, cast.tech_auth, rid)["status"] == "evaluated"


def test_a_refused_submit_shows_its_field_errors_next_to_its_form(
    client: TestClient, people: tuple[Cast, Lab, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The results page's actions take no fields today; were their body to need one (here
    a reason, patched in), the refusal shows next to the form instead of being dropped."""
    cast, _lab, _stranger = people
    rid = to_testing(client, cast)
    monkeypatch.setitem(ACTION_BODIES, "submit_results", ReasonBody)
    assert portal_login(client, cast.tech["email"]).status_code == 303
    sheet = client.get(f"/lab/requests/{rid}/results?lang=en")
    refused = client.post(f"/lab/requests/{rid}/actions/submit_results", data=_form({}, sheet))
    assert refused.status_code == 422
    assert 'id="submit_results-reason-error"' in refused.text
    assert 'aria-describedby="submit_results-reason-error"' in refused.text
    assert "This field is required." in refused.text
    assert get(client, cast.tech_auth, rid)["status"] == "testing"
