"""Ed25519 keys as Multikey values: the W3C vector's key pair, round trips, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mutabaqa.multikey import (
    multibase_base58btc_decode,
    multibase_base58btc_encode,
    private_key_from_multibase,
    public_key_from_multibase,
    public_key_multibase,
    secret_key_multibase,
)

KEY_PAIR = json.loads(
    (
        Path(__file__).resolve().parents[1] / "vectors" / "w3c-eddsa-jcs-2022" / "keyPair.json"
    ).read_text("utf-8")
)


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_the_vector_secret_key_gives_the_vector_public_multikey() -> None:
    private = private_key_from_multibase(KEY_PAIR["privateKeyMultibase"])
    assert public_key_multibase(private.public_key()) == KEY_PAIR["publicKeyMultibase"]
    assert secret_key_multibase(private) == KEY_PAIR["privateKeyMultibase"]
    decoded = public_key_from_multibase(KEY_PAIR["publicKeyMultibase"])
    assert decoded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == _raw(
        private
    )


def test_the_multikey_is_the_multicodec_prefix_and_the_key_in_base58btc() -> None:
    key = Ed25519PrivateKey.generate()
    text = public_key_multibase(key.public_key())
    assert text.startswith("z6Mk")
    assert multibase_base58btc_decode(text) == b"\xed\x01" + _raw(key)
    assert public_key_multibase(public_key_from_multibase(text)) == text


def test_base58btc_keeps_leading_zero_bytes() -> None:
    assert multibase_base58btc_encode(b"\x00\x00\x01") == "z112"
    assert multibase_base58btc_decode("z112") == b"\x00\x00\x01"
    # "Hello World!" in the draft-msporny-base58 example.
    assert multibase_base58btc_encode(b"Hello World!") == "z2NEpo7TZRRrLZSi2U"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",  # no multibase prefix
        "uAe0B",  # base64url, not base58btc
        "z0OIl",  # characters outside the alphabet
        "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ",  # 31 key bytes
        KEY_PAIR["privateKeyMultibase"],  # a secret key is not a public key
        "z" + "٣",  # non-ASCII
    ],
)
def test_what_is_not_an_ed25519_public_multikey_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        public_key_from_multibase(text)


def test_a_public_multikey_is_not_a_secret_key() -> None:
    with pytest.raises(ValueError, match="secret Multikey"):
        private_key_from_multibase(KEY_PAIR["publicKeyMultibase"])
