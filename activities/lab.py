"""Laboratory results, the frozen test report and certificate issuance (the record side).

Verdicts and dates come from the pure rules in ``workflows/decision_rules.py`` and
``workflows/certificate_rules.py``; this module only reads and writes.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from minio import Minio
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.certificate_files import CertificatePdfs
from activities.errors import INVALID_RESULT, key_reused, present
from domain.certificate_rules import (
    certificate_number,
    to_canonical_value,
    valid_until,
)
from domain.decision_rules import InvalidValues, Limits, aggregate
from models.accounts import Organization, Product
from models.audit import request_chain
from models.lab import Certificate, CertificateStatus, ResultVerdict, TestReport, TestResult
from models.outbox import Effect, EffectKind
from models.reference import DecisionRule, Scheme, TestItem
from models.request_payloads import (
    CertificateRef,
    RecordResultInput,
    RequestRef,
    ResultView,
    Transition,
)
from models.requests import ActionRecord, CertificationRequest, FilePurpose, StoredFile
from models.types import stable_id
from mutabaqa.db import session_scope
from mutabaqa.settings import Settings
from mutabaqa.trust import SigningMaterial
from records.actions import find_action
from records.audit import append_event
from records.canonical import report_digest
from records.results import counting_results, latest_results, result_view


def _item(session: Session, scheme_id: int, code: str) -> TestItem:
    item = session.exec(
        select(TestItem).where(TestItem.scheme_id == scheme_id, TestItem.code == code)
    ).first()
    if item is None:
        raise ApplicationError(
            f"item {code} is not in the plan", type=INVALID_RESULT, non_retryable=True
        )
    return item


def freeze_report(
    session: Session, row: CertificationRequest, verifier: str, at: datetime
) -> TestReport:
    """Mark this round's results verified and freeze the test report (a new version; an
    earlier one is superseded, never overwritten)."""
    for result in latest_results(session, row.id):
        if result.round == row.round and result.verified_by is None:
            result.verified_by = verifier
            result.verified_at = at
            session.add(result)
    session.flush()
    scheme = present(session.get(Scheme, row.scheme_id), f"scheme {row.scheme_id}")
    items = {
        i.code: i
        for i in session.exec(select(TestItem).where(TestItem.scheme_id == scheme.id)).all()
    }
    counting = counting_results(session, row.id)
    evidence = session.exec(
        select(StoredFile)
        .where(StoredFile.request_id == row.id, StoredFile.purpose == FilePurpose.EVIDENCE)
        .order_by(col(StoredFile.uploaded_at), col(StoredFile.id))
    ).all()
    body: dict[str, Any] = {
        "request": row.number,
        "scheme": {"code": scheme.code, "version": str(scheme.version)},
        "decision_rule": scheme.decision_rule.value,
        "round": str(row.round),
        "results": [
            {
                "item": code,
                "title": items[code].title,
                "unit": items[code].unit,
                "lower_limit": items[code].lower_limit,
                "lower_inclusive": items[code].lower_inclusive,
                "upper_limit": items[code].upper_limit,
                "upper_inclusive": items[code].upper_inclusive,
                "mandatory": items[code].mandatory,
                "aggregation": items[code].aggregation.value,
                "values": list(result.values),
                "value": result.value,
                "uncertainty": result.uncertainty,
                "verdict": result.verdict.value,
                "round": str(result.round),
                "revision": str(result.revision),
                "recorded_by": result.recorded_by,
                "verified_by": result.verified_by,
                "equipment_id": result.equipment_id,
            }
            for code, result in sorted(counting.items())
            if code in items
        ],
        "evidence": [
            {
                "id": f.id,
                "item_code": f.item_code,
                "filename": f.filename,
                "size": str(f.size),
                "sha256": f.sha256,
            }
            for f in evidence
        ],
    }
    canonical = to_canonical_value(body)
    previous = session.exec(
        select(TestReport).where(
            TestReport.request_id == row.id, col(TestReport.superseded_at).is_(None)
        )
    ).all()
    for old in previous:
        old.superseded_at = at
        session.add(old)
    version = 1 + max(
        (
            r.version
            for r in session.exec(select(TestReport).where(TestReport.request_id == row.id)).all()
        ),
        default=0,
    )
    report = TestReport(
        id=stable_id(row.id, "report", str(version)),
        request_id=row.id,
        version=version,
        round=row.round,
        body=canonical,
        digest=report_digest(canonical),
        frozen_by=verifier,
        frozen_at=at,
    )
    session.add(report)
    session.flush()
    return report


def complete_effect(effect: Effect, certificate: CertificateRef) -> Effect:
    """A grant's effect, completed with the certificate issued in the same transaction."""
    payload = dict(effect.payload)
    if effect.kind in (EffectKind.CERTIFICATE_PDF, EffectKind.CERTIFICATE_CREDENTIAL):
        payload["certificate_id"] = certificate.certificate_id
    elif effect.kind is EffectKind.START_CERTIFICATE_WORKFLOW:
        payload |= {
            "certificate_id": certificate.certificate_id,
            "number": certificate.number,
            "issue": certificate.issue,
            "surveillance_months": certificate.surveillance_months,
        }
        if payload.get("expires_at") is None and certificate.expires_at is not None:
            payload["expires_at"] = certificate.expires_at.isoformat()
    elif effect.kind is EffectKind.EMAIL:
        payload["certificate_number"] = certificate.number
    return effect.model_copy(update={"payload": payload, "subject": certificate.number})


