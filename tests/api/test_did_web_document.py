"""``GET /.well-known/did.json``: the deployment's did:web document, served from the public
key files (retired keys included), checked with the independent verifier
(``tests/vc_verifier.py``) against a proof made by the worker's key ring."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from api.app import create_app
from mutabaqa.did_document import issue_proof
from mutabaqa.settings import Settings
from mutabaqa.signing import KeyRing, public_key_pem
from tests import vc_verifier

DID_JSON = "/.well-known/did.json"
KEYS = "/.well-known/mutabaqa-keys.json"


def test_the_did_document_lists_the_published_keys_and_verifies_a_proof(
    settings: Settings, tmp_path: Path
) -> None:
    retired = Ed25519PrivateKey.generate()
    old = tmp_path / "retired.pub.pem"
    old.write_bytes(public_key_pem(retired.public_key()))
    served = settings.model_copy(
        update={"public_base_url": "http://127.0.0.1:8000", "signing_retired_key_paths": [old]}
    )
    ring = KeyRing.load(served)  # the worker's: the active private key
    with TestClient(create_app(served)) as client:
        response = client.get(DID_JSON)
        kids = [key["kid"] for key in client.get(KEYS).json()["keys"]]
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/did+json"
    document = response.json()
    did = "did:web:localhost%3A8000"
    assert document["id"] == did
    assert [m["id"] for m in document["verificationMethod"]] == [f"{did}#{k}" for k in kids]
    assert document["assertionMethod"] == [f"{did}#{k}" for k in kids]
    assert kids[0] == ring.active_kid and len(kids) == 2

    credential = {"@context": ["https://www.w3.org/ns/credentials/v2"], "issuer": did}
    now = datetime(2026, 6, 1, tzinfo=UTC)
    vc_verifier.verify_with_did_document(issue_proof(credential, ring, did, now), document)
    # A credential signed by the retired key still verifies against the served document.
    vc_verifier.verify_with_did_document(
        issue_proof(credential, KeyRing(retired), did, now), document
    )


def test_the_did_follows_the_public_base_url(settings: Settings) -> None:
    served = settings.model_copy(update={"public_base_url": "https://cert.example.ma/a/b"})
    with TestClient(create_app(served)) as client:
        response = client.get(DID_JSON)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "did:web:cert.example.ma:a:b"


def test_a_base_url_without_a_did_web_answers_a_problem(settings: Settings) -> None:
    served = settings.model_copy(update={"public_base_url": "http://cert.example.ma"})
    with TestClient(create_app(served)) as client:
        response = client.get(DID_JSON)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "https" in response.json()["detail"]


def test_the_did_document_is_rate_limited_like_the_other_public_routes(
    settings: Settings,
) -> None:
    tight = settings.model_copy(update={"public_rate_burst": 2, "public_rate_per_minute": 2})
    with TestClient(create_app(tight)) as client:
        answers = [client.get(DID_JSON) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["cache-control"] == "public, max-age=300"
    assert 1 <= int(answers[2].headers["retry-after"]) <= 30
