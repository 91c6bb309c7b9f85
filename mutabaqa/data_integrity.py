"""Data Integrity proofs with the ``eddsa-jcs-2022`` cryptosuite (W3C Data Integrity EdDSA
Cryptosuites v1.0, section 3.3; W3C Verifiable Credential Data Integrity 1.0).

The same primitives as the signed payload v1 (``mutabaqa/signing.py``): RFC 8785 (JCS)
and Ed25519, arranged as the Recommendation says:

- proof configuration (3.3.5): the proof options without ``proofValue``, ``type``
  ``DataIntegrityProof`` and ``cryptosuite`` ``eddsa-jcs-2022`` checked, ``created`` an
  XML Schema dateTimeStamp, and ``@context`` set to the document's ``@context``; then JCS;
- transformation (3.3.3): JCS of the document without ``proof``;
- hashing (3.3.4): ``SHA-256(proof configuration) || SHA-256(document)`` (64 bytes);
- serialization (3.3.6): the Ed25519 signature of those 64 bytes, ``proofValue`` its
  multibase base58btc (``z…``).

The functions down to ``verify_proof`` are pure; signing takes a ``sign`` callable (the
worker's ``KeyRing.sign_bytes``; the API holds no private key). One proof per document:
a document that already carries a ``proof`` is refused (proof sets and chains are not
used here). Resolving ``verificationMethod`` to a key is the DID document's business
(``mutabaqa/did_document.py``).
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mutabaqa.multikey import multibase_base58btc_decode, multibase_base58btc_encode

PROOF_TYPE = "DataIntegrityProof"
CRYPTOSUITE = "eddsa-jcs-2022"
ASSERTION_METHOD = "assertionMethod"

# XML Schema 1.1 dateTimeStamp: a date-time with a time zone.
_DATE_TIME_STAMP = re.compile(
    r"-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})"
)

Signer = Callable[[bytes], bytes]


class ProofError(ValueError):
    """A proof that cannot be made or read; ``code`` is the Data Integrity error type
    (``PROOF_GENERATION_ERROR``, ``PROOF_TRANSFORMATION_ERROR``, ``MALFORMED_PROOF_ERROR``,
    ``PROOF_VERIFICATION_ERROR``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _is_date_time_stamp(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE_TIME_STAMP.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _check_suite(options: Mapping[str, Any], code: str) -> None:
    if options.get("type") != PROOF_TYPE or options.get("cryptosuite") != CRYPTOSUITE:
        raise ProofError(
            code, f"the proof is not a {PROOF_TYPE} with the {CRYPTOSUITE} cryptosuite"
        )


def _jcs(value: Mapping[str, Any], code: str) -> bytes:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise ProofError(code, f"not JSON that RFC 8785 can canonicalize: {exc}") from None


def proof_configuration(unsecured_document: Mapping[str, Any], options: Mapping[str, Any]) -> bytes:
    """The canonical proof configuration (section 3.3.5)."""
    config = {key: copy.deepcopy(value) for key, value in options.items() if key != "proofValue"}
    _check_suite(config, "PROOF_GENERATION_ERROR")
    for field in ("created", "expires"):
        if field in config and not _is_date_time_stamp(config[field]):
            raise ProofError(
                "PROOF_GENERATION_ERROR", f"proof {field} is no XML Schema dateTimeStamp"
            )
    if "@context" in unsecured_document:
        config["@context"] = copy.deepcopy(unsecured_document["@context"])
    else:
        config.pop("@context", None)
    return _jcs(config, "PROOF_GENERATION_ERROR")


def transform_document(unsecured_document: Mapping[str, Any], options: Mapping[str, Any]) -> bytes:
    """The canonical document (section 3.3.3)."""
    _check_suite(options, "PROOF_TRANSFORMATION_ERROR")
    if "proof" in unsecured_document:
        raise ProofError("PROOF_TRANSFORMATION_ERROR", "the document already carries a proof")
    return _jcs(unsecured_document, "PROOF_TRANSFORMATION_ERROR")


def hash_data(transformed_document: bytes, canonical_proof_config: bytes) -> bytes:
    """``SHA-256(proof configuration) || SHA-256(document)`` (section 3.3.4)."""
    return (
        hashlib.sha256(canonical_proof_config).digest()
        + hashlib.sha256(transformed_document).digest()
    )


def signing_input(unsecured_document: Mapping[str, Any], options: Mapping[str, Any]) -> bytes:
    """The 64 bytes an ``eddsa-jcs-2022`` proof signs for this document and these options."""
    return hash_data(
        transform_document(unsecured_document, options),
        proof_configuration(unsecured_document, options),
    )


def create_proof(
    unsecured_document: Mapping[str, Any], options: Mapping[str, Any], sign: Signer
) -> dict[str, Any]:
    """The proof (section 3.3.1): the options, the document's ``@context`` when it has
    one, and ``proofValue``. ``sign`` returns the Ed25519 signature of its argument."""
    proof = {key: copy.deepcopy(value) for key, value in options.items() if key != "proofValue"}
    if "@context" in unsecured_document:
        proof["@context"] = copy.deepcopy(unsecured_document["@context"])
    signature = sign(signing_input(unsecured_document, proof))
    if len(signature) != 64:
        raise ProofError("PROOF_GENERATION_ERROR", "an Ed25519 signature has 64 bytes")
    proof["proofValue"] = multibase_base58btc_encode(signature)
    return proof


def add_proof(
    unsecured_document: Mapping[str, Any], options: Mapping[str, Any], sign: Signer
) -> dict[str, Any]:
    """The secured document: a copy of the document with ``proof`` added."""
    proof = create_proof(unsecured_document, options, sign)
    return {**copy.deepcopy(dict(unsecured_document)), "proof": proof}


def proof_options(
    verification_method: str, created: datetime, purpose: str = ASSERTION_METHOD
) -> dict[str, str]:
    """The options of our proofs: ``created`` in UTC to the second, ``Z``-suffixed."""
    if created.tzinfo is None:
        raise ValueError("the proof's creation time needs a time zone")
    stamp = created.astimezone(UTC).replace(microsecond=0)
    return {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "created": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "verificationMethod": verification_method,
        "proofPurpose": purpose,
    }


def split_proof(secured_document: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(unsecured document, proof)`` of a secured document with exactly one proof;
    ``ProofError`` (``MALFORMED_PROOF_ERROR``) otherwise."""
    proof = secured_document.get("proof")
    if not isinstance(proof, Mapping):
        raise ProofError("MALFORMED_PROOF_ERROR", "the document carries no single proof object")
    if not isinstance(proof.get("proofValue"), str):
        raise ProofError("MALFORMED_PROOF_ERROR", "the proof has no proofValue")
    unsecured = {k: copy.deepcopy(v) for k, v in secured_document.items() if k != "proof"}
    return unsecured, copy.deepcopy(dict(proof))


def verify_proof(
    secured_document: Mapping[str, Any],
    public_key: Ed25519PublicKey,
    *,
    expected_purpose: str = ASSERTION_METHOD,
) -> bool:
    """Whether the document's ``eddsa-jcs-2022`` proof is ``public_key``'s signature
    (section 3.3.2), made for ``expected_purpose``. Never raises on malformed input: such
    a document is simply not verified. Which key the ``verificationMethod`` names, and
    whether it may assert, is checked by the caller (``did_document.verify_with_did``)."""
    try:
        unsecured, proof = split_proof(secured_document)
        _check_suite(proof, "PROOF_VERIFICATION_ERROR")
        if proof.get("proofPurpose") != expected_purpose:
            return False
        signature = multibase_base58btc_decode(proof.pop("proofValue"))
        if len(signature) != 64:
            return False
        if "@context" in proof:
            # The document's @context must start with the proof's, in the same order; the
            # proof's is then what is signed (section 3.3.2, step 4).
            document_context = unsecured.get("@context")
            proof_context = proof["@context"]
            expected = proof_context if isinstance(proof_context, list) else [proof_context]
            actual = document_context if isinstance(document_context, list) else [document_context]
            if actual[: len(expected)] != expected:
                return False
            unsecured["@context"] = proof_context
        public_key.verify(signature, signing_input(unsecured, proof))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
