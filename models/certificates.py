"""Certificate payloads (SPEC section 5): the signed payload, public keys and key sets."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.lab import CertificateStatus

# --- Signed payload and keys (activities/signing.py) --------------------------------------

#: A value of the signed payload, schema v1: strings only, at most one level of nesting
#: (``issuer``, ``holder``, ``product``, ``scheme`` are objects, ``standards`` a list).
PayloadValue = str | dict[str, str] | list[dict[str, str]]


class SignedPayload(BaseModel):
    """A certificate payload with its ``kid`` and the Ed25519 signature over its RFC 8785
    canonical JSON (base64url without padding)."""

    model_config = ConfigDict(frozen=True)

    payload: dict[str, PayloadValue]
    signature: str = Field(description="Ed25519 signature, base64url without padding.")
    kid: str = Field(description="RFC 7638 thumbprint of the signing key's public JWK.")


class PublicJwk(BaseModel):
    """An Ed25519 public key as a JSON Web Key (RFC 8037), named by its thumbprint."""

    kty: Literal["OKP"] = "OKP"
    crv: Literal["Ed25519"] = "Ed25519"
    kid: str
    x: str = Field(description="The 32-byte public key, base64url without padding.")


class KeySet(BaseModel):
    """``GET /.well-known/mutabaqa-keys.json``: the active key first, then retired keys
    (kept listed so that certificates they signed can still be verified)."""

    keys: list[PublicJwk]


# --- Public facts: verification and directory (api/routes/public.py) ----------------------
#
# The fields of these models ARE the allow-list of what the public sees (SPEC section 5):
# the facts printed on the certificate, its status and since when. Never test data,
# documents or personal data: built from the stored signed payload, whose other keys
# (registration id, issuer, decision rule, test-report digest) appear only inside
# ``certificate``, the payload exactly as signed.


class PublicHolder(BaseModel):
    """The certificate holder (an organisation) as the certificate names it."""

    name: str
    name_ar: str | None = None
    country: str


class DirectoryHolder(BaseModel):
    name: str
    country: str


class PublicProduct(BaseModel):
    name: str
    brand: str
    model: str


class PublicScheme(BaseModel):
    code: str
    version: str = Field(description="The scheme version, as a string (as in the payload).")


class PublicStandard(BaseModel):
    code: str
    edition: str


class PublicStatusAt(BaseModel):
    """``GET /verify/{number}?at=``: was the certificate valid at that instant? From the
    record (each issue and each transition with its time), not from the status lists."""

    number: str
    at: datetime
    issue: int | None = Field(description="The issue in force then; null: not issued yet.")
    status: CertificateStatus | None = Field(description="Its status then.")
    valid: bool = Field(description="Active then and within its validity dates.")


class PublicCertificate(BaseModel):
    """``GET /verify/{number}``: the latest issue of a certificate, its status (checked
    online: the signed payload carries none) and the signed payload with its signature."""

    number: str
    issue: int
    status: CertificateStatus
    status_since: datetime
    holder: PublicHolder
    product: PublicProduct
    scheme: PublicScheme
    standards: list[PublicStandard]
    scope: str
    issued_on: date
    valid_until: date
    certificate: dict[str, Any] = Field(description="The signed payload exactly as stored.")
    signature: str | None = Field(
        description="Ed25519 signature over the payload's RFC 8785 canonical JSON, "
        "base64url without padding (null while the certificate awaits signing)."
    )
    key_id: str | None = Field(
        description="kid of the signing key, listed at /.well-known/mutabaqa-keys.json."
    )
    pdf_pending: bool = Field(
        default=False,
        description="True while the certificate's PDF is still being rendered and signed "
        "(its outbox row is pending): the PDF route answers 404 with Retry-After meanwhile.",
    )


#: The statuses the public directory lists, as public registries do (SPEC section 5).
DirectoryStatus = Literal["active", "suspended", "withdrawn", "expired"]
DIRECTORY_STATUSES: tuple[CertificateStatus, ...] = (
    CertificateStatus.ACTIVE,
    CertificateStatus.SUSPENDED,
    CertificateStatus.WITHDRAWN,
    CertificateStatus.EXPIRED,
)


class DirectoryEntry(BaseModel):
    """One certificate of the public directory (active, suspended, withdrawn or expired)."""

    number: str
    issue: int
    status: CertificateStatus
    status_since: datetime
    holder: DirectoryHolder
    product: PublicProduct
    scheme: PublicScheme
    issued_on: date
    valid_until: date
