"""An independent verifier of W3C credentials, written for the tests from the W3C
Recommendations alone, so that the issuer and the verifier cannot share one mistake:

- Data Integrity EdDSA Cryptosuites v1.0, section 3.3 ``eddsa-jcs-2022`` (verify proof),
  with Verifiable Credential Data Integrity 1.0 (the proof's verification method must be
  authorised for its purpose by the controller document);
- Controlled Identifiers v1.0 section 2.2.2 (Multikey: multicodec ``0xed01`` + key,
  multibase base58btc);
- Bitstring Status List v1.0 section 3.2 (``encodedList``: multibase base64url of GZIP;
  index 0 is the left-most, i.e. most significant, bit of the first byte).

It imports nothing of the project: only ``rfc8785`` (JCS), ``cryptography`` (Ed25519),
and the standard library; base58 decoding is written out below.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class VerificationFailed(Exception):
    """Why a credential does not verify."""


def base58btc_decode(text: str) -> bytes:
    """Base58 (Bitcoin alphabet): a big-endian base-58 number, each leading ``1`` one
    leading zero byte."""
    number = 0
    for char in text:
        digit = BASE58_ALPHABET.find(char)
        if digit < 0:
            raise VerificationFailed(f"{char!r} is not a base58btc digit")
        number = number * 58 + digit
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    zeros = len(text) - len(text.lstrip("1"))
    return b"\x00" * zeros + body


def multibase_decode(value: str) -> bytes:
    if not value.startswith("z"):
        raise VerificationFailed("only multibase base58btc (z) is expected here")
    return base58btc_decode(value[1:])


def multikey_public_key(public_key_multibase: str) -> Ed25519PublicKey:
    data = multibase_decode(public_key_multibase)
    if data[:2] != b"\xed\x01" or len(data) != 34:
        raise VerificationFailed("not an Ed25519 Multikey (0xed01 + 32 bytes)")
    return Ed25519PublicKey.from_public_bytes(data[2:])


def resolve_method(did_document: dict[str, Any], method_id: str, purpose: str) -> Ed25519PublicKey:
    """The key of ``method_id`` when the controller document authorises it for ``purpose``."""
    controller = did_document["id"]
    if not method_id.startswith(controller + "#"):
        raise VerificationFailed(f"{method_id} does not belong to {controller}")
    references = [m if isinstance(m, str) else m.get("id") for m in did_document.get(purpose, [])]
    if method_id not in references:
        raise VerificationFailed(f"{method_id} is not authorised for {purpose}")
    for method in did_document.get("verificationMethod", []):
        if method.get("id") == method_id:
            if method.get("type") != "Multikey" or method.get("controller") != controller:
                raise VerificationFailed(f"{method_id} is not a Multikey of {controller}")
            return multikey_public_key(method["publicKeyMultibase"])
    raise VerificationFailed(f"{method_id} is not in the DID document")


def verify_eddsa_jcs_2022(
    secured: dict[str, Any],
    public_key: Ed25519PublicKey,
    purpose: str = "assertionMethod",
) -> None:
    """Section 3.3.2 "Verify Proof (eddsa-jcs-2022)"; raises ``VerificationFailed``."""
    unsecured = copy.deepcopy(secured)
    proof = unsecured.pop("proof", None)
    if not isinstance(proof, dict):
        raise VerificationFailed("no proof")
    options = dict(proof)
    proof_value = options.pop("proofValue", None)
    if options.get("type") != "DataIntegrityProof" or options.get("cryptosuite") != (
        "eddsa-jcs-2022"
    ):
        raise VerificationFailed("not a DataIntegrityProof with eddsa-jcs-2022")
    if options.get("proofPurpose") != purpose:
        raise VerificationFailed(f"proof purpose is not {purpose}")
    if not isinstance(proof_value, str):
        raise VerificationFailed("no proofValue")
    proof_bytes = multibase_decode(proof_value)
    if "@context" in options:
        expected = options["@context"]
        expected = expected if isinstance(expected, list) else [expected]
        actual = unsecured.get("@context")
        actual = actual if isinstance(actual, list) else [actual]
        if actual[: len(expected)] != expected:
            raise VerificationFailed("the document's @context does not start with the proof's")
        unsecured["@context"] = options["@context"]
    # Transformation (3.3.3) and proof configuration (3.3.5): JCS; the proof configuration
    # carries the document's @context.
    canonical_document = rfc8785.dumps(unsecured)
    config = dict(options)
    if "@context" in unsecured:
        config["@context"] = unsecured["@context"]
    canonical_config = rfc8785.dumps(config)
    # Hashing (3.3.4): SHA-256 of the configuration, then of the document.
    config_hash = hashlib.sha256(canonical_config).digest()
    hash_data = config_hash + hashlib.sha256(canonical_document).digest()
    try:
        public_key.verify(proof_bytes, hash_data)
    except InvalidSignature:
        raise VerificationFailed("the signature does not verify") from None


def verify_with_did_document(
    secured: dict[str, Any], did_document: dict[str, Any], purpose: str = "assertionMethod"
) -> None:
    """Resolve the proof's verification method in the DID document, then verify."""
    proof = secured.get("proof")
    if not isinstance(proof, dict) or not isinstance(proof.get("verificationMethod"), str):
        raise VerificationFailed("no verification method")
    key = resolve_method(did_document, proof["verificationMethod"], purpose)
    verify_eddsa_jcs_2022(secured, key, purpose)


def status_bit(encoded_list: str, index: int) -> int:
    """Bit ``index`` of a Bitstring Status List ``encodedList`` (0 or 1)."""
    if not encoded_list.startswith("u"):
        raise VerificationFailed("encodedList is multibase base64url (u)")
    text = encoded_list[1:]
    if "=" in text:
        raise VerificationFailed("base64url without padding")
    raw = gzip.decompress(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    if len(raw) * 8 < 131_072:
        raise VerificationFailed("a status list has at least 131,072 entries")
    if not 0 <= index < len(raw) * 8:
        raise VerificationFailed("index outside the list")
    return (raw[index // 8] >> (7 - index % 8)) & 1
