"""What a certificate's PDF shows: the signed payload and the facts printed beside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_REQUIRED_PAYLOAD_KEYS = (
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


@dataclass(frozen=True)
class CertificationBody:
    """The certification body's identity as printed (settings ``body_*``)."""

    name: str
    name_ar: str
    address: str
    accreditation: str


@dataclass(frozen=True)
class StandardTitle:
    code: str
    edition: str
    title: str | None = None
    title_ar: str | None = None


@dataclass(frozen=True)
class CertificateDocument:
    """Everything the PDF shows: the signed payload (SPEC 5 schema v1) and what the page
    needs beyond it (addresses, titles, names in Arabic, the verification URL)."""

    payload: Mapping[str, Any]
    signature: str
    body: CertificationBody
    holder_address: str
    verify_url: str
    holder_name_ar: str | None = None
    product_name_ar: str | None = None
    scheme_title: str | None = None
    scheme_title_ar: str | None = None
    standards: Sequence[StandardTitle] = field(default_factory=tuple)
    testing_centre: str | None = None
    testing_centre_ar: str | None = None

    def __post_init__(self) -> None:
        missing = [k for k in _REQUIRED_PAYLOAD_KEYS if k not in self.payload]
        if missing:
            raise ValueError(f"certificate payload lacks {', '.join(missing)}")

    @property
    def number(self) -> str:
        return str(self.payload["number"])

    @property
    def key_id(self) -> str:
        return str(self.payload["kid"])

    def signed_json(self) -> dict[str, Any]:
        """What is attached to the PDF (the shape of ``GET /verify/{number}``'s fields)."""
        return {
            "certificate": dict(self.payload),
            "signature": self.signature,
            "key_id": self.key_id,
        }


def certificate_verify_url(public_base_url: str, number: str) -> str:
    """``<public base URL>/verify/<number>``: what the QR code encodes."""
    return f"{public_base_url.rstrip('/')}/verify/{number}"
