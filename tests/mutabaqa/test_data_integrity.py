"""``eddsa-jcs-2022`` Data Integrity proofs: the W3C test vector reproduced bit for bit
through the project's own code path (the key loaded into a ``KeyRing``, signing by
``KeyRing.sign_bytes``), the vector verified, and every change to a signed field
breaking verification."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mutabaqa.data_integrity import (
    ProofError,
    add_proof,
    create_proof,
    proof_configuration,
    proof_options,
    signing_input,
    transform_document,
    verify_proof,
)
from mutabaqa.multikey import private_key_from_multibase, public_key_from_multibase
from mutabaqa.signing import KeyRing

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "w3c-eddsa-jcs-2022"


def _json(name: str) -> Any:
    return json.loads((VECTORS / name).read_text("utf-8"))


def _text(name: str) -> str:
    return (VECTORS / name).read_text("utf-8").strip()


UNSIGNED: dict[str, Any] = _json("unsigned.json")
SIGNED: dict[str, Any] = _json("signedJCS.json")
KEY_PAIR: dict[str, str] = _json("keyPair.json")


def _options_of_signed() -> dict[str, Any]:
    """The vector's proof options: its proof without ``proofValue`` (and without the
    ``@context`` that signing copies from the document)."""
    return {k: v for k, v in SIGNED["proof"].items() if k not in ("proofValue", "@context")}


def test_the_vector_files_are_the_ones_noted_in_source_md() -> None:
    noted = dict(
        re.findall(r"^\| (\S+) \| ([0-9a-f]{64}) \|$", _text("SOURCE.md"), flags=re.MULTILINE)
    )
    files = {p.name for p in VECTORS.iterdir() if p.name != "SOURCE.md"}
    assert set(noted) == files
    for name, digest in noted.items():
        assert hashlib.sha256((VECTORS / name).read_bytes()).hexdigest() == digest, name


def test_signing_the_w3c_vector_gives_its_proof_value_exactly() -> None:
    ring = KeyRing(private_key_from_multibase(KEY_PAIR["privateKeyMultibase"]))
    secured = add_proof(UNSIGNED, _options_of_signed(), ring.sign_bytes)
    assert secured["proof"]["proofValue"] == SIGNED["proof"]["proofValue"]
    assert secured["proof"]["proofValue"] == _text("sigBTC58JCS.txt")
    assert secured == SIGNED  # the whole secured document, proof @context included
    assert "proof" not in UNSIGNED  # the input is not changed


def test_the_intermediate_values_are_the_vectors() -> None:
    options = _options_of_signed()
    assert transform_document(UNSIGNED, options).decode() == _text("canonDocJCS.txt")
    expected_config = _json("proofConfigJCS.json")
    assert json.loads(proof_configuration(UNSIGNED, options)) == expected_config
    assert signing_input(UNSIGNED, options).hex() == _text("combinedHashJCS.txt")


def test_the_signed_vector_verifies_with_the_vector_key() -> None:
    key = public_key_from_multibase(KEY_PAIR["publicKeyMultibase"])
    assert verify_proof(SIGNED, key)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every leaf of a JSON value, as a path of keys and indices."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _paths(v, (*prefix, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _paths(v, (*prefix, i))]
    return [prefix]


def _tampered(document: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    old = target[path[-1]]
    target[path[-1]] = old + "x" if isinstance(old, str) else "changed"
    return changed


SIGNED_LEAVES = [p for p in _paths(SIGNED) if p != ("proof", "proofValue")]


@pytest.mark.parametrize("path", SIGNED_LEAVES, ids=lambda p: ".".join(map(str, p)))
def test_changing_any_field_breaks_verification(path: tuple[Any, ...]) -> None:
    key = public_key_from_multibase(KEY_PAIR["publicKeyMultibase"])
    assert not verify_proof(_tampered(SIGNED, path), key)


def test_additions_removals_and_other_keys_break_verification() -> None:
    key = public_key_from_multibase(KEY_PAIR["publicKeyMultibase"])
    added = copy.deepcopy(SIGNED) | {"extra": "field"}
    removed = {k: v for k, v in SIGNED.items() if k != "description"}
    proof_added = copy.deepcopy(SIGNED)
    proof_added["proof"]["expires"] = "2030-01-01T00:00:00Z"
    flipped = copy.deepcopy(SIGNED)
    value = flipped["proof"]["proofValue"]
    flipped["proof"]["proofValue"] = value[:-1] + ("1" if value[-1] != "1" else "2")
    for document in (added, removed, proof_added, flipped):
        assert not verify_proof(document, key)
    assert not verify_proof(SIGNED, Ed25519PrivateKey.generate().public_key())
    assert not verify_proof(SIGNED, key, expected_purpose="authentication")


def test_the_proof_context_must_prefix_the_document_context() -> None:
    key = public_key_from_multibase(KEY_PAIR["publicKeyMultibase"])
    swapped = copy.deepcopy(SIGNED)
    swapped["@context"] = list(reversed(swapped["@context"]))
    assert not verify_proof(swapped, key)


@pytest.mark.parametrize(
    "broken",
    [
        {"proof": None},
        {"proof": [SIGNED["proof"]]},  # proof sets are not accepted
        {"proof": {**SIGNED["proof"], "proofValue": "not-multibase"}},
        {"proof": {**SIGNED["proof"], "proofValue": "z111"}},
        {"proof": {**SIGNED["proof"], "cryptosuite": "eddsa-rdfc-2022"}},
        {"proof": {**SIGNED["proof"], "type": "Ed25519Signature2020"}},
        {"proof": {**SIGNED["proof"], "created": "yesterday"}},
    ],
)
def test_malformed_proofs_are_not_verified_and_do_not_raise(broken: dict[str, Any]) -> None:
    key = public_key_from_multibase(KEY_PAIR["publicKeyMultibase"])
    assert not verify_proof(SIGNED | broken, key)


def test_own_keys_sign_and_verify_and_the_input_stays_unsigned() -> None:
    ring = KeyRing(Ed25519PrivateKey.generate())
    document = {"@context": ["https://www.w3.org/ns/credentials/v2"], "n": 1, "ar": "مطابقة"}
    options = proof_options(
        f"did:web:example.ma#{ring.active_kid}", datetime(2026, 5, 1, 12, 30, 15, 999, UTC)
    )
    secured = add_proof(document, options, ring.sign_bytes)
    assert secured["proof"]["created"] == "2026-05-01T12:30:15Z"
    assert secured["proof"]["proofValue"].startswith("z")
    assert verify_proof(secured, ring.public_key())
    assert "proof" not in document
    with pytest.raises(ProofError, match="already carries a proof"):
        add_proof(secured, options, ring.sign_bytes)


def test_proof_options_are_utc_and_refuse_naive_times() -> None:
    casablanca = timezone(timedelta(hours=1))
    options = proof_options("did:web:x.ma#k", datetime(2026, 1, 1, 0, 30, tzinfo=casablanca))
    assert options == {
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-jcs-2022",
        "created": "2025-12-31T23:30:00Z",
        "verificationMethod": "did:web:x.ma#k",
        "proofPurpose": "assertionMethod",
    }
    with pytest.raises(ValueError, match="time zone"):
        proof_options("did:web:x.ma#k", datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "change",
    [{"type": "Ed25519Signature2020"}, {"cryptosuite": "eddsa-rdfc-2022"}, {"created": "2026"}],
)
def test_creating_a_proof_checks_the_options(change: dict[str, str]) -> None:
    ring = KeyRing(Ed25519PrivateKey.generate())
    with pytest.raises(ProofError) as err:
        create_proof(UNSIGNED, _options_of_signed() | change, ring.sign_bytes)
    assert err.value.code in ("PROOF_GENERATION_ERROR", "PROOF_TRANSFORMATION_ERROR")
