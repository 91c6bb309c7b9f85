"""The certificate's record after issuance: status changes and reissues (one transaction
each, idempotent on the action's key), audited on the certificate's own chain."""

from __future__ import annotations

import time

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity

from activities.errors import key_reused, present
from activities.lab import LabActivities, complete_effect
from domain.permissions import Actor
from models.accounts import Product
from models.certificate_lifecycle import (
    CertificateResult,
    CertificateTransition,
    ReissueInput,
    SurveillanceRequestInput,
)
from models.lab import Certificate, CertificateStatus
from models.reference import Scheme, TestItem
from models.request_payloads import (
    CertificateRef,
    PlanEntry,
    RequestWorkflowInput,
    SchemeSnapshot,
)
from models.requests import ActionRecord, CertificationRequest, RequestKind, RequestStatus
from models.types import stable_id
from mutabaqa.db import session_scope
from mutabaqa.timing import timing_of
from records.actions import find_action
from records.audit import append_event
from records.certificates import certificate_chain, transition_key
from records.outbox import add_effects, ids_of


def plan_entries(session: Session, scheme_id: int) -> tuple[PlanEntry, ...]:
    items = session.exec(
        select(TestItem).where(TestItem.scheme_id == scheme_id).order_by(col(TestItem.position))
    ).all()
    return tuple(PlanEntry(code=i.code, mandatory=i.mandatory) for i in items)


