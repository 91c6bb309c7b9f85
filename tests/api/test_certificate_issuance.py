"""A certificate issued through the API is signed, bilingual, scannable and verifiable —
checked with tools independent of the code that made it (poppler, zbar, NSS, cryptography)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.testclient import TestClient

from activities.certificate_pdf import extract_signed_payload, verify_pades
from activities.pki import load_trust_roots
from api.app import create_app
from mutabaqa.settings import Settings
from tests.activities.test_certificate_pdf import (
    append_incremental_update,
    page_png,
    pdf_text,
    pdfsig,
    qr_codes,
)
from tests.api.helpers import API
from tests.api.lab_helpers import Lab, make_lab, to_evaluated
from tests.api.requests_helpers import Cast, act, make_cast, wait_pdf_link
from tests.conftest import RunningWorker
from tests.mutabaqa.test_signing import _b64url_decode, _tiny_jcs

#: End-to-end paths: on SQLite (the embedded default) and on PostgreSQL.
pytestmark = pytest.mark.both_databases


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    # The QR code's URL comes from the worker's settings: the session worker's.
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


@pytest.fixture(scope="module")
def lab(client: TestClient, cast: Cast) -> Lab:
    return make_lab(client, cast)


@pytest.fixture(scope="module")
def issued(client: TestClient, cast: Cast, lab: Lab) -> dict[str, Any]:
    rid = to_evaluated(client, cast, lab)
    granted = act(client, cast.officer_auth, rid, "grant")
    assert granted.status_code == 200, granted.text
    number = granted.json()["certificate_number"]
    certificate = client.get(f"{API}/certificates/{number}", headers=cast.maker_auth)
    assert certificate.status_code == 200, certificate.text
    link = wait_pdf_link(client, cast.maker_auth, number)
    pdf = httpx.get(link.headers["location"], timeout=30).content
    certificate = client.get(f"{API}/certificates/{number}", headers=cast.maker_auth)
    return {"number": number, "certificate": certificate.json(), "pdf": pdf}


def independent_verify(payload: dict[str, Any], signature: str, jwk: dict[str, str]) -> bool:
    key = Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk["x"]))
    try:
        key.verify(_b64url_decode(signature), _tiny_jcs(payload))
    except InvalidSignature:
        return False
    return True


def test_pdf_text_and_qr_code(issued: dict[str, Any], settings: Settings, tmp_path: Path) -> None:
    pdf = issued["pdf"]
    assert pdf.startswith(b"%PDF-")
    text = pdf_text(pdf, tmp_path)
    assert "شهادة المطابقة" in text  # logical order, not presentation forms
    assert not any("\ufb50" <= ch <= "\ufdff" or "\ufe70" <= ch <= "\ufeff" for ch in text)
    assert "Certificat de conformité" in text
    assert issued["number"] in text
    if os.environ.get("MUTABAQA_PDF_PREVIEW"):
        Path(os.environ["MUTABAQA_PDF_PREVIEW"]).write_bytes(page_png(pdf, tmp_path).read_bytes())
    expected = f"{settings.public_base_url.rstrip('/')}/verify/{issued['number']}"
    assert qr_codes(page_png(pdf, tmp_path)) == [expected]


def test_json_signature_verifies_against_the_published_key(
    client: TestClient, issued: dict[str, Any]
) -> None:
    public = client.get(f"/verify/{issued['number']}", headers={"Accept": "application/json"})
    assert public.status_code == 200
    body = public.json()
    keys = client.get("/.well-known/mutabaqa-keys.json").json()["keys"]
    jwk = next(k for k in keys if k["kid"] == body["key_id"])
    payload = body["certificate"]
    assert payload["kid"] == body["key_id"] and payload["number"] == issued["number"]
    assert independent_verify(payload, body["signature"], jwk)
    altered = copy.deepcopy(payload)
    altered["valid_until"] = altered["valid_until"][:-1] + (
        "1" if altered["valid_until"][-1] != "1" else "2"
    )
    assert not independent_verify(altered, body["signature"], jwk)
    embedded = extract_signed_payload(issued["pdf"])
    assert embedded is not None and embedded["certificate"] == payload


def test_pades_signature_validates_with_the_deployment_ca_and_breaks_on_update(
    issued: dict[str, Any], settings: Settings, tmp_path: Path
) -> None:
    pdf = issued["pdf"]
    roots = load_trust_roots(settings.resolved_pdf_signing_dir)
    assert verify_pades(pdf, roots)
    report = pdfsig(pdf, tmp_path)
    assert "Signature Validation: Signature is Valid." in report
    assert "Total document signed" in report
    updated = append_incremental_update(pdf)
    assert not verify_pades(updated, roots)
    assert "Total document signed" not in pdfsig(updated, tmp_path)


def test_mutabaqa_verify_accepts_the_issued_pdf(
    client: TestClient, issued: dict[str, Any], settings: Settings, tmp_path: Path
) -> None:
    pdf_path = tmp_path / "certificate.pdf"
    pdf_path.write_bytes(issued["pdf"])
    keys_path = tmp_path / "keys.json"
    keys_path.write_text(json.dumps(client.get("/.well-known/mutabaqa-keys.json").json()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUTABAQA_")}
    ca = settings.resolved_pdf_signing_dir / "ca-cert.pem"
    done = subprocess.run(
        [sys.executable, "-m", "mutabaqa", "verify", str(pdf_path), "--keys", str(keys_path),
         "--ca", str(ca)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert issued["number"] in done.stdout


def test_only_those_who_may_read_it_get_the_pdf(
    client: TestClient, cast: Cast, issued: dict[str, Any]
) -> None:
    number = issued["number"]
    url = f"{API}/certificates/{number}/pdf"
    assert client.get(url, headers=cast.other_maker_auth).status_code == 404
    assert client.get(url, headers=cast.admin).status_code == 403
    assert client.get(url).status_code == 401
    assert client.get(url, headers=cast.officer_auth, follow_redirects=False).status_code == 307
    assert issued["certificate"]["pdf_sha256"] is not None
