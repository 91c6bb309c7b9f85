"""PAdES signatures of certificate PDFs (ECDSA P-256, by the deployment's signing identity).

- :func:`sign_pdf` adds a PAdES baseline signature as an incremental update: a certification
  signature allowing no further change, so readers report any later modification;
- :func:`check_pades` / :func:`verify_pades` validate it offline against given trust roots
  and reject a file changed after signing (pyHanko's ``bottom_line``/``intact`` and the
  coverage of the whole file, not ``valid`` alone).

``sign_pdf``, ``check_pades`` and ``verify_pades`` run pyHanko's coroutines with
``asyncio.run``: call them from a thread without a running event loop (a sync activity),
or await the ``async_`` variants.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from pyhanko.keys.internal import (
    translate_pyca_cryptography_cert_to_asn1,
    translate_pyca_cryptography_key_to_asn1,
)
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from activities.pki import PdfSigningIdentity

SIGNATURE_FIELD = "MutabaqaSignature"


def _signer(identity: PdfSigningIdentity) -> signers.SimpleSigner:
    registry = SimpleCertificateStore()  # type: ignore[no-untyped-call]  # no annotations
    registry.register_multiple(translate_pyca_cryptography_cert_to_asn1(c) for c in identity.chain)
    return signers.SimpleSigner(
        signing_cert=translate_pyca_cryptography_cert_to_asn1(identity.certificate),
        signing_key=translate_pyca_cryptography_key_to_asn1(identity.private_key),
        cert_registry=registry,
    )


async def async_sign_pdf(
    pdf_bytes: bytes, signer: PdfSigningIdentity, *, reason: str | None = None
) -> bytes:
    """Add a PAdES baseline signature (ECDSA P-256, SHA-256) as an incremental update.

    It is a certification signature that allows no further change (DocMDP level 1), so
    readers report any later modification. The signing time is the machine's clock: the
    signed bytes differ on every call even for the same input.
    """
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf_bytes), strict=False)
    meta = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        reason=reason,
        certify=True,
        docmdp_permissions=fields.MDPPerm.NO_CHANGES,
    )
    pdf_signer = signers.PdfSigner(meta, signer=_signer(signer))
    output = io.BytesIO()
    await pdf_signer.async_sign_pdf(writer, output=output)
    return output.getvalue()


def sign_pdf(pdf_bytes: bytes, signer: PdfSigningIdentity, *, reason: str | None = None) -> bytes:
    """Synchronous :func:`async_sign_pdf` (runs its own event loop)."""
    return asyncio.run(async_sign_pdf(pdf_bytes, signer, reason=reason))


@dataclass(frozen=True)
class PadesCheck:
    """What a PDF reader would say about the document's signature."""

    signed: bool
    intact: bool = False
    trusted: bool = False
    covers_whole_file: bool = False
    #: pyHanko's overall judgement (also key usage and the document modification policy).
    bottom_line: bool = False
    signer: str | None = None
    signed_at: dt.datetime | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Signed, unmodified since signing and by a certificate chaining to a trust root."""
        return (
            self.signed
            and self.intact
            and self.trusted
            and self.covers_whole_file
            and self.bottom_line
        )


async def async_check_pades(
    pdf_bytes: bytes, trust_roots: Sequence[x509.Certificate]
) -> PadesCheck:
    """Validate the document's signature offline (no fetching) against ``trust_roots``."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf_bytes), strict=False)
        signatures = reader.embedded_signatures
    except Exception as exc:  # pyHanko raises its own errors for damaged files
        return PadesCheck(signed=False, problem=f"unreadable PDF: {exc}")
    if len(signatures) != 1:
        return PadesCheck(signed=False, problem=f"{len(signatures)} signatures, expected 1")
    context = ValidationContext(
        trust_roots=[translate_pyca_cryptography_cert_to_asn1(c) for c in trust_roots],
        allow_fetching=False,
    )
    try:
        status = await async_validate_pdf_signature(signatures[0], context)
    except Exception as exc:
        return PadesCheck(signed=True, problem=f"signature not verifiable: {exc}")
    whole = (
        status.coverage == SignatureCoverageLevel.ENTIRE_FILE
        and status.modification_level == ModificationLevel.NONE
    )
    problems = [
        text
        for failed, text in (
            (not (status.intact and status.valid), "signature does not match the document"),
            (not status.trusted, "signer not trusted"),
            (not whole, "document changed after signing"),
            (not status.bottom_line, "signature policy not met"),
        )
        if failed
    ]
    return PadesCheck(
        signed=True,
        intact=bool(status.intact and status.valid),
        trusted=bool(status.trusted),
        covers_whole_file=whole,
        bottom_line=bool(status.bottom_line),
        signer=status.signing_cert.subject.human_friendly,
        signed_at=status.signer_reported_dt,
        problem="; ".join(problems) or None,
    )


def check_pades(pdf_bytes: bytes, trust_roots: Sequence[x509.Certificate]) -> PadesCheck:
    """Synchronous :func:`async_check_pades` (runs its own event loop)."""
    return asyncio.run(async_check_pades(pdf_bytes, trust_roots))


async def async_verify_pades(pdf_bytes: bytes, trust_roots: Sequence[x509.Certificate]) -> bool:
    return (await async_check_pades(pdf_bytes, trust_roots)).ok


def verify_pades(pdf_bytes: bytes, trust_roots: Sequence[x509.Certificate]) -> bool:
    """True only when the one signature is valid, chains to one of ``trust_roots`` and covers
    the whole file (nothing was appended or changed after signing)."""
    return check_pades(pdf_bytes, trust_roots).ok
