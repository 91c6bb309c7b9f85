"""Offline verification of a certificate (``mutabaqa verify``).

A certificate file is either the JSON served by ``GET /verify/{number}``
(``{"certificate": payload, "signature": ..., "key_id": ...}``), a bare signed document
(``{"payload": ..., "signature": ...}``) or the certificate PDF, which embeds that JSON
as the attachment ``mutabaqa-certificate.json`` and carries a PAdES signature. The
signature proves who issued the certificate and that it was not altered; it does not say
whether the certificate is still in force, which only the online register knows.

A JSON file with ``@context`` is a W3C verifiable credential instead
(``mutabaqa/verify_credential.py``), whose status lists are read online.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509

from mutabaqa.signing import keys_by_kid, verify_payload

WELL_KNOWN_KEYS = "/.well-known/mutabaqa-keys.json"

#: Schema v1 fields (SPEC section 5); ``holder.name_ar`` is optional.
REQUIRED_FIELDS = (
    "v",
    "number",
    "issue",
    "kid",
    "issuer",
    "holder",
    "product",
    "scheme",
    "standards",
    "scope",
    "decision_rule",
    "test_report_digest",
    "issued_on",
    "valid_until",
)


class Verdict(IntEnum):
    """The exit status of ``mutabaqa verify``."""

    GENUINE = 0
    NOT_GENUINE = 1
    UNKNOWN_KEY = 2
    UNREADABLE = 3


class Unreadable(Exception):
    """The file (or the key set) cannot be read as a certificate (or a key set)."""


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    kid: str | None = None
    notes: tuple[str, ...] = ()


def keys_url(public_base_url: str) -> str:
    return public_base_url.rstrip("/") + WELL_KNOWN_KEYS


def base_url_of(keys_source: str) -> str | None:
    """The public base URL a key-set URL belongs to (``…/.well-known/mutabaqa-keys.json``)."""
    if keys_source.startswith(("http://", "https://")) and keys_source.endswith(WELL_KNOWN_KEYS):
        return keys_source.removesuffix(WELL_KNOWN_KEYS)
    return None


def status_url(public_base_url: str, number: str) -> str:
    return f"{public_base_url.rstrip('/')}/verify/{number}"


#: Hosts whose key set (or DID document, status list) may be fetched over plain http.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: The most read from a URL: a key set or DID document; status lists (1 MiB bitstrings).
MAX_FETCH_BYTES = 4 << 20


def check_fetch_url(source: str, what: str = "the key set") -> None:
    """Raise ``Unreadable`` unless ``source`` may be fetched: https, or http to this machine
    (anyone on the path of a plain-http fetch could hand over their own keys)."""
    parts = urlsplit(source)
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() == "https" and host:
        return
    if parts.scheme.lower() == "http" and host in LOCAL_HOSTS:
        return
    raise Unreadable(
        f"refusing to fetch {what} from {source}: it is fetched over https only "
        "(http only from localhost / 127.0.0.1)"
    )


def fetch(source: str, what: str = "the key set", *, timeout: float = 10.0) -> bytes:
    """The body of an https URL (http only for localhost / 127.0.0.1), at most
    ``MAX_FETCH_BYTES``; redirects are not followed, so what is read comes from the
    address given and nowhere else. ``Unreadable`` names what failed."""
    check_fetch_url(source, what)
    body = bytearray()
    try:
        with httpx.stream("GET", source, timeout=timeout, follow_redirects=False) as response:
            if response.is_redirect:
                where = response.headers.get("location", "?")
                raise Unreadable(
                    f"cannot fetch {what} {source}: HTTP {response.status_code} redirects "
                    f"to {where}, and redirects are not followed (give the final URL)"
                )
            if response.status_code != 200:
                raise Unreadable(f"cannot fetch {what} {source}: HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_FETCH_BYTES:
                    raise Unreadable(f"{what} {source} is larger than {MAX_FETCH_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise Unreadable(f"cannot fetch {what} {source}: {exc}") from None
    return bytes(body)


def read_source(source: str, what: str = "the key set") -> bytes:
    """The bytes of a URL (``fetch``) or of a file."""
    if "://" in source:
        return fetch(source, what)
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot read {what} {source}: {exc.strerror}") from None


def load_key_set(source: str) -> dict[str, dict[str, str]]:
    """The Ed25519 keys of a JWKS file path or URL (``fetch``), indexed by thumbprint."""
    raw = read_source(source)
    try:
        document = json.loads(raw)
        if not isinstance(document, Mapping):
            raise ValueError("not a JSON object")
        return keys_by_kid(document)
    except ValueError as exc:
        raise Unreadable(f"{source} is not a key set: {exc}") from None


def _signed_parts(document: Any) -> tuple[dict[str, Any], str]:
    """(payload, signature) of the verification JSON or a bare signed document."""
    if not isinstance(document, Mapping):
        raise Unreadable("the certificate is not a JSON object")
    payload = document.get("certificate", document.get("payload"))
    signature = document.get("signature")
    if not isinstance(payload, Mapping):
        raise Unreadable('no signed payload ("certificate" or "payload" object)')
    if not isinstance(signature, str):
        raise Unreadable('no "signature" string')
    missing = [name for name in REQUIRED_FIELDS if name not in payload]
    if missing:
        raise Unreadable(f"the payload lacks {', '.join(missing)}")
    if payload["v"] != "1":
        raise Unreadable(f"payload schema version {payload['v']!r} is not supported (only 1)")
    if not isinstance(payload["kid"], str):
        raise Unreadable('the payload\'s "kid" is not a string')
    return dict(payload), signature


def read_certificate_file(path: Path) -> tuple[Any, bytes | None]:
    """The signed JSON document in ``path`` and, for a PDF, the PDF bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot read {path}: {exc.strerror}") from None
    if data.lstrip()[:5] == b"%PDF-":
        try:
            from activities.certificate_pdf import extract_signed_payload
        except ImportError:
            raise Unreadable(
                f"{path} is a PDF, and this installation cannot read PDF certificates; "
                "verify the JSON from the online verification page instead"
            ) from None
        try:
            document = extract_signed_payload(data)
        except Exception as exc:  # a damaged PDF is unreadable, whatever the parser says
            raise Unreadable(f"{path} is a damaged PDF ({type(exc).__name__}: {exc})") from None
        if document is None:
            raise Unreadable(f"{path} is not a certificate PDF (no mutabaqa-certificate.json)")
        return document, data
    try:
        return json.loads(data), None
    except (UnicodeDecodeError, ValueError):
        raise Unreadable(f"{path} is neither a certificate JSON file nor a PDF") from None


