"""Verification of a W3C Verifiable Credential 2.0 (``mutabaqa verify`` on a credential file).

A credential file is a JSON object with ``@context`` (a payload v1 document never has one),
secured by one ``DataIntegrityProof`` (``eddsa-jcs-2022``). The checks, in order:

1. it is a VC 2.0 credential (``@context`` starting with the VC 2.0 context) of the types
   ``VerifiableCredential`` and ``DigitalConformityCredential``, with a DID issuer, one
   proof of our suite, and well-formed ``validFrom`` / ``validUntil`` — else UNREADABLE;
2. the proof's ``verificationMethod`` belongs to the issuer's DID — else NOT GENUINE;
3. the issuer's DID document: resolved online from its ``did:web`` (``domain/did_web``;
   https, http only for localhost) or given by ``--keys`` (a DID document, or the key set
   ``/.well-known/mutabaqa-keys.json`` read as the issuer's keys); a method it does not
   list under ``assertionMethod`` is an UNKNOWN KEY; a proof it does not verify is NOT
   GENUINE;
4. ``validFrom`` / ``validUntil`` against now;
5. online only (not with a ``--keys`` file), each ``BitstringStatusListEntry``: the status
   list credential is fetched, its proof verified against the same DID document, its
   issuer, ``id``, validity and purpose checked, its bit read (``domain/status_list``).

The exit status says whether the credential is genuine, exactly as for a payload v1: a
genuine credential that is expired, suspended or revoked is GENUINE (0), and the report
says it is not in force. A status list that cannot be fetched or trusted leaves the status
unknown, not the credential forged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from domain.did_web import did_web_document_url
from domain.status_list import StatusBitstring, StatusListError
from mutabaqa.data_integrity import CRYPTOSUITE, PROOF_TYPE, ProofError
from mutabaqa.did_document import (
    DID_CONTEXT,
    MULTIKEY,
    MULTIKEY_CONTEXT,
    method_key,
    verification_method_id,
    verify_with_did,
)
from mutabaqa.jsonld import VC_V2_CONTEXT
from mutabaqa.multikey import public_key_multibase
from mutabaqa.signing import keys_by_kid, public_key_from_jwk
from mutabaqa.verify import Unreadable, Verdict, fetch, read_source

CREDENTIAL_TYPES = ("VerifiableCredential", "DigitalConformityCredential")
STATUS_ENTRY = "BitstringStatusListEntry"
STATUS_LIST_CREDENTIAL = "BitstringStatusListCredential"
STATUS_LIST = "BitstringStatusList"
#: The purposes this command reads, and what a set bit means.
PURPOSES = {"suspension": "suspended", "revocation": "revoked"}

_INDEX = re.compile(r"0|[1-9][0-9]*")
_DATE_TIME_STAMP = re.compile(
    r"-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})"
)


def is_credential(document: Any) -> bool:
    """Whether a JSON document is to be read as a verifiable credential."""
    return isinstance(document, Mapping) and "@context" in document


@dataclass(frozen=True)
class StatusFinding:
    """One status entry: its bit (``None`` when it could not be read) or what went wrong."""

    purpose: str
    list_url: str
    index: str
    bit: bool | None = None
    problem: str = ""


@dataclass(frozen=True)
class CredentialOutcome:
    verdict: Verdict
    reason: str
    credential: Mapping[str, Any] = field(default_factory=dict)
    verification_method: str = ""
    #: Where the issuer's keys came from (a URL or a file).
    keys_source: str = ""
    #: What ``validFrom`` / ``validUntil`` say against now (empty: within them).
    validity: tuple[str, ...] = ()
    #: False offline: the status lists were not fetched.
    status_checked: bool = False
    statuses: tuple[StatusFinding, ...] = ()


# --- Reading -------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _id_of(value: Any) -> Any:
    """A node's ``id``: the value itself when it is a string (``"issuer": "did:…"``)."""
    return value.get("id") if isinstance(value, Mapping) else value


