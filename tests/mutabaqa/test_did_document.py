"""The DID document built from the published key set, and proofs checked against it."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mutabaqa.did_document import did_document, issue_proof, verify_with_did
from mutabaqa.multikey import public_key_multibase
from mutabaqa.signing import KeyRing, PublicKeySet, jwk_thumbprint, public_jwk

DID = "did:web:cert.example.ma"
WHEN = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
CREDENTIAL: dict[str, Any] = {
    "@context": ["https://www.w3.org/ns/credentials/v2"],
    "type": ["VerifiableCredential"],
    "issuer": DID,
    "credentialSubject": {"id": "urn:example:subject", "name": "مطابقة"},
}


def _kid(key: Ed25519PrivateKey) -> str:
    return jwk_thumbprint(public_jwk(key.public_key()))


def test_every_key_is_a_multikey_method_and_all_may_assert() -> None:
    active, retired = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    document = did_document(DID, PublicKeySet(active.public_key(), [retired.public_key()]))
    ids = [f"{DID}#{_kid(active)}", f"{DID}#{_kid(retired)}"]
    assert document == {
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": DID,
        "verificationMethod": [
            {
                "id": ids[0],
                "type": "Multikey",
                "controller": DID,
                "publicKeyMultibase": public_key_multibase(active.public_key()),
            },
            {
                "id": ids[1],
                "type": "Multikey",
                "controller": DID,
                "publicKeyMultibase": public_key_multibase(retired.public_key()),
            },
        ],
        "assertionMethod": ids,
    }


def test_a_credential_signed_by_a_retired_key_keeps_verifying() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signed_then = issue_proof(CREDENTIAL, KeyRing(old), DID, WHEN)
    assert signed_then["proof"]["verificationMethod"] == f"{DID}#{_kid(old)}"
    after_rotation = did_document(DID, PublicKeySet(new.public_key(), [old.public_key()]))
    assert verify_with_did(signed_then, after_rotation)
    forgotten = did_document(DID, PublicKeySet(new.public_key()))
    assert not verify_with_did(signed_then, forgotten)


def test_the_method_must_be_authorised_belong_to_the_did_and_be_controlled_by_it() -> None:
    key = Ed25519PrivateKey.generate()
    ring = KeyRing(key)
    signed = issue_proof(CREDENTIAL, ring, DID, WHEN)
    document = did_document(DID, PublicKeySet(key.public_key()))
    assert verify_with_did(signed, document)

    not_asserting = copy.deepcopy(document) | {"assertionMethod": []}
    other_controller = copy.deepcopy(document)
    other_controller["verificationMethod"][0]["controller"] = "did:web:evil.example"
    other_did = did_document("did:web:evil.example", PublicKeySet(key.public_key()))
    wrong_type = copy.deepcopy(document)
    wrong_type["verificationMethod"][0]["type"] = "JsonWebKey"
    other_key = copy.deepcopy(document)
    other_key["verificationMethod"][0]["publicKeyMultibase"] = public_key_multibase(
        Ed25519PrivateKey.generate().public_key()
    )
    for bad in (not_asserting, other_controller, other_did, wrong_type, other_key):
        assert not verify_with_did(signed, bad)
    assert not verify_with_did(signed, document, purpose="authentication")
    tampered = copy.deepcopy(signed)
    tampered["credentialSubject"]["name"] = "other"
    assert not verify_with_did(tampered, document)