def check_pdf_signature(
    pdf_bytes: bytes, trust_roots: Sequence[x509.Certificate], genuine: Outcome
) -> Outcome:
    """The PDF's own (PAdES) signature, once its embedded payload is genuine: the page must
    not have changed since signing; with ``trust_roots`` its signer must chain to one."""
    from activities.certificate_pdf import check_pades

    check = check_pades(pdf_bytes, list(trust_roots))
    if not check.signed:
        return replace(
            genuine,
            verdict=Verdict.NOT_GENUINE,
            reason=f"the embedded certificate is genuine, but the PDF is not signed "
            f"({check.problem}): its pages may have been altered",
        )
    if not (check.intact and check.covers_whole_file):
        return replace(
            genuine,
            verdict=Verdict.NOT_GENUINE,
            reason="the embedded certificate is genuine, but the PDF was modified after it "
            f"was signed ({check.problem})",
        )
    if trust_roots and not check.trusted:
        return replace(
            genuine,
            verdict=Verdict.UNKNOWN_KEY,
            reason=f"the PDF is signed by {check.signer}, which does not chain to the given CA",
        )
    note = (
        f"PDF signed by {check.signer}, unmodified, chaining to the given CA"
        if trust_roots
        else f"PDF signed by {check.signer} and unmodified (signer not checked: give --ca)"
    )
    return replace(genuine, notes=(*genuine.notes, note))