class LabActivities:
    def __init__(
        self, engine: Engine, settings: Settings, store: Minio, signing: SigningMaterial
    ) -> None:
        self._engine = engine
        self._settings = settings
        self.settings = settings
        self._store = store
        self.signing = signing
        self.pdfs = CertificatePdfs(engine, settings, store, signing)

    @activity.defn(name="record_result")
    def record_result(self, data: RecordResultInput) -> ResultView:
        """A new revision of one item's result in this round, with its verdict."""
        result_id = stable_id(data.request_id, data.key)
        with session_scope(self._engine) as session:
            recorded = find_action(session, data.request_id, data.key)
            if recorded is not None and recorded.body_hash not in ("", data.body_hash):
                raise key_reused(data.key)  # the key was used for another body or action
            done = session.get(TestResult, result_id)
            if done is not None:  # a retry, or a repeat: the revision is already recorded
                return result_view(done)
            row = present(
                session.get(CertificationRequest, data.request_id), f"request {data.request_id}"
            )
            scheme = present(session.get(Scheme, row.scheme_id), f"scheme {row.scheme_id}")
            item = _item(session, present(scheme.id, "the scheme's id"), data.item_code)
            values = [Decimal(v) for v in data.values]
            uncertainty = None if data.uncertainty is None else Decimal(data.uncertainty)
            try:
                outcome = aggregate(
                    values,
                    item.aggregation,
                    item.min_count,
                    Limits.of(item),
                    DecisionRule(scheme.decision_rule),
                    uncertainty,
                )
            except (InvalidValues, ValueError) as exc:
                raise ApplicationError(str(exc), type=INVALID_RESULT, non_retryable=True) from exc
            revision = 1 + max(
                (
                    r.revision
                    for r in session.exec(
                        select(TestResult).where(
                            TestResult.request_id == data.request_id,
                            TestResult.round == data.round,
                            TestResult.item_code == data.item_code,
                        )
                    ).all()
                ),
                default=0,
            )
            result = TestResult(
                id=result_id,
                request_id=data.request_id,
                round=data.round,
                item_code=data.item_code,
                revision=revision,
                values=data.values,
                value=outcome.value,
                uncertainty=uncertainty,
                unit=item.unit,
                verdict=ResultVerdict(outcome.verdict.value),
                specimen_verdicts=[v.value for v in outcome.specimen_verdicts],
                equipment_id=data.equipment_id,
                remarks=data.remarks,
                recorded_by=data.actor.user_id,
                recorded_at=data.at,
            )
            session.add(result)
            session.add(  # the key and its body, so a repeat answers this same revision
                ActionRecord(
                    request_id=data.request_id,
                    idempotency_key=data.key,
                    action="record_result",
                    body_hash=data.body_hash,
                    actor_id=data.actor.user_id,
                    at=data.at,
                )
            )
            session.flush()
            append_event(
                session,
                chain=request_chain(data.request_id),
                actor=data.actor,
                actor_role="lab_technician",
                action="record_result",
                object_type="result",
                object_id=result_id,
                from_status=row.status.value,
                to_status=row.status.value,
                detail={
                    "item_code": data.item_code,
                    "round": data.round,
                    "revision": revision,
                    "values": data.values,
                    "uncertainty": data.uncertainty,
                    "verdict": outcome.verdict.value,
                },
                at=data.at,
            )
            return result_view(result)

    @activity.defn(name="issue_certificate")
    def grant(self, t: Transition) -> RequestRef:
        """The grant, in ONE transaction: the certificate row and its number, the request's
        new status, the audit events and the outbox rows (PDF, the certificate's workflow,
        the e-mail). A publicly verifiable certificate never exists while the request is not
        ``certified``. A retry finds both written and returns them."""
        from activities.requests import write_transition

        with session_scope(self._engine) as session:
            certificate = self._issue(session, t.request_id, t.at)
            effects = [complete_effect(effect, certificate) for effect in t.effects]
            detail = t.detail | {"certificate_number": certificate.number}
            ref = write_transition(
                session, t.model_copy(update={"effects": effects, "detail": detail})
            )
            ref.certificate = certificate
        if self._settings.fault_pause_after_certificate_seconds:
            time.sleep(self._settings.fault_pause_after_certificate_seconds)
        return ref

    def _issue(self, session: Session, request_id: str, at: datetime) -> CertificateRef:
        """Create the certificate record exactly once in the caller's transaction: the
        number comes from a counter row per (centre, year), and (request, issue) is unique,
        so a retry returns the certificate it already created."""
        from activities.requests import next_number

        existing = session.exec(
            select(Certificate).where(Certificate.request_id == request_id, Certificate.issue == 0)
        ).first()
        row = present(session.get(CertificationRequest, request_id), f"request {request_id}")
        centre_code = present(row.centre_code, f"the centre of request {row.id}")
        scheme = present(session.get(Scheme, row.scheme_id), f"scheme {row.scheme_id}")
        if existing is not None:
            return CertificateRef(
                certificate_id=existing.id,
                number=existing.number,
                issue=existing.issue,
                expires_at=self._expires_at(existing.valid_until, existing.created_at),
                surveillance_months=scheme.surveillance_months,
            )
        product = present(session.get(Product, row.product_id), f"product {row.product_id}")
        holder = present(
            session.get(Organization, row.organization_id), f"organisation {row.organization_id}"
        )
        report = present(
            session.exec(
                select(TestReport).where(
                    TestReport.request_id == row.id, col(TestReport.superseded_at).is_(None)
                )
            ).first(),
            f"the frozen test report of request {row.id} (a certificate needs one)",
        )
        issued_on = at.astimezone(ZoneInfo(self._settings.timezone)).date()
        year = issued_on.year
        seq = next_number(session, f"CERT-{centre_code}-{year}")
        number = certificate_number(self._settings.certificate_prefix, centre_code, year, seq)
        until = valid_until(issued_on, scheme.validity_months)
        payload: dict[str, Any] = {
            "v": "1",
            "number": number,
            "issue": "0",
            "issuer": {
                "name": self._settings.body_name,
                "country": self._settings.body_country,
            },
            "holder": {
                "name": holder.name,
                "registration_id": holder.registration_id,
                "country": holder.country,
            }
            | ({"name_ar": holder.name_ar} if holder.name_ar else {}),
            "product": {"name": product.name, "brand": product.brand, "model": product.model},
            "scheme": {"code": scheme.code, "version": str(scheme.version)},
            "standards": [{"code": s["code"], "edition": s["edition"]} for s in scheme.standards],
            "scope": row.scope,
            "decision_rule": scheme.decision_rule.value,
            "test_report_digest": report.digest,
            "issued_on": issued_on.isoformat(),
            "valid_until": until.isoformat(),
        }
        signed = self.signing.keyring.sign(payload)
        certificate = Certificate(
            id=stable_id(row.id, "certificate", "0"),
            number=number,
            issue=0,
            signature=signed.signature,
            kid=signed.kid,
            request_id=row.id,
            organization_id=row.organization_id,
            centre_code=centre_code,
            status=CertificateStatus.ACTIVE,
            status_since=at,
            payload=dict(signed.payload),
            test_report_digest=report.digest,
            issued_on=issued_on,
            valid_until=until,
            created_at=at,
        )
        session.add(certificate)
        session.flush()
        append_event(
            session,
            chain=request_chain(row.id),
            actor=None,
            actor_role="system",
            action="issue_certificate",
            object_type="certificate",
            object_id=certificate.id,
            from_status=row.status.value,
            to_status=row.status.value,
            detail={
                "number": number,
                "issue": 0,
                "valid_until": until.isoformat(),
                "test_report_digest": report.digest,
            },
            at=at,
        )
        ref = CertificateRef(
            certificate_id=certificate.id,
            number=number,
            issue=0,
            expires_at=self._expires_at(until, at),
            surveillance_months=scheme.surveillance_months,
        )
        return ref

    def _expires_at(self, valid_until: date, issued_at: datetime) -> datetime:
        """The end of the ``valid_until`` day in the business time zone, as a UTC instant."""
        zone = ZoneInfo(self._settings.timezone)
        end = datetime.combine(valid_until + timedelta(days=1), dt_time(0), tzinfo=zone)
        return end.astimezone(UTC)

    def ensure_pdf(self, certificate_id: str) -> None:
        """The certificate's PDF, rendered, signed and stored once (``CertificatePdfs``)."""
        self.pdfs.ensure_pdf(certificate_id)
