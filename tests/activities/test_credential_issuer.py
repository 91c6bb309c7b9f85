"""The credential issuer refuses, without retrying, a public base URL that gives no
did:web (the outbox row then goes to the dead letter with the reason)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine
from temporalio.exceptions import ApplicationError

from activities.credentials import NO_ISSUER_DID, CredentialIssuer
from mutabaqa.settings import Settings
from mutabaqa.signing import KeyRing


@pytest.mark.parametrize(
    ("base", "did"),
    [
        ("https://cert.example.ma", "did:web:cert.example.ma"),
        ("http://127.0.0.1:8000", "did:web:localhost%3A8000"),
    ],
)
def test_the_issuer_is_the_did_web_of_the_public_base_url(base: str, did: str) -> None:
    issuer = CredentialIssuer(
        create_engine("sqlite://"),
        Settings(env="development", public_base_url=base),
        KeyRing(Ed25519PrivateKey.generate()),
    )
    assert issuer.did == did


@pytest.mark.parametrize("base", ["http://cert.example.ma", "https://10.0.0.5"])
def test_a_base_url_without_a_did_web_is_refused_for_good(base: str) -> None:
    issuer = CredentialIssuer(
        create_engine("sqlite://"),
        Settings(env="development", public_base_url=base),
        KeyRing(Ed25519PrivateKey.generate()),
    )
    with pytest.raises(ApplicationError) as refused:
        _ = issuer.did
    assert refused.value.type == NO_ISSUER_DID and refused.value.non_retryable
    assert "MUTABAQA_PUBLIC_BASE_URL" in str(refused.value)
