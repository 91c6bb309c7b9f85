"""Certificate PDFs: rendered, PAdES-signed and stored once per issue, under a fixed key,
then recorded and locked (retention). Rendering is seconds of CPU: one at a time per
worker, and only a few activity slots may wait for it."""

from __future__ import annotations

import hashlib
import io
import threading
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta

from minio import Minio
from minio.error import S3Error
from minio.retention import Retention
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.certificate_pdf import (
    CertificateDocument,
    CertificationBody,
    StandardTitle,
    certificate_verify_url,
    render_certificate_pdf,
    sign_pdf,
)
from activities.errors import present
from domain.gs1 import digital_link
from models.accounts import Organization, Product
from models.lab import Certificate
from models.reference import Scheme, TechnicalCentre
from models.requests import CertificationRequest
from mutabaqa.db import session_scope
from mutabaqa.settings import Settings
from mutabaqa.trust import SigningMaterial

PDF_CONTENT_TYPE = "application/pdf"

#: Activity slots a worker lets PDFs hold (one renders, the others wait their turn).
PDF_SLOTS = 3
RENDERER_BUSY = "renderer-busy"


def qr_url(public_base_url: str, number: str, product: Product) -> str:
    """What the certificate's QR code encodes: the GS1 Digital Link of the product's GTIN
    once an officer has confirmed it (``<base>/01/<gtin14>``), else the verification page
    (``<base>/verify/<number>``). Both lead a phone to the certificate's status."""
    if product.gtin is not None and product.gtin_confirmed_at is not None:
        return digital_link(public_base_url, product.gtin)
    return certificate_verify_url(public_base_url, number)


def _shielded() -> AbstractContextManager[None]:
    """Delay an activity's cancellation to the end of the block (outside an activity: none)."""
    return activity.shield_thread_cancel_exception() if activity.in_activity() else nullcontext()


def _beat(stage: str) -> None:
    """Heartbeat from long work when it runs as an activity (a crashed worker is then noticed
    after the heartbeat timeout, not the whole start-to-close timeout)."""
    if activity.in_activity():
        activity.heartbeat(stage)


class CertificatePdfs:
    def __init__(
        self, engine: Engine, settings: Settings, store: Minio, signing: SigningMaterial
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._store = store
        self.signing = signing
        #: Rendering and signing a PDF is seconds of pure-Python CPU: one at a time, so that
        #: the worker's other threads (and its workflow tasks) keep their share of the GIL...
        self._renderer = threading.Lock()
        #: ...and at most this many activity slots held by PDFs (rendering or waiting), so
        #: that a burst of grants never starves the database activities of slots.
        self._pdf_slots = threading.BoundedSemaphore(PDF_SLOTS)

    def _document(self, session: Session, certificate: Certificate) -> CertificateDocument:
        row = present(
            session.get(CertificationRequest, certificate.request_id),
            f"request {certificate.request_id}",
        )
        holder = present(
            session.get(Organization, certificate.organization_id),
            f"organisation {certificate.organization_id}",
        )
        product = present(session.get(Product, row.product_id), f"product {row.product_id}")
        scheme = present(session.get(Scheme, row.scheme_id), f"scheme {row.scheme_id}")
        centre = session.get(TechnicalCentre, certificate.centre_code)
        s = self._settings
        return CertificateDocument(
            payload=certificate.payload,
            signature=certificate.signature or "",
            body=CertificationBody(
                name=s.body_name,
                name_ar=s.body_name_ar,
                address=s.body_address,
                accreditation=s.body_accreditation,
            ),
            holder_address=holder.address,
            verify_url=qr_url(s.public_base_url, certificate.number, product),
            holder_name_ar=holder.name_ar,
            product_name_ar=product.name_ar,
            scheme_title=scheme.title,
            scheme_title_ar=scheme.title_ar,
            standards=[
                StandardTitle(code=std["code"], edition=std["edition"], title=std.get("title"))
                for std in scheme.standards
            ],
            testing_centre=centre.name if centre else None,
            testing_centre_ar=centre.name_ar if centre else None,
        )

    def _render_signed(self, document: CertificateDocument, number: str) -> bytes:
        """Render and sign one PDF, one at a time in this worker; with every PDF slot taken,
        a retryable ``renderer-busy`` failure (Temporal tries again after its back-off).
        Locks are taken shielded from cancellation, so a cancelled activity never keeps one."""
        slot = rendering = False
        try:
            with _shielded():
                slot = self._pdf_slots.acquire(blocking=False)
            if not slot:
                raise ApplicationError("every PDF slot of this worker is taken", type=RENDERER_BUSY)
            while not rendering:
                with _shielded():
                    rendering = self._renderer.acquire(timeout=5)
                if not rendering:
                    _beat("waiting for the renderer")
            _beat("rendering")
            rendered = render_certificate_pdf(document)
            _beat("signing")
            return sign_pdf(rendered, self.signing.pdf_identity, reason=f"Certificat {number}")
        finally:
            if rendering:
                self._renderer.release()
            if slot:
                self._pdf_slots.release()

    def ensure_pdf(self, certificate_id: str) -> None:
        """Render, sign (PAdES) and store the PDF once, under a fixed key; record it; lock it.

        A retry finds the recorded PDF, or an object already stored under the key (a worker
        that died between the upload and the record) and records that one: never two."""
        with Session(self._engine) as session:
            certificate = present(
                session.get(Certificate, certificate_id), f"certificate {certificate_id}"
            )
            if certificate.pdf_key is not None:
                return
            document = self._document(session, certificate)
        bucket = self._settings.s3_certificates_bucket
        key = f"certificates/{certificate.number}/issue-{certificate.issue}.pdf"
        try:
            stat = self._store.stat_object(bucket, key)
            response = self._store.get_object(bucket, key, version_id=stat.version_id)
            try:
                pdf = response.read()
            finally:
                response.close()
                response.release_conn()
            version_id = stat.version_id
        except S3Error as exc:
            if exc.code not in ("NoSuchKey", "NoSuchObject"):
                raise
            pdf = self._render_signed(document, certificate.number)
            _beat("storing")
            written = self._store.put_object(
                bucket, key, io.BytesIO(pdf), len(pdf), content_type=PDF_CONTENT_TYPE
            )
            version_id = written.version_id
        digest = hashlib.sha256(pdf).hexdigest()
        with session_scope(self._engine) as session:
            certificate = present(
                session.get(Certificate, certificate_id), f"certificate {certificate_id}"
            )
            if certificate.pdf_key is None:
                certificate.pdf_key = key
                certificate.pdf_version_id = version_id
                certificate.pdf_sha256 = digest
                certificate.pdf_size = len(pdf)
                session.add(certificate)
        until = datetime.now(UTC) + timedelta(days=self._settings.retention_days)
        self._store.set_object_retention(
            bucket,
            key,
            Retention(self._settings.resolved_object_lock_mode, until),
            version_id=version_id,
        )