def check_document(document: Any, keys: Mapping[str, Mapping[str, str]]) -> Outcome:
    """The verdict on a signed document against a key set (``keys_by_kid``)."""
    try:
        payload, signature = _signed_parts(document)
    except Unreadable as exc:
        return Outcome(Verdict.UNREADABLE, str(exc))
    kid = payload["kid"]
    jwk = keys.get(kid)
    if jwk is None:
        return Outcome(
            Verdict.UNKNOWN_KEY,
            f"it is signed with key {kid}, which is not in the key set",
            payload,
            kid,
        )
    key_id = document.get("key_id")
    if key_id is not None and key_id != kid:
        return Outcome(
            Verdict.NOT_GENUINE,
            f'"key_id" {key_id!r} contradicts the signed kid {kid!r}',
            payload,
            kid,
        )
    if not verify_payload(payload, signature, jwk):
        return Outcome(
            Verdict.NOT_GENUINE,
            "the signature does not match the contents: the certificate was altered or forged",
            payload,
            kid,
        )
    return Outcome(Verdict.GENUINE, "the signature matches the contents", payload, kid)


def verify_file(
    path: Path, keys_source: str, trust_roots: Sequence[x509.Certificate] = ()
) -> Outcome:
    """Read ``path``, fetch the key set and check the signed payload; for a PDF also its
    PAdES signature (against ``trust_roots``: the deployment's CA certificates)."""
    try:
        document, pdf_bytes = read_certificate_file(path)
    except Unreadable as exc:
        return Outcome(Verdict.UNREADABLE, str(exc))
    return verify_document(document, pdf_bytes, keys_source, trust_roots)


def verify_document(
    document: Any,
    pdf_bytes: bytes | None,
    keys_source: str,
    trust_roots: Sequence[x509.Certificate] = (),
) -> Outcome:
    """``verify_file`` on a document already read (``read_certificate_file``)."""
    try:
        _signed_parts(document)
    except Unreadable as exc:
        return Outcome(Verdict.UNREADABLE, str(exc))
    try:
        keys = load_key_set(keys_source)
    except Unreadable as exc:
        return Outcome(Verdict.UNREADABLE, str(exc))
    outcome = check_document(document, keys)
    if outcome.verdict is Verdict.GENUINE and pdf_bytes is not None:
        return check_pdf_signature(pdf_bytes, trust_roots, outcome)
    return outcome


def describe_payload(payload: Mapping[str, Any]) -> list[str]:
    """The certificate's identity, one fact a line."""

    def part(name: str, key: str) -> str:
        value = payload.get(name)
        return str(value.get(key, "")) if isinstance(value, Mapping) else ""

    standards = payload.get("standards")
    standards = standards if isinstance(standards, list) else []
    holder = part("holder", "name")
    if part("holder", "name_ar"):
        holder += f" / {part('holder', 'name_ar')}"
    return [
        f"certificate: {payload.get('number', '?')}, issue {payload.get('issue', '?')}",
        f"holder: {holder} ({part('holder', 'registration_id')}, {part('holder', 'country')})",
        f"product: {part('product', 'name')}, brand {part('product', 'brand')}, "
        f"model {part('product', 'model')}",
        f"scheme: {part('scheme', 'code')} version {part('scheme', 'version')}"
        + "".join(
            f"; {s.get('code', '')} edition {s.get('edition', '')}"
            for s in standards
            if isinstance(s, Mapping)
        ),
        f"issued on: {payload.get('issued_on', '?')}",
        f"valid until: {payload.get('valid_until', '?')}",
    ]
