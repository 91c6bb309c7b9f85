"""What a credential's status lists say, and what a certificate's status was at an instant
(issue 13). Pure: the record (certificate issues and their transitions) goes in, the bits,
the unsigned list credentials and the answers come out.

- **Bits.** The suspension bit of an issue's credential is 1 while the issue is
  ``suspended``; its revocation bit is 1 once the issue is ``withdrawn``, ``terminated`` or
  ``superseded`` (a reissue revokes the old issue's credential). Expiry sets no bit: the
  credential's ``validUntil`` says it.
- **Lists.** ``BitstringStatusListCredential`` (W3C Bitstring Status List v1.0), issued by
  the deployment's DID, valid from the instant the version was published, with a ``ttl``
  (milliseconds) telling verifiers how long they may cache it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from domain.credentials import VC_V2_CONTEXT, day_end, instant
from domain.status_list import StatusBitstring
from domain.statuses import CertificateStatus

PURPOSES = ("suspension", "revocation")
#: Statuses of an issue that set its credential's revocation bit.
REVOKED = frozenset(
    {CertificateStatus.WITHDRAWN, CertificateStatus.TERMINATED, CertificateStatus.SUPERSEDED}
)


def status_bit(purpose: str, status: CertificateStatus) -> bool:
    """The bit of ``purpose`` for an issue in ``status``."""
    if purpose == "suspension":
        return status is CertificateStatus.SUSPENDED
    if purpose == "revocation":
        return status in REVOKED
    raise ValueError(f"unknown status purpose {purpose!r}")


def list_url(public_base_url: str, purpose: str, list_id: int) -> str:
    return f"{public_base_url.rstrip('/')}/status-lists/{purpose}/{list_id}"


def status_entry(public_base_url: str, purpose: str, list_id: int, index: int) -> dict[str, Any]:
    """One ``BitstringStatusListEntry`` (the index as a base-10 string, as W3C says)."""
    url = list_url(public_base_url, purpose, list_id)
    return {
        "id": f"{url}#{index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": purpose,
        "statusListIndex": str(index),
        "statusListCredential": url,
    }


def bitstring(size: int, members: Iterable[tuple[int, bool]]) -> StatusBitstring:
    """A list of ``size`` bits with each ``(index, bit)`` of its members set."""
    bits = StatusBitstring(size)
    for index, value in members:
        bits.set(index, value)
    return bits


def status_list_credential(
    public_base_url: str,
    issuer_did: str,
    purpose: str,
    list_id: int,
    encoded_list: str,
    published_at: datetime,
    ttl_ms: int,
) -> dict[str, Any]:
    """The unsigned ``BitstringStatusListCredential`` of one version of a list."""
    url = list_url(public_base_url, purpose, list_id)
    return {
        "@context": [VC_V2_CONTEXT],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer_did,
        "validFrom": instant(published_at),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": purpose,
            "encodedList": encoded_list,
            "ttl": ttl_ms,
        },
    }


# --- "was it valid at that instant?" ---------------------------------------------------------


@dataclass(frozen=True)
class IssueRecord:
    """One issue of a certificate as the record has it."""

    issue: int
    created_at: datetime
    issued_on: date
    valid_until: date


@dataclass(frozen=True)
class StatusChange:
    """One transition of a certificate (its audit event): the issue it applied to, when,
    and the status it led to."""

    issue: int
    at: datetime
    to_status: CertificateStatus


@dataclass(frozen=True)
class StatusAt:
    """The answer for one instant: the issue in force then (None: not issued yet), its
    status then, and whether it was valid (active and within its dates)."""

    issue: int | None
    status: CertificateStatus | None
    valid: bool


def status_at(
    issues: Sequence[IssueRecord],
    changes: Sequence[StatusChange],
    at: datetime,
    timezone: str,
) -> StatusAt:
    """The status of a certificate at instant ``at`` from its issues and transitions: the
    latest issue created by then, ``active`` from its creation, then each of its changes
    made by then, in order; ``active`` or ``suspended`` past the end of the inclusive
    ``valid_until`` day reads ``expired``."""
    known = sorted((i for i in issues if i.created_at <= at), key=lambda i: i.issue)
    if not known:
        return StatusAt(None, None, False)
    current = known[-1]
    status = CertificateStatus.ACTIVE
    for change in sorted(changes, key=lambda c: c.at):
        if change.issue == current.issue and change.at <= at:
            status = change.to_status
    lapsed = at >= day_end(current.valid_until, timezone)
    if lapsed and status in (CertificateStatus.ACTIVE, CertificateStatus.SUSPENDED):
        status = CertificateStatus.EXPIRED
    valid = status is CertificateStatus.ACTIVE and not lapsed
    return StatusAt(current.issue, status, valid)
