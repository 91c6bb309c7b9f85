"""The deployment's DID document (W3C DID v1.0; keys as Multikey, W3C Controlled
Identifiers v1.0), and proofs made and checked against it.

The document lists every published certificate signing key (``PublicKeySet``: the active
key first, then the retired ones) as a ``Multikey`` verification method
``<did>#<kid>`` (``kid`` = the key's RFC 7638 thumbprint, as in
``/.well-known/mutabaqa-keys.json``), controlled by the DID itself. ``assertionMethod``
lists them all, retired keys included: a retired key signs nothing new, but the
credentials it signed stay verifiable, exactly as the key set keeps verifying the
payloads v1 it signed. A key that must no longer be trusted (compromised) is removed from
the configuration, and so from both documents; the credentials it signed then fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mutabaqa.data_integrity import (
    ASSERTION_METHOD,
    ProofError,
    add_proof,
    proof_options,
    split_proof,
    verify_proof,
)
from mutabaqa.multikey import public_key_from_multibase, public_key_multibase
from mutabaqa.signing import KeyRing, PublicKeySet, public_key_from_jwk

DID_CONTEXT = "https://www.w3.org/ns/did/v1"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
MULTIKEY = "Multikey"


def verification_method_id(did: str, kid: str) -> str:
    """``<did>#<kid>``: the thumbprint is made of base64url characters, all valid in a
    fragment."""
    return f"{did}#{kid}"


def did_document(did: str, keys: PublicKeySet) -> dict[str, Any]:
    """The DID document of ``did`` publishing ``keys`` (active first, then retired)."""
    methods = [
        {
            "id": verification_method_id(did, jwk["kid"]),
            "type": MULTIKEY,
            "controller": did,
            "publicKeyMultibase": public_key_multibase(public_key_from_jwk(jwk)),
        }
        for jwk in keys.jwks()["keys"]
    ]
    return {
        "@context": [DID_CONTEXT, MULTIKEY_CONTEXT],
        "id": did,
        "verificationMethod": methods,
        "assertionMethod": [method["id"] for method in methods],
    }


def method_key(
    document: Mapping[str, Any], verification_method: str, purpose: str = ASSERTION_METHOD
) -> Ed25519PublicKey:
    """The Ed25519 key of ``verification_method``, provided the DID document lists it
    under ``purpose`` (by reference or embedded), it belongs to this DID (``<did>#…``) and
    the DID controls it. ``ProofError`` (``PROOF_VERIFICATION_ERROR``) otherwise."""
    did = document.get("id")

    def refuse(why: str) -> ProofError:
        return ProofError("PROOF_VERIFICATION_ERROR", f"{verification_method!r}: {why}")

    if not isinstance(did, str) or not verification_method.startswith(did + "#"):
        raise refuse(f"not a verification method of {did!r}")
    listed = document.get(purpose)
    if not isinstance(listed, list):
        raise refuse(f"the DID document has no {purpose}")
    candidates = [
        *(m for m in listed if isinstance(m, Mapping)),
        *(m for m in document.get("verificationMethod", []) if isinstance(m, Mapping)),
    ]
    authorised = verification_method in listed or any(
        m.get("id") == verification_method for m in listed if isinstance(m, Mapping)
    )
    if not authorised:
        raise refuse(f"not listed under {purpose}")
    method = next((m for m in candidates if m.get("id") == verification_method), None)
    if method is None:
        raise refuse("not in the DID document")
    if method.get("type") != MULTIKEY or method.get("controller") != did:
        raise refuse(f"not a {MULTIKEY} controlled by {did}")
    try:
        return public_key_from_multibase(method.get("publicKeyMultibase", ""))
    except ValueError as exc:
        raise refuse(str(exc)) from None


def verify_with_did(
    secured_document: Mapping[str, Any],
    document: Mapping[str, Any],
    purpose: str = ASSERTION_METHOD,
) -> bool:
    """Whether the secured document's ``eddsa-jcs-2022`` proof was made, for ``purpose``,
    by a key the DID document authorises for it. Never raises on malformed input."""
    try:
        _, proof = split_proof(secured_document)
        method = proof.get("verificationMethod")
        if not isinstance(method, str):
            return False
        key = method_key(document, method, purpose)
    except ProofError:
        return False
    return verify_proof(secured_document, key, expected_purpose=purpose)


def issue_proof(
    unsecured_document: Mapping[str, Any], ring: KeyRing, did: str, created: datetime
) -> dict[str, Any]:
    """The document secured by the ring's active key, named ``<did>#<active kid>``, for
    ``assertionMethod`` (what a credential's issuer asserts)."""
    options = proof_options(verification_method_id(did, ring.active_kid), created)
    return add_proof(unsecured_document, options, ring.sign_bytes)