def _instant(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _DATE_TIME_STAMP.fullmatch(value):
        raise Unreadable(f"{name} {value!r} is not a date-time with a time zone")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Unreadable(f"{name} {value!r} is not a date-time") from None


def _shape(document: Any) -> tuple[str, str]:
    """(issuer DID, verification method) of a credential this command verifies."""
    if not isinstance(document, Mapping):
        raise Unreadable("the credential is not a JSON object")
    context = _as_list(document.get("@context"))
    if not context or context[0] != VC_V2_CONTEXT:
        raise Unreadable(
            f"not a Verifiable Credential 2.0: its @context does not start with {VC_V2_CONTEXT}"
        )
    types = _as_list(document.get("type"))
    missing = [name for name in CREDENTIAL_TYPES if name not in types]
    if missing:
        raise Unreadable(f"the credential's type lacks {', '.join(missing)}")
    issuer = _id_of(document.get("issuer"))
    if not isinstance(issuer, str) or not issuer.startswith("did:"):
        raise Unreadable(f"the credential's issuer {issuer!r} is not a DID")
    if not isinstance(document.get("credentialSubject"), Mapping | list):
        raise Unreadable("the credential has no credentialSubject")
    _instant(document.get("validFrom"), "validFrom")
    _instant(document.get("validUntil"), "validUntil")
    proof = document.get("proof")
    if isinstance(proof, list):
        raise Unreadable("the credential carries several proofs; only one proof is supported")
    if not isinstance(proof, Mapping) or proof.get("type") != PROOF_TYPE:
        raise Unreadable(f"the credential carries no {PROOF_TYPE}")
    if proof.get("cryptosuite") != CRYPTOSUITE:
        raise Unreadable(
            f"the proof's cryptosuite {proof.get('cryptosuite')!r} is not supported "
            f"(only {CRYPTOSUITE})"
        )
    method = proof.get("verificationMethod")
    if not isinstance(method, str):
        raise Unreadable("the proof names no verificationMethod")
    return issuer, method


# --- Fetching ------------------------------------------------------------------------------


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise Unreadable(f"{what} is not JSON") from None


def did_document_of_key_set(did: str, jwks: Mapping[str, Any]) -> dict[str, Any]:
    """The DID document ``did`` would publish for a key set (``mutabaqa-keys.json``): each
    key a Multikey ``<did>#<kid>`` under ``assertionMethod``, as ``/.well-known/did.json``
    lists the same keys."""
    methods = [
        {
            "id": verification_method_id(did, kid),
            "type": MULTIKEY,
            "controller": did,
            "publicKeyMultibase": public_key_multibase(public_key_from_jwk(jwk)),
        }
        for kid, jwk in keys_by_kid(jwks).items()
    ]
    return {
        "@context": [DID_CONTEXT, MULTIKEY_CONTEXT],
        "id": did,
        "verificationMethod": methods,
        "assertionMethod": [method["id"] for method in methods],
    }


def issuer_did_document(issuer: str, keys_source: str | None) -> tuple[dict[str, Any], str]:
    """(the issuer's DID document, where it came from): resolved from the did:web, or read
    from ``keys_source`` (a DID document, or a key set taken as the issuer's keys)."""
    if keys_source is None:
        try:
            source = did_web_document_url(issuer)
        except ValueError as exc:
            raise Unreadable(f"cannot resolve the issuer {issuer}: {exc}") from None
        document = _json(fetch(source, "the issuer's DID document"), source)
    else:
        source = keys_source
        document = _json(read_source(keys_source, "the key set or DID document"), source)
    if not isinstance(document, Mapping):
        raise Unreadable(f"{source} is neither a key set nor a DID document")
    if "keys" in document:
        try:
            return did_document_of_key_set(issuer, document), source
        except ValueError as exc:
            raise Unreadable(f"{source} is not a key set: {exc}") from None
    if not isinstance(document.get("id"), str) or "verificationMethod" not in document:
        raise Unreadable(f"{source} is neither a key set nor a DID document")
    return dict(document), source


# --- Status lists --------------------------------------------------------------------------


def _check_entry(
    entry: Any,
    issuer: str,
    did_document: Mapping[str, Any],
    now: datetime,
    lists: dict[str, Any],
) -> StatusFinding:
    """Read one ``BitstringStatusListEntry`` (W3C Bitstring Status List v1.0, section 3.2)."""
    if not isinstance(entry, Mapping):
        return StatusFinding("?", "?", "?", problem="a status entry is not an object")
    purpose = str(entry.get("statusPurpose", "?"))
    url = entry.get("statusListCredential")
    index = entry.get("statusListIndex")

    def fail(problem: str) -> StatusFinding:
        return StatusFinding(purpose, str(url), str(index), problem=problem)

    if STATUS_ENTRY not in _as_list(entry.get("type")):
        return fail(f"not a {STATUS_ENTRY}")
    if not isinstance(url, str) or not isinstance(index, str) or not _INDEX.fullmatch(index):
        return fail("no statusListCredential URL or no base-10 statusListIndex")
    if url not in lists:
        try:
            lists[url] = _json(fetch(url, "the status list"), f"the status list {url}")
        except Unreadable as exc:
            lists[url] = exc
    status_list = lists[url]
    if isinstance(status_list, Unreadable):
        return fail(str(status_list))
    if not isinstance(status_list, Mapping):
        return fail("the status list is not a JSON object")
    if not verify_with_did(status_list, did_document):
        return fail(
            "the status list is not trusted: its proof does not verify against the issuer's "
            "DID document"
        )
    if _id_of(status_list.get("issuer")) != issuer:
        return fail(f"the status list is issued by {_id_of(status_list.get('issuer'))!r}")
    if status_list.get("id") != url:
        return fail(f"the status list served there is {status_list.get('id')!r}")
    if STATUS_LIST_CREDENTIAL not in _as_list(status_list.get("type")):
        return fail(f"not a {STATUS_LIST_CREDENTIAL}")
    try:
        valid_from = _instant(status_list.get("validFrom"), "the status list's validFrom")
        valid_until = _instant(status_list.get("validUntil"), "the status list's validUntil")
    except Unreadable as exc:
        return fail(str(exc))
    if valid_from is not None and valid_from > now:
        return fail(f"the status list is valid only from {status_list['validFrom']}")
    if valid_until is not None and valid_until <= now:
        return fail(f"the status list expired at {status_list['validUntil']}: it is stale")
    subject = status_list.get("credentialSubject")
    if not isinstance(subject, Mapping) or STATUS_LIST not in _as_list(subject.get("type")):
        return fail(f"the status list's subject is not a {STATUS_LIST}")
    if purpose not in _as_list(subject.get("statusPurpose")):
        return fail(f"the list's purpose is {subject.get('statusPurpose')!r}, not {purpose!r}")
    if subject.get("statusSize", 1) != 1:
        return fail(f"statusSize {subject.get('statusSize')!r} is not supported (only 1)")
    try:
        bit = StatusBitstring.decode(subject.get("encodedList", "")).get(int(index))
    except StatusListError as exc:
        return fail(f"{exc.code}: {exc}")
    return StatusFinding(purpose, url, index, bit=bit)


# --- The verdict ---------------------------------------------------------------------------


def verify_credential(
    document: Any, keys_source: str | None = None, *, now: datetime | None = None
) -> CredentialOutcome:
    """The verdict on a credential. ``keys_source``: ``None`` resolves the issuer's
    did:web; a URL or a file gives a DID document or a key set instead. A file means
    offline: nothing is fetched and the status is not checked."""
    now = now or datetime.now(UTC)
    try:
        issuer, method = _shape(document)
    except Unreadable as exc:
        return CredentialOutcome(Verdict.UNREADABLE, str(exc))
    credential: Mapping[str, Any] = document
    if not method.startswith(issuer + "#"):
        return CredentialOutcome(
            Verdict.NOT_GENUINE,
            f"the proof names the key {method}, which is not the issuer {issuer}'s",
            credential,
            method,
        )
    try:
        did_document, source = issuer_did_document(issuer, keys_source)
    except Unreadable as exc:
        return CredentialOutcome(Verdict.UNREADABLE, str(exc), credential, method)
    found = CredentialOutcome(Verdict.GENUINE, "", credential, method, source)
    if did_document.get("id") != issuer:
        return _with(
            found,
            Verdict.UNKNOWN_KEY,
            f"the DID document is {did_document.get('id')!r}'s, not the issuer {issuer}'s",
        )
    try:
        method_key(did_document, method)
    except ProofError:
        return _with(
            found,
            Verdict.UNKNOWN_KEY,
            f"it is signed with {method}, a key the issuer's DID document does not list "
            "for assertions",
        )
    if not verify_with_did(credential, did_document):
        return _with(
            found,
            Verdict.NOT_GENUINE,
            "the proof does not match the contents: the credential was altered or forged",
        )
    validity = _validity(credential, now)
    genuine = _with(found, Verdict.GENUINE, "the proof matches the contents")
    if keys_source is not None and "://" not in keys_source:
        return replace(genuine, validity=validity)
    lists: dict[str, Any] = {}
    statuses = tuple(
        _check_entry(entry, issuer, did_document, now, lists)
        for entry in _as_list(credential.get("credentialStatus", []))
    )
    return replace(genuine, validity=validity, status_checked=True, statuses=statuses)


def _with(outcome: CredentialOutcome, verdict: Verdict, reason: str) -> CredentialOutcome:
    return replace(outcome, verdict=verdict, reason=reason)


def _validity(credential: Mapping[str, Any], now: datetime) -> tuple[str, ...]:
    valid_from = _instant(credential.get("validFrom"), "validFrom")
    valid_until = _instant(credential.get("validUntil"), "validUntil")
    found = []
    if valid_from is not None and now < valid_from:
        found.append(f"not yet valid (valid from {credential['validFrom']})")
    if valid_until is not None and now >= valid_until:
        found.append(f"expired (valid until {credential['validUntil']})")
    return tuple(found)


# --- The report ----------------------------------------------------------------------------


def _text(node: Any, key: str) -> str:
    value = node.get(key) if isinstance(node, Mapping) else None
    return value if isinstance(value, str) else ""


def describe(credential: Mapping[str, Any]) -> list[str]:
    """The credential's identity (a UNTP Digital Conformity Credential), one fact a line."""
    subject: Any = next(iter(_as_list(credential.get("credentialSubject"))), {})
    party = subject.get("issuedToParty") if isinstance(subject, Mapping) else None
    assessment: Any = next(iter(_as_list(_node(subject, "conformityAssessment"))), {})
    product = _node(next(iter(_as_list(_node(assessment, "assessedProduct"))), {}), "product")
    standards = [_text(s, "name") for s in _as_list(_node(assessment, "referenceStandard"))]
    issuer = credential.get("issuer")
    country = _text(_node(party, "registrationCountry"), "countryCode")
    return [
        f"credential: {_text(credential, 'id')}",
        f"attests: {_text(subject, 'name')}",
        f"issuer: {_text(issuer, 'name')} ({_id_of(issuer)})",
        f"holder: {_text(party, 'name')} ({_text(party, 'registeredId')}, {country})",
        f"product: {_text(product, 'name')} ({_text(product, 'description')})",
        f"scheme: {_text(_node(subject, 'referenceScheme'), 'name')}"
        + "".join(f"; {name}" for name in standards if name),
        f"valid from: {credential.get('validFrom', '?')}",
        f"valid until: {credential.get('validUntil', '?')}",
    ]


def _node(parent: Any, key: str) -> Any:
    return parent.get(key) if isinstance(parent, Mapping) else None


def _entry_line(finding: StatusFinding) -> str:
    where = f"{finding.purpose} list {finding.list_url}, index {finding.index}"
    if finding.bit is None:
        return f"{where}: not read ({finding.problem})"
    if finding.purpose not in PURPOSES:
        return f"{where}: purpose not read by this command"
    meaning = PURPOSES[finding.purpose]
    return f"{where}: bit {int(finding.bit)}, {'' if finding.bit else 'not '}{meaning}"


def status_lines(outcome: CredentialOutcome) -> list[str]:
    """Whether a genuine credential is in force: a headline, then one line per list."""
    if outcome.verdict is not Verdict.GENUINE:
        return []
    read = [f for f in outcome.statuses if f.bit is not None and f.purpose in PURPOSES]
    not_in_force = [PURPOSES[f.purpose] for f in read if f.bit] + list(outcome.validity)
    details = [f"  {_entry_line(finding)}" for finding in outcome.statuses] or [
        "  the credential names no status list"
    ]
    if not outcome.status_checked:
        entries = _as_list(outcome.credential.get("credentialStatus", []))
        lists = [f"{_text(e, 'statusPurpose')} {_text(e, 'statusListCredential')}" for e in entries]
        details = [
            "  status lists not fetched (offline: --keys is a file); check them online: "
            + ("; ".join(lists) or "the credential names none")
        ]
    if not_in_force:
        return [f"NOT IN FORCE: {'; '.join(not_in_force)}.", *details]
    if not outcome.status_checked:
        return ["STATUS NOT CHECKED: within its validity period; offline.", *details]
    purposes = {f.purpose for f in read}
    unknown = [f"{p} not read" for p in PURPOSES if p not in purposes]
    if unknown:
        return [f"STATUS UNKNOWN: {'; '.join(unknown)}.", *details]
    return [
        "IN FORCE: within its validity period, neither suspended nor revoked "
        "(status lists read now).",
        *details,
    ]


def report(outcome: CredentialOutcome) -> list[str]:
    """What ``mutabaqa verify`` prints for a credential that could be read."""
    labels = {
        Verdict.GENUINE: "GENUINE",
        Verdict.NOT_GENUINE: "NOT GENUINE",
        Verdict.UNKNOWN_KEY: "UNKNOWN KEY",
    }
    claims = "" if outcome.verdict is Verdict.GENUINE else " (as it claims)"
    lines = [f"{labels[outcome.verdict]}: {outcome.reason}."]
    lines += [f"  {line}{claims}" for line in describe(outcome.credential)]
    source = f" (keys: {outcome.keys_source})" if outcome.keys_source else ""
    lines.append(f"  signing key: {outcome.verification_method}{source}")
    return lines + status_lines(outcome)
