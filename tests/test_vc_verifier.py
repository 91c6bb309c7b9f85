"""The independent verifier (tests/vc_verifier.py) on the W3C vector and on the project's
own proofs and status lists: it must accept what is genuine and refuse what is not, or it
proves nothing in the tests that use it."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.status_list import StatusBitstring
from mutabaqa.did_document import did_document, issue_proof
from mutabaqa.multikey import multibase_base58btc_encode
from mutabaqa.signing import KeyRing, PublicKeySet
from tests import vc_verifier
from tests.vc_verifier import VerificationFailed

VECTORS = Path(__file__).resolve().parent / "vectors" / "w3c-eddsa-jcs-2022"
SIGNED: dict[str, Any] = json.loads((VECTORS / "signedJCS.json").read_text("utf-8"))
KEY_PAIR: dict[str, str] = json.loads((VECTORS / "keyPair.json").read_text("utf-8"))
DID = "did:web:cert.example.ma"


def test_base58btc_decoding_agrees_with_the_package() -> None:
    for data in (b"", b"\x00", b"\x00\x00\xff", b"Hello World!", bytes(range(256))):
        assert vc_verifier.multibase_decode(multibase_base58btc_encode(data)) == data
    with pytest.raises(VerificationFailed):
        vc_verifier.base58btc_decode("0OIl")


def test_the_w3c_vector_verifies_and_a_change_does_not() -> None:
    key = vc_verifier.multikey_public_key(KEY_PAIR["publicKeyMultibase"])
    vc_verifier.verify_eddsa_jcs_2022(SIGNED, key)
    changed = copy.deepcopy(SIGNED)
    changed["credentialSubject"]["alumniOf"] = "Another School"
    with pytest.raises(VerificationFailed, match="signature"):
        vc_verifier.verify_eddsa_jcs_2022(changed, key)
    # The vector's verification method is a did:key; as a DID document:
    method = SIGNED["proof"]["verificationMethod"]
    controller = method.split("#")[0]
    key_document = {
        "id": controller,
        "verificationMethod": [
            {
                "id": method,
                "type": "Multikey",
                "controller": controller,
                "publicKeyMultibase": KEY_PAIR["publicKeyMultibase"],
            }
        ],
        "assertionMethod": [method],
    }
    vc_verifier.verify_with_did_document(SIGNED, key_document)
    with pytest.raises(VerificationFailed, match="not authorised"):
        vc_verifier.verify_with_did_document(SIGNED, key_document | {"assertionMethod": []})


def test_the_projects_proofs_verify_against_the_projects_did_document() -> None:
    key = Ed25519PrivateKey.generate()
    document = did_document(DID, PublicKeySet(key.public_key()))
    credential = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential"],
        "issuer": DID,
        "validFrom": "2026-06-01T00:00:00Z",
        "credentialSubject": {"id": "urn:example:x", "n": 3, "ok": True, "name": "مطابقة"},
    }
    signed = issue_proof(credential, KeyRing(key), DID, datetime(2026, 6, 1, tzinfo=UTC))
    vc_verifier.verify_with_did_document(signed, document)
    changed = copy.deepcopy(signed)
    changed["credentialSubject"]["n"] = 4
    with pytest.raises(VerificationFailed):
        vc_verifier.verify_with_did_document(changed, document)
    stranger = did_document(DID, PublicKeySet(Ed25519PrivateKey.generate().public_key()))
    with pytest.raises(VerificationFailed):
        vc_verifier.verify_with_did_document(signed, stranger)


def test_status_bits_read_from_the_projects_lists() -> None:
    bits = StatusBitstring()
    for index in (0, 7, 8, 94_567, 131_071):
        bits.set(index)
    encoded = bits.encode()
    for index in (0, 7, 8, 94_567, 131_071):
        assert vc_verifier.status_bit(encoded, index) == 1
    for index in (1, 6, 9, 94_566, 131_070):
        assert vc_verifier.status_bit(encoded, index) == 0
    only_first = StatusBitstring()
    only_first.set(0)
    assert vc_verifier.status_bit(only_first.encode(), 0) == 1
    assert vc_verifier.status_bit(only_first.encode(), 7) == 0
    w3c_empty = "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA"
    assert vc_verifier.status_bit(w3c_empty, 94_567) == 0
    with pytest.raises(VerificationFailed):
        vc_verifier.status_bit(encoded, 131_072)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
_RING = KeyRing(Ed25519PrivateKey.generate())
_DOCUMENT = did_document(DID, PublicKeySet(_RING.public_key()))


@settings(max_examples=60, deadline=None)
@given(body=st.dictionaries(st.text(max_size=6).filter(lambda k: k != "proof"), _JSON, max_size=5))
def test_the_verifier_accepts_any_document_the_project_signs(body: dict[str, Any]) -> None:
    document = {"@context": ["https://www.w3.org/ns/credentials/v2"], **body}
    signed = issue_proof(document, _RING, DID, datetime(2026, 6, 1, tzinfo=UTC))
    vc_verifier.verify_with_did_document(signed, _DOCUMENT)
