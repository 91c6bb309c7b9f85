"""Certificate signing (SPEC section 5): Ed25519 over the RFC 8785 canonical JSON of the
payload; keys named by their RFC 7638 JWK thumbprint (``kid``).

The helpers at the top are pure (no I/O) and are also what an offline verifier uses. The
``KeyRing`` (workers only) holds the active private key and the retired public keys, read
from files named by settings; retired keys stay in the published key set so that
certificates they signed can still be verified. The ``PublicKeySet`` is what the API
publishes: read from public-key files only (the active key's public half, written beside
the private key, and the retired keys), it never touches private material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from models.certificates import KeySet, PublicJwk, SignedPayload
from mutabaqa.settings import Settings, SettingsError

ACTIVE_KEY_VARIABLE = "MUTABAQA_SIGNING_KEY_PATH"
PUBLIC_KEY_VARIABLE = "MUTABAQA_SIGNING_PUBLIC_KEY_PATH"
RETIRED_KEYS_VARIABLE = "MUTABAQA_SIGNING_RETIRED_KEY_PATHS"

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class SigningKeyError(SettingsError):
    """A signing key file is missing, unreadable or not an Ed25519 key; the message names
    the file and the variable to fix."""


# --- Pure helpers --------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url without padding; refuses padding, other alphabets and non-canonical
    encodings (so that one value has exactly one spelling)."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url without padding")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except binascii.Error as exc:
        raise ValueError("not base64url without padding") from exc
    if b64url_encode(data) != text:
        raise ValueError("non-canonical base64url encoding")
    return data


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    """The public key as a JWK (RFC 8037): ``{"kty": "OKP", "crv": "Ed25519", "x": ...}``."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint: SHA-256 over the JSON of the required members ``crv``, ``kty``,
    ``x`` in lexicographic order without whitespace, base64url without padding. Other
    members (``kid``, ``use``...) do not count."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not isinstance(jwk.get("x"), str):
        raise ValueError("not an Ed25519 public JWK (kty OKP, crv Ed25519, x)")
    required = {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}
    text = json.dumps(required, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return b64url_encode(hashlib.sha256(text.encode("utf-8")).digest())


def public_key_from_jwk(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    """The Ed25519 public key of a JWK; ``ValueError`` when it is not one."""
    jwk_thumbprint(jwk)  # checks kty, crv and x
    raw = b64url_decode(jwk["x"])
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key has 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def _strings_only(value: Any, where: str) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: object keys must be strings, not {key!r}")
            out[key] = _strings_only(item, f"{where}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_strings_only(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{where}: the signed payload holds strings only, not {value!r}")


def canonical_payload(payload: Mapping[str, Any]) -> bytes:
    """The RFC 8785 canonical JSON (UTF-8) of a payload made of strings, objects and lists;
    ``TypeError`` for any other value (numbers must already be decimal strings)."""
    return rfc8785.dumps(_strings_only(payload, "payload"))


def sign_payload(
    private_key: Ed25519PrivateKey, payload_without_kid: Mapping[str, Any]
) -> SignedPayload:
    """Insert the key's ``kid`` into the payload and sign its canonical JSON.

    A payload that already carries a ``kid`` must carry this key's one."""
    kid = jwk_thumbprint(public_jwk(private_key.public_key()))
    given = payload_without_kid.get("kid")
    if given is not None and given != kid:
        raise ValueError(f"the payload names key {given!r}, but is being signed by {kid!r}")
    payload = {**payload_without_kid, "kid": kid}
    signature = private_key.sign(canonical_payload(payload))
    return SignedPayload(payload=payload, signature=b64url_encode(signature), kid=kid)


def verify_payload(
    payload: Mapping[str, Any], signature_b64url: str, jwk: Mapping[str, Any]
) -> bool:
    """True when ``signature_b64url`` is this key's Ed25519 signature of the payload's
    canonical JSON and the payload's ``kid`` (when present) names this key. Never raises:
    malformed keys, signatures or payloads are simply not genuine."""
    try:
        public_key = public_key_from_jwk(jwk)
        if "kid" in payload and payload["kid"] != jwk_thumbprint(jwk):
            return False
        signature = b64url_decode(signature_b64url)
        if len(signature) != 64:
            return False
        public_key.verify(signature, canonical_payload(payload))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


# --- Key files -----------------------------------------------------------------------------


def private_key_pem(private_key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (what ``openssl genpkey -algorithm ed25519`` writes)."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _read_key_file(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(f"{variable}: no signing key file at {path}") from None
    except OSError as exc:
        raise SigningKeyError(f"{variable}: cannot read {path}: {exc.strerror}") from None


def load_private_key(path: Path, variable: str = ACTIVE_KEY_VARIABLE) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file (PKCS#8, unencrypted)."""
    data = _read_key_file(path, variable)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"{variable}: {path} is not an unencrypted PEM private key ({exc})"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            f"{variable}: {path} holds a {type(key).__name__}, not an Ed25519 private key"
        )
    return key


def load_public_key(path: Path, variable: str = RETIRED_KEYS_VARIABLE) -> Ed25519PublicKey:
    """The Ed25519 public key of a PEM file holding either a public or a private key."""
    data = _read_key_file(path, variable)
    if b"PRIVATE KEY-----" in data:
        return load_private_key(path, variable).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{variable}: {path} is not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(
            f"{variable}: {path} holds a {type(key).__name__}, not an Ed25519 public key"
        )
    return key


def create_key_file(path: Path) -> Ed25519PrivateKey | None:
    """Generate an Ed25519 key into ``path`` (mode 0600, parent directories 0700) unless a
    file is already there. Returns the new key, or None when the file existed (or another
    process created it at the same moment): the file, once there, is always complete."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        return None
    key = Ed25519PrivateKey.generate()
    fd, tmp = tempfile.mkstemp(prefix=".signing-", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(private_key_pem(key))
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # atomic, and refuses to replace an existing file
        except FileExistsError:
            return None
    finally:
        os.unlink(tmp)
    return key


def load_public_only(path: Path, variable: str) -> Ed25519PublicKey:
    """The Ed25519 public key of a PEM file that holds a public key, and only that: the API
    publishes keys without ever reading private material."""
    if not path.exists():
        raise SigningKeyError(
            f"{variable}: no public key file at {path}; the API serves the public half of the "
            "signing key: `mutabaqa keys init` writes it beside the private key (or "
            "`openssl pkey -pubout`), and the worker writes it in development"
        )
    data = _read_key_file(path, variable)
    if b"PRIVATE KEY-----" in data:
        raise SigningKeyError(
            f"{variable}: {path} holds a private key; the API reads public keys only: give "
            "the public half (`mutabaqa keys init` writes it beside the private key, or "
            "`openssl pkey -pubout`)"
        )
    return load_public_key(path, variable)


def write_public_key_file(path: Path, public_key: Ed25519PublicKey) -> bool:
    """Write the public key's PEM to ``path`` (mode 0644) unless a file is there; True when
    written. An existing file holding another key is an error (``SigningKeyError``): the
    API would publish a key that signs nothing."""
    if path.exists():
        if public_jwk(load_public_only(path, PUBLIC_KEY_VARIABLE)) != public_jwk(public_key):
            raise SigningKeyError(
                f"{PUBLIC_KEY_VARIABLE}: {path} is not the public half of the signing key "
                f"({ACTIVE_KEY_VARIABLE}); remove it and run `mutabaqa keys init`"
            )
        return False
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".public-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(public_key_pem(public_key))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        os.unlink(tmp)
    return True


# --- Key sets ------------------------------------------------------------------------------


class PublicKeySet:
    """The published keys: the active public key first, then the retired ones, each named
    by its ``kid``."""

    def __init__(self, active: Ed25519PublicKey, retired: Iterable[Ed25519PublicKey] = ()) -> None:
        active_jwk = public_jwk(active)
        self.active_kid = jwk_thumbprint(active_jwk)
        self._jwks: dict[str, dict[str, str]] = {self.active_kid: active_jwk}
        for key in retired:
            jwk = public_jwk(key)
            self._jwks.setdefault(jwk_thumbprint(jwk), jwk)

    @classmethod
    def load(cls, settings: Settings) -> PublicKeySet:
        """Read the active public key (``settings.resolved_signing_public_key_path``) and
        the retired keys, refusing any file that holds a private key. Nothing is generated,
        in development neither: the worker, ``mutabaqa dev`` or ``mutabaqa keys init``
        writes the public file."""
        active = load_public_only(settings.resolved_signing_public_key_path, PUBLIC_KEY_VARIABLE)
        retired = [
            load_public_only(path, RETIRED_KEYS_VARIABLE)
            for path in settings.signing_retired_key_paths
        ]
        return cls(active, retired)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """``{"keys": [active, *retired]}``, each JWK with its ``kid``."""
        return {"keys": [{**jwk, "kid": kid} for kid, jwk in self._jwks.items()]}

    def key_set(self) -> KeySet:
        return KeySet(keys=[PublicJwk(kid=kid, x=jwk["x"]) for kid, jwk in self._jwks.items()])

    def find(self, kid: str) -> dict[str, str] | None:
        """The public JWK (with its ``kid``) of the active or a retired key, or None."""
        jwk = self._jwks.get(kid)
        return None if jwk is None else {**jwk, "kid": kid}


class KeyRing(PublicKeySet):
    """The active signing key (private) and the retired public keys: what workers sign with."""

    def __init__(self, active: Ed25519PrivateKey, retired: Iterable[Ed25519PublicKey] = ()) -> None:
        super().__init__(active.public_key(), retired)
        self._active = active

    def public_key(self) -> Ed25519PublicKey:
        """The active key's public half."""
        return self._active.public_key()

    @classmethod
    def load(cls, settings: Settings) -> KeyRing:
        """Read the active key (``settings.resolved_signing_key_path``) and the retired keys
        (``settings.signing_retired_key_paths``); ``SigningKeyError`` names what is wrong."""
        active = load_private_key(settings.resolved_signing_key_path)
        retired = [load_public_key(path) for path in settings.signing_retired_key_paths]
        return cls(active, retired)

    @classmethod
    def ensure(cls, settings: Settings) -> KeyRing:
        """``load``, after generating the active key on first start in development. In
        production a missing key is an error: keys are provided, never invented."""
        path = settings.resolved_signing_key_path
        if not path.exists():
            if not settings.is_development:
                raise SigningKeyError(
                    f"{ACTIVE_KEY_VARIABLE}: no certificate signing key at {path}; outside "
                    "development the key is never generated: provide an Ed25519 private key "
                    "in PEM (PKCS#8), e.g. made by `openssl genpkey -algorithm ed25519` or "
                    "`mutabaqa keys init`"
                )
            create_key_file(path)
        ring = cls.load(settings)
        ring.publish(settings)
        return ring

    def publish(self, settings: Settings) -> None:
        """Check the public file the API serves against the signing key, and write it when
        missing in development (in production it is provided, like the private key)."""
        public_path = settings.resolved_signing_public_key_path
        if settings.is_development or public_path.exists():
            write_public_key_file(public_path, self.public_key())

    def sign(self, payload: Mapping[str, Any]) -> SignedPayload:
        """Sign with the active key (its ``kid`` is inserted into the payload)."""
        return sign_payload(self._active, payload)

    def sign_bytes(self, data: bytes) -> bytes:
        """The active key's raw Ed25519 signature of ``data``: Data Integrity proofs sign
        their own hash data (``mutabaqa/data_integrity.py``), not a payload."""
        return self._active.sign(data)

    def verify(self, payload: Mapping[str, Any], signature_b64url: str) -> bool:
        """True when the payload was signed by one of the ring's keys (the one its ``kid``
        names)."""
        kid = payload.get("kid")
        jwk = self.find(kid) if isinstance(kid, str) else None
        return jwk is not None and verify_payload(payload, signature_b64url, jwk)


def keys_by_kid(jwks: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The Ed25519 keys of a JWKS document (``{"keys": [...]}``), indexed by their
    thumbprint as computed here (a listed ``kid`` that disagrees is not trusted). Other
    key types are skipped; ``ValueError`` when the document is no key set."""
    keys = jwks.get("keys")
    if not isinstance(keys, Sequence) or isinstance(keys, str):
        raise ValueError('a key set is a JSON object with a "keys" list')
    found: dict[str, dict[str, str]] = {}
    for jwk in keys:
        if not isinstance(jwk, Mapping):
            continue
        try:
            public_key_from_jwk(jwk)
            kid = jwk_thumbprint(jwk)
        except ValueError:
            continue
        found[kid] = {"kty": "OKP", "crv": "Ed25519", "x": jwk["x"], "kid": kid}
    return found