class CertificateActivities:
    def __init__(self, engine: Engine, lab: LabActivities) -> None:
        self._engine = engine
        self._lab = lab

    @activity.defn(name="apply_certificate_transition")
    def apply_transition(self, t: CertificateTransition) -> CertificateResult:
        with session_scope(self._engine) as session:
            row = present(
                session.exec(
                    select(Certificate).where(Certificate.id == t.certificate_id).with_for_update()
                ).first(),
                f"certificate {t.certificate_id}",
            )
            key = transition_key(t.key)
            done = find_action(session, row.request_id, key)
            if done is not None and t.body_hash and done.body_hash not in ("", t.body_hash):
                raise key_reused(t.key)
            if done is None:
                row.status = t.to_status
                row.status_since = t.at
                session.add(row)
                session.add(
                    ActionRecord(
                        request_id=row.request_id,
                        idempotency_key=key,
                        action=t.action,
                        body_hash=t.body_hash,
                        actor_id=t.actor.user_id if t.actor else "system",
                        at=t.at,
                    )
                )
                append_event(
                    session,
                    chain=certificate_chain(row.number),
                    actor=t.actor,
                    actor_role=t.acting_role,
                    action=t.action,
                    object_type="certificate",
                    object_id=row.id,
                    from_status=t.from_status.value,
                    to_status=t.to_status.value,
                    detail=t.detail | {"issue": row.issue},
                    at=t.at,
                )
            outbox_ids = (
                add_effects(session, t.effects, t.at) if done is None else ids_of(t.effects)
            )
            result = CertificateResult(
                number=row.number,
                issue=row.issue,
                status=row.status,
                status_since=row.status_since,
                outbox_ids=outbox_ids,
            )
        pause = self._lab.settings.fault_pause_after_certificate_seconds
        if pause and done is None:
            time.sleep(pause)
        return result

    @activity.defn(name="reissue_certificate")
    def reissue(self, data: ReissueInput) -> CertificateRef:
        """A new issue of the same number with a new signed payload and PDF; the previous
        issue becomes ``superseded``. A retry finds the new issue it already created."""
        with session_scope(self._engine) as session:
            old = present(
                session.exec(
                    select(Certificate)
                    .where(Certificate.id == data.certificate_id)
                    .with_for_update()
                ).first(),
                f"certificate {data.certificate_id}",
            )
            issue = old.issue + 1
            new = session.exec(
                select(Certificate).where(
                    Certificate.request_id == old.request_id, Certificate.issue == issue
                )
            ).first()
            if new is None:
                payload = dict(old.payload)
                payload.pop("kid", None)
                payload["issue"] = str(issue)
                if data.scope:
                    payload["scope"] = data.scope
                signed = self._lab.signing.keyring.sign(payload)
                new = Certificate(
                    id=stable_id(old.request_id, "certificate", str(issue)),
                    number=old.number,
                    issue=issue,
                    request_id=old.request_id,
                    organization_id=old.organization_id,
                    centre_code=old.centre_code,
                    status=CertificateStatus.ACTIVE,
                    status_since=data.at,
                    payload=dict(signed.payload),
                    signature=signed.signature,
                    kid=signed.kid,
                    test_report_digest=old.test_report_digest,
                    issued_on=old.issued_on,
                    valid_until=old.valid_until,
                    created_at=data.at,
                )
                old.status = CertificateStatus.SUPERSEDED
                old.status_since = data.at
                session.add(old)
                session.add(new)
                session.add(  # so a repeat with the same Idempotency-Key finds it was done
                    ActionRecord(
                        request_id=old.request_id,
                        idempotency_key=transition_key(data.key),
                        action="reissue",
                        body_hash=data.body_hash,
                        actor_id=data.actor.user_id,
                        at=data.at,
                    )
                )
                session.flush()
                append_event(
                    session,
                    chain=certificate_chain(old.number),
                    actor=data.actor,
                    actor_role="compliance_officer",
                    action="reissue",
                    object_type="certificate",
                    object_id=new.id,
                    from_status=CertificateStatus.ACTIVE.value,
                    to_status=CertificateStatus.ACTIVE.value,
                    detail={
                        "reason": data.reason,
                        "issue": issue,
                        "superseded_issue": old.issue,
                        "scope": data.scope,
                    },
                    at=data.at,
                )
            ref = CertificateRef(certificate_id=new.id, number=new.number, issue=new.issue)
            # the holder's notice and the new issue's PDF, in the same transaction
            effects = [complete_effect(effect, ref) for effect in data.effects]
            ref.outbox_ids = add_effects(session, effects, data.at)
        return ref

    @activity.defn(name="surveillance_request")
    def surveillance_request(self, data: SurveillanceRequestInput) -> RequestWorkflowInput:
        """What a surveillance request of this certificate starts with: the same product and
        scheme version, at the certificate's centre, waiting for a sample."""
        with Session(self._engine) as session:
            certificate = present(
                session.get(Certificate, data.certificate_id), f"certificate {data.certificate_id}"
            )
            original = present(
                session.get(CertificationRequest, certificate.request_id),
                f"request {certificate.request_id}",
            )
            product = present(
                session.get(Product, original.product_id), f"product {original.product_id}"
            )
            scheme = present(
                session.get(Scheme, original.scheme_id), f"scheme {original.scheme_id}"
            )
            plan = plan_entries(session, present(scheme.id, "the scheme's id"))
        return RequestWorkflowInput(
            request_id=data.request_id,
            organization_id=certificate.organization_id,
            product_id=product.id,
            product_name=product.name,
            scheme=SchemeSnapshot(
                id=scheme.id,
                code=scheme.code,
                version=scheme.version,
                sector=scheme.sector,
                title=scheme.title,
                required_documents=(),
                decision_rule=scheme.decision_rule.value,
                items=plan,
            ),
            kind=RequestKind.SURVEILLANCE,
            scope=f"Surveillance n° {data.sequence} — {certificate.number}",
            actor=SYSTEM_ACTOR,
            timing=timing_of(self._lab.settings),
            initial_status=RequestStatus.AWAITING_SAMPLE,
            centre_code=certificate.centre_code,
            certificate_number=certificate.number,
        )


SYSTEM_ACTOR = Actor(user_id="system", roles=())


def latest_issue_id(engine: Engine, number: str) -> str | None:
    with session_scope(engine) as session:
        row = session.exec(
            select(Certificate)
            .where(Certificate.number == number)
            .order_by(col(Certificate.issue).desc())
        ).first()
        return None if row is None else row.id
