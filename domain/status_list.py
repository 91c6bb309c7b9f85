"""Bitstring Status List v1.0 (W3C Recommendation, 2025-05-15): the bitstring and its
``encodedList``. Pure: standard library only, no I/O.

- One status per credential, one bit (``statusSize`` 1): entry ``i`` is bit ``i``.
- Bit order: **index 0 is the most significant bit of the first byte** (the left-most
  bit, section 3.1 "Bitstring Generation Algorithm"): only index 0 set gives the first
  byte ``0x80``, index 7 gives ``0x01``, index 8 gives the second byte ``0x80``.
- Size: at least 131,072 bits (16 KiB), so that one credential's index does not single
  out its holder (section 6.1, "Herd privacy"); whole bytes only.
- ``encodedList``: GZIP (RFC 1952) of the bytes, then multibase base64url without
  padding, i.e. ``"u"`` followed by RFC 4648 section 5 without ``=``. The GZIP header's
  time is 0, so one bitstring always encodes to the same text (stored lists and their
  signatures are reproducible).
- Decoding refuses anything else: another multibase prefix, padding, another alphabet,
  a list shorter than the minimum, a bitstring larger than ``max_bits`` (a small
  ``encodedList`` must not expand into gigabytes: GZIP bombs), data after the GZIP
  member.

Index allocation (random, never reused, across lists) is not here yet: it needs the
record of allocated indices, and belongs to the issuing code (docs/credentials.md).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import zlib

#: The minimum length of a status list in bits (16 KiB).
MIN_BITS = 131_072
#: The largest bitstring a decoder accepts by default, in bits (1 MiB: 8,388,608 entries).
DEFAULT_MAX_BITS = 8 * 1024 * 1024 * 8
MULTIBASE_BASE64URL = "u"

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class StatusListError(ValueError):
    """An ``encodedList`` or a bitstring that does not follow Bitstring Status List v1.0;
    ``code`` is the error type the Recommendation names (``STATUS_LIST_LENGTH_ERROR``,
    ``RANGE_ERROR``, ``MALFORMED_VALUE_ERROR``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class StatusBitstring:
    """A mutable bitstring of ``size`` bits (a multiple of 8, at least ``MIN_BITS``), all
    0 at first."""

    def __init__(self, size: int = MIN_BITS) -> None:
        _check_size(size)
        self._bytes = bytearray(size // 8)

    @classmethod
    def from_bytes(cls, data: bytes) -> StatusBitstring:
        """The bitstring whose bytes are ``data`` (first byte holds indices 0 to 7)."""
        _check_size(len(data) * 8)
        bitstring = cls.__new__(cls)
        bitstring._bytes = bytearray(data)
        return bitstring

    @classmethod
    def decode(cls, encoded_list: str, *, max_bits: int = DEFAULT_MAX_BITS) -> StatusBitstring:
        """The bitstring of an ``encodedList``."""
        return cls.from_bytes(decode_list(encoded_list, max_bits=max_bits))

    @property
    def size(self) -> int:
        """The number of entries (bits)."""
        return len(self._bytes) * 8

    def _locate(self, index: int) -> tuple[int, int]:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"a status list index is an integer, not {index!r}")
        if not 0 <= index < self.size:
            raise StatusListError(
                "RANGE_ERROR", f"index {index} is outside the list (0 to {self.size - 1})"
            )
        return index // 8, 0x80 >> (index % 8)

    def get(self, index: int) -> bool:
        """Whether bit ``index`` is set."""
        byte, mask = self._locate(index)
        return bool(self._bytes[byte] & mask)

    def set(self, index: int, value: bool = True) -> None:
        """Set bit ``index`` (to 0 when ``value`` is false)."""
        byte, mask = self._locate(index)
        if value:
            self._bytes[byte] |= mask
        else:
            self._bytes[byte] &= ~mask & 0xFF

    def clear(self, index: int) -> None:
        """Set bit ``index`` to 0."""
        self.set(index, False)

    def to_bytes(self) -> bytes:
        return bytes(self._bytes)

    def encode(self) -> str:
        """The ``encodedList``: ``"u"`` + base64url (no padding) of the GZIP of the bytes."""
        return encode_list(self.to_bytes())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StatusBitstring) and self._bytes == other._bytes

    __hash__ = None  # type: ignore[assignment]  # mutable


def _check_size(bits: int) -> None:
    if bits < MIN_BITS:
        raise StatusListError(
            "STATUS_LIST_LENGTH_ERROR",
            f"a status list holds at least {MIN_BITS} entries (16 KiB), not {bits}",
        )
    if bits % 8:
        raise StatusListError(
            "STATUS_LIST_LENGTH_ERROR", f"a status list holds whole bytes, not {bits} bits"
        )


def encode_list(data: bytes) -> str:
    """GZIP (header time 0) then multibase base64url without padding."""
    _check_size(len(data) * 8)
    compressed = gzip.compress(data, compresslevel=9, mtime=0)
    return MULTIBASE_BASE64URL + base64.urlsafe_b64encode(compressed).rstrip(b"=").decode()


def decode_list(encoded_list: str, *, max_bits: int = DEFAULT_MAX_BITS) -> bytes:
    """The bitstring's bytes of an ``encodedList`` (``StatusListError`` when malformed)."""
    if not isinstance(encoded_list, str) or not encoded_list.startswith(MULTIBASE_BASE64URL):
        raise StatusListError(
            "MALFORMED_VALUE_ERROR", 'an encodedList is multibase base64url: it starts with "u"'
        )
    text = encoded_list[1:]
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise StatusListError(
            "MALFORMED_VALUE_ERROR", "an encodedList is base64url without padding"
        )
    try:
        compressed = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except binascii.Error as exc:
        raise StatusListError("MALFORMED_VALUE_ERROR", f"not base64url: {exc}") from None
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # GZIP container only
    limit = max_bits // 8
    try:
        data = inflater.decompress(compressed, limit + 1)
    except zlib.error as exc:
        raise StatusListError("MALFORMED_VALUE_ERROR", f"not GZIP data: {exc}") from None
    if len(data) > limit:
        raise StatusListError(
            "STATUS_LIST_LENGTH_ERROR", f"the list expands beyond {max_bits} entries"
        )
    if not inflater.eof or inflater.unused_data:
        raise StatusListError(
            "MALFORMED_VALUE_ERROR", "the GZIP data is truncated or followed by other data"
        )
    _check_size(len(data) * 8)
    return data
