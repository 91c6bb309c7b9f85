"""The payload codec: every payload Temporal stores (workflow inputs, Update and Signal
arguments, activity inputs and results, failure messages) is encrypted with AES-256-GCM
before it leaves the process, so histories kept for the years a certificate lives hold no
names, e-mails or reasons in plain text.

An encrypted payload is the whole original payload (its metadata included) serialised and
sealed: ``nonce (12 bytes) || ciphertext+tag``, with metadata ``encoding:
binary/encrypted`` and ``encryption-key-id: <id>``; the key id is also the authenticated
data, so a payload cannot be passed off under another key. The first configured key
encrypts, every configured key decrypts (rotation); a payload without the encrypted
encoding decodes as it is (histories written before the codec).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from mutabaqa.settings import Settings, parse_payload_keys

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class CodecError(Exception):
    """A payload cannot be decrypted: unknown key id, or tampered with."""


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise ValueError("the payload codec needs at least one key")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self._current = next(iter(keys))

    @property
    def current_key_id(self) -> str:
        return self._current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        kid = self._current
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[kid].encrypt(nonce, payload.SerializeToString(), kid.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID: kid.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        kid = payload.metadata.get(KEY_ID, b"").decode()
        aead = self._keys.get(kid)
        if aead is None:
            raise CodecError(f"payload encrypted with unknown key {kid!r}")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = aead.decrypt(nonce, sealed, kid.encode())
        except InvalidTag:
            raise CodecError(f"payload under key {kid!r} does not authenticate") from None
        return Payload.FromString(plain)


def codec_for(settings: Settings) -> EncryptionCodec:
    return EncryptionCodec(parse_payload_keys(settings.temporal_payload_keys.get_secret_value()))


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic payloads, encrypted; failure messages and stack traces encoded too."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec_for(settings),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
