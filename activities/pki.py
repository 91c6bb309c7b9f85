"""The PDF signing identity: a certificate, its ECDSA P-256 key and the CA chain, as PEM files.

A deployment either brings its own (a document-signing certificate issued by its CA) or, in
development, creates a CA and a signing certificate with ``mutabaqa ca init``. The folder
holds:

- ``signing-cert.pem``: the document-signing certificate (ECDSA P-256);
- ``signing-key.pem``: its private key (PKCS#8, unencrypted, mode 0600);
- ``ca-cert.pem``: the CA chain up to the root, issuer first (readers trust the root);
- ``ca-key.pem``: the development CA's private key (only written by :func:`create_dev_ca`;
  never needed to sign documents, so a production folder does not have it).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

SIGNING_CERT_FILE = "signing-cert.pem"
SIGNING_KEY_FILE = "signing-key.pem"
CA_CERT_FILE = "ca-cert.pem"
CA_KEY_FILE = "ca-key.pem"

#: Extended key usages of the document-signing certificate: RFC 9336 document signing, the
#: Microsoft and Adobe document-signing purposes, and e-mail protection, which NSS (used by
#: poppler's ``pdfsig`` and Firefox's viewer) requires of a signer certificate.
DOCUMENT_SIGNING_EKUS = (
    ObjectIdentifier("1.3.6.1.5.5.7.3.36"),  # id-kp-documentSigning (RFC 9336)
    ObjectIdentifier("1.3.6.1.4.1.311.10.3.12"),  # Microsoft document signing
    ObjectIdentifier("1.2.840.113583.1.1.5"),  # Adobe Authentic Documents Trust
    ExtendedKeyUsageOID.EMAIL_PROTECTION,
)

DEV_CA_DAYS = 10 * 366
DEV_SIGNING_DAYS = 5 * 366


class SigningIdentityError(Exception):
    """The signing identity's files are missing, unreadable or do not belong together."""


@dataclass(frozen=True)
class PdfSigningIdentity:
    """Who signs certificate PDFs: certificate, private key and the chain up to the root."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...]

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes, chain_pem: bytes) -> PdfSigningIdentity:
        """Build an identity from PEM bytes; refuses a key that is not ECDSA P-256 or that
        does not match the certificate."""
        try:
            certificate = x509.load_pem_x509_certificate(cert_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
            chain = tuple(x509.load_pem_x509_certificates(chain_pem))
        except ValueError as exc:
            raise SigningIdentityError(f"cannot read the signing identity: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise SigningIdentityError("the PDF signing key must be an ECDSA P-256 key")
        if key.public_key() != certificate.public_key():
            raise SigningIdentityError("the signing key does not match the signing certificate")
        return cls(certificate=certificate, private_key=key, chain=chain)

    @property
    def trust_roots(self) -> list[x509.Certificate]:
        """The self-signed certificates of the chain (what readers are told to trust)."""
        return [c for c in self.chain if c.issuer == c.subject]


@dataclass(frozen=True)
class DevCaPaths:
    folder: Path
    ca_cert: Path
    ca_key: Path
    signing_cert: Path
    signing_key: Path


def _paths(folder: Path) -> DevCaPaths:
    return DevCaPaths(
        folder=folder,
        ca_cert=folder / CA_CERT_FILE,
        ca_key=folder / CA_KEY_FILE,
        signing_cert=folder / SIGNING_CERT_FILE,
        signing_key=folder / SIGNING_KEY_FILE,
    )


def _name(common_name: str, organization: str, country: str) -> x509.Name:
    """X.500 names cap CN and O at 64 characters: a long body name is shortened."""
    if len(organization) > 64:
        organization = organization[:63].rstrip() + "…"
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_dev_ca(
    folder: Path,
    *,
    organization: str = "Mutabaqa (development)",
    country: str = "MA",
    now: dt.datetime | None = None,
) -> DevCaPaths:
    """Create a development CA and a document-signing certificate it issued, as PEM files.

    Both keys are ECDSA P-256, written with mode 0600. Refuses (``FileExistsError``) when any
    of the four files already exists, so an existing identity is never replaced.
    """
    paths = _paths(folder)
    existing = [
        p
        for p in (paths.ca_cert, paths.ca_key, paths.signing_cert, paths.signing_key)
        if p.exists()
    ]
    if existing:
        raise FileExistsError(f"refusing to overwrite {', '.join(str(p) for p in existing)}")
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    start = now - dt.timedelta(minutes=5)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Mutabaqa — CA de développement", organization, country)
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=DEV_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    signing_key = ec.generate_private_key(ec.SECP256R1())
    signing_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Mutabaqa — signature des certificats", organization, country))
        .issuer_name(ca_name)
        .public_key(signing_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=DEV_SIGNING_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(list(DOCUMENT_SIGNING_EKUS)), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(signing_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    folder.mkdir(parents=True, exist_ok=True)
    _write_new(paths.ca_key, _key_pem(ca_key), 0o600)
    _write_new(paths.signing_key, _key_pem(signing_key), 0o600)
    _write_new(paths.ca_cert, ca_cert.public_bytes(pem), 0o644)
    _write_new(paths.signing_cert, signing_cert.public_bytes(pem), 0o644)
    return paths


def load_signing_identity(folder: Path) -> PdfSigningIdentity:
    """Read ``signing-cert.pem``, ``signing-key.pem`` and ``ca-cert.pem`` from ``folder``."""
    paths = _paths(folder)
    try:
        cert_pem = paths.signing_cert.read_bytes()
        key_pem = paths.signing_key.read_bytes()
        chain_pem = paths.ca_cert.read_bytes()
    except OSError as exc:
        raise SigningIdentityError(
            f"no PDF signing identity in {folder} ({exc.strerror}: {exc.filename}); "
            "create a development one with `mutabaqa ca init` or provide the PEM files"
        ) from exc
    return PdfSigningIdentity.from_pem(cert_pem, key_pem, chain_pem)


def load_trust_roots(folder: Path) -> list[x509.Certificate]:
    """The self-signed certificates of ``folder/ca-cert.pem`` (the roots readers trust)."""
    try:
        chain = x509.load_pem_x509_certificates((folder / CA_CERT_FILE).read_bytes())
    except (OSError, ValueError) as exc:
        raise SigningIdentityError(f"cannot read {folder / CA_CERT_FILE}: {exc}") from exc
    return [c for c in chain if c.issuer == c.subject]
