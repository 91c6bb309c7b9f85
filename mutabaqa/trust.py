"""The deployment's signing material: the Ed25519 key ring (certificate payloads) and the
PDF signing identity (PAdES). Created on first start in development; required in
production, where a missing file refuses start-up with a message naming the setting."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from activities.pki import (
    PdfSigningIdentity,
    SigningIdentityError,
    create_dev_ca,
    load_signing_identity,
)
from mutabaqa.settings import Settings, SettingsError
from mutabaqa.signing import KeyRing

_create_lock = threading.Lock()


@dataclass(frozen=True)
class SigningMaterial:
    keyring: KeyRing
    pdf_identity: PdfSigningIdentity


def ensure_pdf_identity(settings: Settings) -> PdfSigningIdentity:
    folder = settings.resolved_pdf_signing_dir
    with _create_lock:
        if settings.is_development and not (folder / "signing-cert.pem").exists():
            create_dev_ca(folder, organization=f"{settings.body_name} (development)")
    try:
        return load_signing_identity(folder)
    except SigningIdentityError as exc:
        raise SettingsError(f"MUTABAQA_PDF_SIGNING_DIR: {exc}") from exc


def ensure_signing_material(settings: Settings) -> SigningMaterial:
    return SigningMaterial(KeyRing.ensure(settings), ensure_pdf_identity(settings))
