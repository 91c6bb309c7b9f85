"""Issuing a certificate issue's W3C credential and publishing its status lists (issue 13),
as outbox deliveries: signed here, in the worker (which holds the signing key), stored, and
served by the API as stored bytes.

- ``ensure_credential``: once the issue's PDF is stored (its digest goes into the
  credential), allocate the issue's two status-list indices, build the UNTP credential,
  sign it (``eddsa-jcs-2022``) and store it, in one transaction; then publish its lists.
  A retry finds the stored credential and only publishes.
- ``refresh_lists``: the lists holding a certificate issue's entries, recomputed from the
  record (each member's status now) and signed as a new version when they changed. Every
  status change of the certificate workflow writes one such delivery with its transition,
  so the lists follow the record; recomputing (instead of flipping one bit) makes late or
  repeated deliveries harmless.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import rfc8785
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.exceptions import ApplicationError

from activities.errors import present
from domain.credential_status import (
    bitstring,
    status_bit,
    status_entry,
    status_list_credential,
)
from domain.credentials import (
    Accreditation,
    ConformityTopic,
    CredentialInput,
    PlanItem,
    build_credential,
    digest_multibase_of_sha256,
)
from domain.did_web import did_web_from_base_url
from models.credentials import IssuedCredential, StatusList, StatusListVersion, StatusPurpose
from models.lab import Certificate, TestReport
from models.reference import Scheme, TestItem
from models.requests import CertificationRequest
from mutabaqa.db import session_scope
from mutabaqa.did_document import issue_proof
from mutabaqa.settings import Settings
from mutabaqa.signing import KeyRing
from records import credentials as records

#: The PDF is not stored yet: the credential (which carries its digest) waits for it.
PDF_PENDING = "certificate-pdf-pending"
#: The public base URL gives no did:web (a configuration to fix, then replay the row).
NO_ISSUER_DID = "credential-issuer-undefined"
#: Transactions tried again after a concurrent worker took the same index, list or version.
CONFLICT_ATTEMPTS = 8

T = TypeVar("T")


def credential_pdf_url(public_base_url: str, number: str, issue: int) -> str:
    """The public, rate-limited link to one issue's PDF (``GET /verify/{number}/{issue}/pdf``)."""
    return f"{public_base_url.rstrip('/')}/verify/{number}/{issue}/pdf"


def json_text(document: dict[str, Any]) -> str:
    """A signed document as stored and served: its RFC 8785 form (what was signed)."""
    return rfc8785.dumps(document).decode("utf-8")


