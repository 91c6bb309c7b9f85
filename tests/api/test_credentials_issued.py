"""Every certificate issue is also a W3C verifiable credential, issued by the worker from the
outbox after the PDF, served as stored bytes, with two status-list entries the certificate
workflow keeps current (issue 13). Checked the way an outside verifier would: the proof
and the lists with the independent verifier (``tests/vc_verifier.py``) against the served
``/.well-known/did.json``; the credential against the UNTP 0.7.0 schema and contexts.
Real Temporal, S3 store and database (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from activities.credentials import credential_pdf_url
from api.app import create_app
from domain.credentials import digest_multibase
from models.credentials import StatusAllocation
from mutabaqa.jsonld import expand
from mutabaqa.jsonld.checks import stray_terms, w3c_dcc_schema
from mutabaqa.settings import Settings
from tests import vc_verifier
from tests.api.lab_helpers import Lab, make_lab
from tests.api.requests_helpers import Cast, make_cast
from tests.api.test_certificate_lifecycle import cert_act, issue
from tests.conftest import RunningWorker

pytestmark = pytest.mark.both_databases

MIN_LIST_BITS = 131072


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    # A verifier polling while the outbox catches up; the rate limit has its own tests.
    relaxed = settings.model_copy(
        update={"public_rate_per_minute": 100_000, "public_rate_burst": 10_000}
    )
    with TestClient(create_app(relaxed)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


@pytest.fixture(scope="module")
def lab(client: TestClient, cast: Cast) -> Lab:
    return make_lab(client, cast)


def fetch(client: TestClient, url: str, **params: str) -> httpx.Response:
    """GET a public URL the credential names (its path on the app under test)."""
    path = httpx.URL(url).raw_path.decode()
    response: httpx.Response = client.get(path, params=params, follow_redirects=False)
    return response


def wait_credential(client: TestClient, number: str, issue_no: int | None = None) -> Any:
    """Poll until the worker has issued it: 404 with Retry-After meanwhile."""
    path = f"/credentials/{number}" + ("" if issue_no is None else f"/{issue_no}")
    deadline = time.monotonic() + 60
    while True:
        response = client.get(path)
        if response.status_code == 200:
            assert response.headers["content-type"] == "application/vc"
            return response.json()
        assert response.status_code == 404, response.text
        assert response.json()["type"].endswith("credential-pending")
        assert response.headers["retry-after"].isdigit()
        assert time.monotonic() < deadline, "credential not issued within 60 s"
        time.sleep(0.2)


def verified_list(client: TestClient, entry: dict[str, Any], did_document: Any, **q: str) -> Any:
    response = fetch(client, entry["statusListCredential"], **q)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vc"
    status_list = response.json()
    vc_verifier.verify_with_did_document(status_list, did_document)
    assert status_list["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert status_list["credentialSubject"]["statusPurpose"] == entry["statusPurpose"]
    return status_list


def bit(client: TestClient, entry: dict[str, Any], did_document: Any, **q: str) -> int:
    status_list = verified_list(client, entry, did_document, **q)
    encoded = status_list["credentialSubject"]["encodedList"]
    return vc_verifier.status_bit(encoded, int(entry["statusListIndex"]))


def wait_bit(client: TestClient, entry: dict[str, Any], did_document: Any, expected: int) -> None:
    """The list follows the record through the outbox: poll until it says ``expected``."""
    deadline = time.monotonic() + 30
    while bit(client, entry, did_document) != expected:
        assert time.monotonic() < deadline, f"{entry['statusPurpose']} bit never {expected}"
        time.sleep(0.2)


def entries(credential: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["statusPurpose"]: e for e in credential["credentialStatus"]}


def test_a_granted_certificate_gets_a_credential_any_verifier_can_check(
    client: TestClient, cast: Cast, lab: Lab, settings: Settings
) -> None:
    number = issue(client, cast, lab)
    credential = wait_credential(client, number)
    did_document = client.get("/.well-known/did.json").json()

    # The proof, with the key the DID document publishes (the verifier is written from
    # the W3C texts; it does not import the project's signing code).
    vc_verifier.verify_with_did_document(credential, did_document)
    assert credential["issuer"]["id"] == did_document["id"]
    assert credential["type"] == ["VerifiableCredential", "DigitalConformityCredential"]
    assert credential["id"].endswith(f"/credentials/{number}/0")
    assert client.get(f"/credentials/{number}/0").json() == credential
    # The QR's landing page links to it, in the reader's language.
    page = client.get(f"/verify/{number}", params={"lang": "fr"}, headers={"Accept": "text/html"})
    assert f'href="/credentials/{number}" type="application/vc"' in page.text
    assert "L’attestation vérifiable (W3C)" in page.text

    # UNTP 0.7.0: the DCC schema (W3C's two status entries aside, docs/credentials.md) and
    # no term outside the contexts' explicit definitions; the contexts load offline.
    validator = jsonschema.Draft202012Validator(
        w3c_dcc_schema(), format_checker=jsonschema.FormatChecker()
    )
    assert [e.message for e in validator.iter_errors(credential)] == []
    assert stray_terms(credential) == []
    assert expand(credential)

    subject = credential["credentialSubject"]
    assert subject["attestationType"] == "certification"
    assert subject["assessorLevel"] == "3rdParty"
    (assessment,) = subject["conformityAssessment"]
    assert assessment["conformance"] is True
    assert all("measure" not in p for p in assessment["assessedPerformance"])
    assert {p["score"]["code"] for p in assessment["assessedPerformance"]} == {"pass"}

    # The PDF link is public and its digest is of the bytes it serves.
    link = subject["conformityCertificate"]
    assert link["linkURL"] == credential_pdf_url(settings.public_base_url, number, 0)
    pdf = fetch(client, link["linkURL"])
    assert pdf.status_code == 307, pdf.text
    pdf_bytes = httpx.get(pdf.headers["location"]).content
    assert pdf_bytes.startswith(b"%PDF")
    assert link["digestMultibase"] == digest_multibase(pdf_bytes)

    # Two status entries, indices as base-10 strings, in lists of at least 131,072 entries,
    # both bits 0 for an active certificate.
    by_purpose = entries(credential)
    assert set(by_purpose) == {"suspension", "revocation"}
    for entry in by_purpose.values():
        assert entry["type"] == "BitstringStatusListEntry"
        assert entry["statusListIndex"] == str(int(entry["statusListIndex"]))
        status_list = verified_list(client, entry, did_document)
        # (the verifier refuses lists under 131,072 entries)
        assert status_list["credentialSubject"]["ttl"] > 0
        assert bit(client, entry, did_document) == 0


def test_suspend_restore_withdraw_drive_the_bits_and_history(
    client: TestClient, cast: Cast, lab: Lab
) -> None:
    number = issue(client, cast, lab)
    credential = wait_credential(client, number)
    did_document = client.get("/.well-known/did.json").json()
    suspension, revocation = entries(credential)["suspension"], entries(credential)["revocation"]
    wait_bit(client, suspension, did_document, 0)
    before = datetime.now(UTC)
    time.sleep(0.05)

    suspended = cert_act(client, cast.officer_auth, number, "suspend", "Found on the market")
    assert suspended.status_code == 200, suspended.text
    wait_bit(client, suspension, did_document, 1)
    assert bit(client, revocation, did_document) == 0
    during = datetime.now(UTC)
    time.sleep(0.05)

    restored = cert_act(client, cast.officer_auth, number, "restore", "Corrective action closed")
    assert restored.status_code == 200, restored.text
    wait_bit(client, suspension, did_document, 0)
    after = datetime.now(UTC)

    # The list as it stood: before the suspension 0, during it 1.
    assert bit(client, suspension, did_document, timestamp=before.isoformat()) == 0
    assert bit(client, suspension, did_document, timestamp=during.isoformat()) == 1
    too_early = (before - timedelta(days=3650)).isoformat()
    old = fetch(client, suspension["statusListCredential"], timestamp=too_early)
    assert old.status_code == 404

    # "Was it valid at that instant?"
    for instant, valid, status in (
        (before, True, "active"),
        (during, False, "suspended"),
        (after, True, "active"),
    ):
        answer = client.get(f"/verify/{number}", params={"at": instant.isoformat()})
        assert answer.status_code == 200, answer.text
        assert (answer.json()["valid"], answer.json()["status"]) == (valid, status), instant
    not_yet = client.get(f"/verify/{number}", params={"at": too_early}).json()
    assert (not_yet["issue"], not_yet["valid"]) == (None, False)

    withdrawn = cert_act(client, cast.officer_auth, number, "withdraw", "Fraud")
    assert withdrawn.status_code == 200, withdrawn.text
    wait_bit(client, revocation, did_document, 1)
    assert bit(client, suspension, did_document) == 0


def test_a_reissue_revokes_the_old_credential_and_issues_a_new_one(
    client: TestClient, cast: Cast, lab: Lab, engine: Engine
) -> None:
    number = issue(client, cast, lab)
    old = wait_credential(client, number)
    did_document = client.get("/.well-known/did.json").json()
    reissued = cert_act(client, cast.officer_auth, number, "reissue", "Revised standard")
    assert reissued.status_code == 200, reissued.text
    new = wait_credential(client, number, 1)
    assert wait_credential(client, number) == new  # the latest issue's
    vc_verifier.verify_with_did_document(new, did_document)
    assert new["id"].endswith(f"/credentials/{number}/1")
    wait_bit(client, entries(old)["revocation"], did_document, 1)
    assert bit(client, entries(new)["revocation"], did_document) == 0
    assert bit(client, entries(new)["suspension"], did_document) == 0

    # No two credentials share an index (the two issues here and any issued before).
    with Session(engine) as session:
        rows = session.exec(select(StatusAllocation)).all()
    keys = [(r.purpose, r.list_id, r.status_index) for r in rows]
    assert len(rows) >= 4 and len(keys) == len(set(keys))
    assert all(0 <= r.status_index < MIN_LIST_BITS for r in rows)


def test_unknown_and_malformed_asks_are_clear(client: TestClient) -> None:
    assert client.get("/credentials/MA-NOPE-0000-000000").status_code == 404
    assert client.get("/credentials/MA-NOPE-0000-000000/0").status_code == 404
    assert client.get("/credentials/x/-1").status_code == 422
    assert client.get("/status-lists/other/1").status_code == 422
    assert client.get("/status-lists/suspension/999999").status_code == 404
    naive = client.get("/status-lists/suspension/1", params={"timestamp": "2026-01-01T00:00"})
    assert naive.status_code == 400
    assert client.get("/status-lists/suspension/1", params={"timestamp": "soon"}).status_code == 422
