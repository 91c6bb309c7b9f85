"""Ed25519 keys as Multikey values (W3C Controlled Identifiers v1.0, section 2.2.2
"Multikey"): what ``publicKeyMultibase`` holds in a DID document.

A public key is the multicodec prefix ``ed25519-pub`` (0xed, varint ``0xed 0x01``) followed
by the 32 key bytes, multibase base58btc encoded (prefix ``z``): always ``z6Mk…``. A
secret key (``secretKeyMultibase``, read for the W3C test vectors only; the signing key
itself stays a PEM file) uses ``ed25519-priv`` (0x1300, varint ``0x80 0x26``) and the
32-byte seed. Base58 is the ``base58`` package (the Bitcoin alphabet, its default).
"""

from __future__ import annotations

import base58
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MULTIBASE_BASE58BTC = "z"
ED25519_PUB_PREFIX = b"\xed\x01"
ED25519_PRIV_PREFIX = b"\x80\x26"
ED25519_KEY_BYTES = 32


def multibase_base58btc_encode(data: bytes) -> str:
    """``"z"`` + base58btc of ``data``."""
    return MULTIBASE_BASE58BTC + base58.b58encode(data).decode("ascii")


def multibase_base58btc_decode(text: str) -> bytes:
    """The bytes of a multibase base58btc value; ``ValueError`` for another base, a
    character outside the alphabet, or a spelling that is not the canonical one."""
    if not isinstance(text, str) or not text.startswith(MULTIBASE_BASE58BTC) or len(text) < 2:
        raise ValueError('a multibase base58btc value starts with "z"')
    body = text[1:]
    if not body.isascii():
        raise ValueError("base58btc is ASCII")
    data = base58.b58decode(body)  # ValueError for a character outside the alphabet
    if base58.b58encode(data).decode("ascii") != body:
        raise ValueError("non-canonical base58btc encoding")
    return data


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_multibase(public_key: Ed25519PublicKey) -> str:
    """The Multikey ``publicKeyMultibase`` of an Ed25519 public key (``z6Mk…``)."""
    return multibase_base58btc_encode(ED25519_PUB_PREFIX + _raw_public(public_key))


def public_key_from_multibase(text: str) -> Ed25519PublicKey:
    """The Ed25519 public key of a ``publicKeyMultibase``; ``ValueError`` when it is not
    an Ed25519 Multikey."""
    data = multibase_base58btc_decode(text)
    if not data.startswith(ED25519_PUB_PREFIX):
        raise ValueError("not an Ed25519 public Multikey (multicodec 0xed01)")
    raw = data[len(ED25519_PUB_PREFIX) :]
    if len(raw) != ED25519_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def secret_key_multibase(private_key: Ed25519PrivateKey) -> str:
    """The Multikey ``secretKeyMultibase`` of an Ed25519 private key (its seed)."""
    seed = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return multibase_base58btc_encode(ED25519_PRIV_PREFIX + seed)


def private_key_from_multibase(text: str) -> Ed25519PrivateKey:
    """The Ed25519 private key of a ``secretKeyMultibase`` (multicodec 0x1300 + seed)."""
    data = multibase_base58btc_decode(text)
    if not data.startswith(ED25519_PRIV_PREFIX):
        raise ValueError("not an Ed25519 secret Multikey (multicodec 0x1300)")
    seed = data[len(ED25519_PRIV_PREFIX) :]
    if len(seed) != ED25519_KEY_BYTES:
        raise ValueError(f"an Ed25519 seed has 32 bytes, not {len(seed)}")
    return Ed25519PrivateKey.from_private_bytes(seed)