class CredentialIssuer:
    def __init__(self, engine: Engine, settings: Settings, keyring: KeyRing) -> None:
        self._engine = engine
        self._settings = settings
        self._keyring = keyring

    @property
    def did(self) -> str:
        """The issuer: the did:web of the public base URL. A base URL that gives none (http
        on another host than localhost, an IP address) cannot issue: not retried, the row
        goes to the dead letter with the reason, to replay once the setting is fixed."""
        try:
            return did_web_from_base_url(self._settings.public_base_url)
        except ValueError as exc:
            raise ApplicationError(
                f"MUTABAQA_PUBLIC_BASE_URL gives no did:web to issue credentials as: {exc}",
                type=NO_ISSUER_DID,
                non_retryable=True,
            ) from None

    def _retrying(self, transaction: Callable[[], T]) -> T:
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                return transaction()
            except IntegrityError:
                if attempt == CONFLICT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    # --- the credential ------------------------------------------------------------------

    def _unsigned(self, session: Session, certificate: Certificate) -> dict[str, Any]:
        s = self._settings
        if certificate.pdf_sha256 is None:
            raise ApplicationError(
                f"the PDF of certificate {certificate.number} issue {certificate.issue} is "
                "not stored yet",
                type=PDF_PENDING,
            )
        request = present(
            session.get(CertificationRequest, certificate.request_id),
            f"request {certificate.request_id}",
        )
        scheme = present(session.get(Scheme, request.scheme_id), f"scheme {request.scheme_id}")
        items = session.exec(
            select(TestItem).where(TestItem.scheme_id == scheme.id).order_by(col(TestItem.position))
        ).all()
        report = present(
            session.exec(
                select(TestReport).where(
                    TestReport.request_id == certificate.request_id,
                    TestReport.digest == certificate.test_report_digest,
                )
            ).first(),
            f"test report {certificate.test_report_digest}",
        )
        plan = [
            PlanItem(
                code=i.code,
                title=(i.titles or {}).get("en") or i.title,
                method=i.method,
                unit=i.unit,
                lower_limit=i.lower_limit,
                lower_inclusive=i.lower_inclusive,
                upper_limit=i.upper_limit,
                upper_inclusive=i.upper_inclusive,
                mandatory=i.mandatory,
                aggregation=i.aggregation.value,
                min_count=i.min_count,
            )
            for i in items
        ]
        verdicts = {str(r["item"]): r["verdict"] for r in report.body.get("results", [])}
        zone = ZoneInfo(s.timezone)
        return build_credential(
            CredentialInput(
                payload=certificate.payload,
                scheme_name=scheme.title_en or scheme.title,
                plan=plan,
                verdicts=verdicts,
                assessment_date=report.frozen_at.astimezone(zone).date(),
                issuer_did=self.did,
                public_base_url=s.public_base_url,
                accreditation=Accreditation(
                    name=s.body_accreditation,
                    authority_id=s.accreditation_authority_id,
                    authority_name=s.accreditation_authority_name,
                    authority_registered_id=s.accreditation_authority_registered_id,
                    evidence_url=s.accreditation_evidence_url,
                    assessment_level=s.accreditation_assessment_level,
                ),
                conformity_topic=ConformityTopic(
                    id=s.conformity_topic_id, name=s.conformity_topic_name
                ),
                pdf_digest_multibase=digest_multibase_of_sha256(certificate.pdf_sha256),
                pdf_url=credential_pdf_url(
                    s.public_base_url, certificate.number, certificate.issue
                ),
                timezone=s.timezone,
            )
        )

    def _issue(self, certificate_id: str) -> None:
        base = self._settings.public_base_url
        with session_scope(self._engine) as session:
            if session.get(IssuedCredential, certificate_id) is not None:
                return
            certificate = present(
                session.get(Certificate, certificate_id), f"certificate {certificate_id}"
            )
            document = self._unsigned(session, certificate)
            allocations = [
                records.allocate(session, certificate_id, purpose, self._settings.status_list_size)
                for purpose in StatusPurpose
            ]
            document["credentialStatus"] = [
                status_entry(base, row.purpose.value, row.list_id, row.status_index)
                for row in allocations
            ]
            now = datetime.now(UTC)
            signed = issue_proof(document, self._keyring, self.did, now)
            session.add(
                IssuedCredential(
                    certificate_id=certificate_id,
                    number=certificate.number,
                    issue=certificate.issue,
                    body=json_text(signed),
                    issued_at=now,
                )
            )
            # Its lists as they stand with it, in the same transaction: a verifier who can
            # read the credential can read its lists (a list is created empty, so a new
            # list's first version is published here).
            session.flush()
            for purpose, list_id in {(r.purpose, r.list_id) for r in allocations}:
                self._publish_in(session, purpose, list_id)

    def ensure_credential(self, certificate_id: str) -> None:
        """Issue the credential once, then publish the lists it has entries in."""
        self._retrying(lambda: self._issue(certificate_id))
        self.refresh_lists(certificate_id)

    # --- the status lists ----------------------------------------------------------------

    def refresh_lists(self, certificate_id: str) -> None:
        """Publish a new version of each list holding the issue's entries, if it changed
        (a certificate issue without a credential yet has none: nothing to do)."""
        with Session(self._engine) as session:
            lists = [
                (a.purpose, a.list_id) for a in records.allocations_of(session, certificate_id)
            ]
        for purpose, list_id in lists:
            self._retrying(partial(self._publish, purpose, list_id))

    def _publish(self, purpose: StatusPurpose, list_id: int) -> None:
        with session_scope(self._engine) as session:
            self._publish_in(session, purpose, list_id)

    def _publish_in(self, session: Session, purpose: StatusPurpose, list_id: int) -> None:
        """A new version of the list in ``session``'s transaction, if its bits changed."""
        s = self._settings
        status_list = present(
            session.get(StatusList, (purpose, list_id)), f"status list {purpose}/{list_id}"
        )
        members = records.list_members(session, purpose, list_id)
        bits = bitstring(
            status_list.size, ((i, status_bit(purpose.value, st)) for i, st in members)
        )
        encoded = bits.encode()
        latest = records.latest_version(session, purpose, list_id)
        if latest is not None and latest.encoded_list == encoded:
            return
        now = datetime.now(UTC)
        if latest is not None and now <= latest.published_at:
            now = latest.published_at  # never before the version it follows
        document = status_list_credential(
            s.public_base_url,
            self.did,
            purpose.value,
            list_id,
            encoded,
            now,
            s.status_list_ttl_seconds * 1000,
        )
        signed = issue_proof(document, self._keyring, self.did, now)
        session.add(
            StatusListVersion(
                purpose=purpose,
                list_id=list_id,
                version=1 if latest is None else latest.version + 1,
                encoded_list=encoded,
                body=json_text(signed),
                published_at=now,
            )
        )


def parse_stored(body: str) -> dict[str, Any]:
    """A stored credential's JSON (for tests and the portal)."""
    value: dict[str, Any] = json.loads(body)
    return value
