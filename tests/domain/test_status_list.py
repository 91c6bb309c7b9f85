"""Bitstring Status List v1.0 encoding: a fixed bit order (index 0 is the most significant
bit of the first byte), GZIP + multibase base64url, the minimum size, and refusals."""

from __future__ import annotations

import base64
import gzip
import random

import pytest

from domain.status_list import (
    MIN_BITS,
    StatusBitstring,
    StatusListError,
    decode_list,
    encode_list,
)

#: The Recommendation's example ``encodedList`` (examples of section 2 and appendix A): a
#: list of 131,072 entries, none set.
W3C_EMPTY_LIST = "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA"


def _raw_of(encoded: str) -> bytes:
    """Decoded here by hand, not by the module under test."""
    assert encoded.startswith("u") and "=" not in encoded
    body = encoded[1:]
    return gzip.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


@pytest.mark.parametrize(
    ("index", "byte", "value"), [(0, 0, 0x80), (7, 0, 0x01), (8, 1, 0x80), (131_071, 16_383, 1)]
)
def test_the_bit_order_is_fixed(index: int, byte: int, value: int) -> None:
    bits = StatusBitstring()
    bits.set(index)
    raw = bits.to_bytes()
    assert raw[byte] == value
    assert sum(raw) == value  # no other bit set
    decoded = _raw_of(bits.encode())  # and so in the encodedList
    assert decoded[byte] == value and sum(decoded) == value
    assert StatusBitstring.decode(bits.encode()).get(index)


def test_set_clear_get() -> None:
    bits = StatusBitstring()
    assert not bits.get(5)
    bits.set(5)
    bits.set(5)
    assert bits.get(5) and not bits.get(4) and not bits.get(6)
    bits.clear(5)
    assert not bits.get(5)
    bits.set(9, True)
    bits.set(9, False)
    assert bits.to_bytes() == bytes(MIN_BITS // 8)


def test_a_random_list_survives_the_round_trip() -> None:
    rng = random.Random(13)
    bits = StatusBitstring(MIN_BITS * 2)
    chosen = set(rng.sample(range(bits.size), 500))
    for index in chosen:
        bits.set(index)
    encoded = bits.encode()
    again = StatusBitstring.decode(encoded)
    assert again == bits
    assert {i for i in range(again.size) if again.get(i)} == chosen
    assert again.encode() == encoded  # deterministic: GZIP header time 0
    assert decode_list(encoded) == bits.to_bytes()


def test_the_w3c_example_list_decodes_to_131072_zero_bits() -> None:
    bits = StatusBitstring.decode(W3C_EMPTY_LIST)
    assert bits.size == 131_072
    assert bits.to_bytes() == bytes(16_384)


def test_the_minimum_size_is_enforced() -> None:
    assert StatusBitstring().size == MIN_BITS == 131_072
    for size in (0, 8, MIN_BITS - 8, MIN_BITS + 1):
        with pytest.raises(StatusListError) as err:
            StatusBitstring(size)
        assert err.value.code == "STATUS_LIST_LENGTH_ERROR"
    short = "u" + base64.urlsafe_b64encode(gzip.compress(bytes(1024))).rstrip(b"=").decode()
    with pytest.raises(StatusListError, match="at least"):
        decode_list(short)
    with pytest.raises(StatusListError):
        encode_list(bytes(1024))


def test_an_index_outside_the_list_is_a_range_error() -> None:
    bits = StatusBitstring()
    for index in (-1, MIN_BITS):
        with pytest.raises(StatusListError) as err:
            bits.get(index)
        assert err.value.code == "RANGE_ERROR"
    with pytest.raises(TypeError):
        bits.get(True)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "encoded",
    [
        W3C_EMPTY_LIST[1:],  # no multibase prefix
        "z" + W3C_EMPTY_LIST[1:],  # another base
        W3C_EMPTY_LIST + "==",  # padding
        W3C_EMPTY_LIST.replace("-", "+"),  # base64, not base64url
        "u" + _b64(bytes(16_384)),  # not compressed
        "u" + _b64(gzip.compress(bytes(16_384)) + b"trailing"),
        "u" + _b64(gzip.compress(bytes(16_384))[:-6]),  # truncated
    ],
)
def test_malformed_lists_are_refused(encoded: str) -> None:
    with pytest.raises(StatusListError):
        decode_list(encoded)


def test_a_gzip_bomb_is_refused_before_it_expands() -> None:
    bomb = "u" + _b64(gzip.compress(bytes(64 * 1024 * 1024)))  # 64 MiB from ~65 KB
    assert len(bomb) < 100_000
    with pytest.raises(StatusListError, match="beyond"):
        decode_list(bomb)
