"""Reading a request from the record: the facts the rules need, and the views callers see."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session, col, select

from activities.lab import counting_results, latest_results, result_view
from models.accounts import Product, User
from models.lab import Certificate, TestReport, TestResult
from models.permissions import Actor, Role
from models.reference import Scheme, TestItem
from models.request_payloads import (
    FilePublic,
    ProductSummary,
    RequestPublic,
    ResultView,
    SamplePublic,
    SchemeSummary,
)
from models.requests import CertificationRequest, FilePurpose, Sample, StoredFile
from workflows.request_rules import RequestFacts, allowed_actions


def plan_of(session: Session, scheme_id: int) -> dict[str, bool]:
    items = session.exec(
        select(TestItem).where(TestItem.scheme_id == scheme_id).order_by(col(TestItem.position))
    ).all()
    return {item.code: item.mandatory for item in items}


def facts_of(session: Session, row: CertificationRequest) -> RequestFacts:
    """The rules' view of a request, from the record (the workflow keeps the same facts)."""
    scheme = session.get(Scheme, row.scheme_id)
    kinds = session.exec(
        select(StoredFile.kind).where(
            StoredFile.request_id == row.id,
            StoredFile.purpose == FilePurpose.DOCUMENT,
            col(StoredFile.superseded_at).is_(None),
        )
    ).all()
    results = session.exec(select(TestResult).where(TestResult.request_id == row.id)).all()
    this_round = [r for r in results if r.round == row.round]
    counting = counting_results(session, row.id) if results else {}
    return RequestFacts(
        status=row.status,
        organization_id=row.organization_id,
        centre_code=row.centre_code,
        proposed_centre_code=row.proposed_centre_code,
        required_documents=tuple(scheme.required_documents) if scheme else (),
        documents=frozenset(k for k in kinds if k),
        kind=row.kind,
        round=row.round,
        plan=plan_of(session, row.scheme_id),
        retest_items=frozenset(row.retest_items or ()),
        round_results=frozenset(r.item_code for r in this_round),
        verdicts={code: r.verdict.value for code, r in counting.items()},
        round_recorders=frozenset(r.recorded_by for r in this_round),
        recorders=frozenset(r.recorded_by for r in results),
        verifiers=frozenset(r.verified_by for r in results if r.verified_by),
        refused_by=row.refused_by,
        excluded_decider=row.excluded_decider,
        appeal_open=(
            row.status.value == "refused"
            and not row.appeal_filed
            and row.appeal_until is not None
            and datetime.now(UTC) < row.appeal_until
        ),
    )


def name_for(actor: Actor, user_id: str, names: dict[str, str], role: str | None = None) -> str:
    """Staff see names; manufacturers see the role of whoever acted."""
    if actor.has(Role.LAB_TECHNICIAN, Role.COMPLIANCE_OFFICER):
        return names.get(user_id, user_id)
    if user_id == actor.user_id:
        return names.get(user_id, "you")
    return role or "staff"


def names_of(session: Session, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = session.exec(select(User).where(col(User.id).in_(ids))).all()
    return {u.id: u.full_name for u in rows}


def results_view(session: Session, row: CertificationRequest, actor: Actor) -> list[ResultView]:
    """Every round's latest revision per item, with verdicts (names hidden as for the rest)."""
    latest = latest_results(session, row.id)
    names = names_of(
        session,
        {r.recorded_by for r in latest} | {r.verified_by for r in latest if r.verified_by},
    )
    views = []
    for result in latest:
        view = result_view(result)
        view.recorded_by = name_for(actor, result.recorded_by, names, "lab_technician")
        if result.verified_by:
            view.verified_by = name_for(actor, result.verified_by, names, "lab_technician")
        views.append(view)
    return views


def request_view(session: Session, row: CertificationRequest, actor: Actor) -> RequestPublic:
    product = session.get(Product, row.product_id)
    scheme = session.get(Scheme, row.scheme_id)
    assert product is not None and scheme is not None
    files = session.exec(
        select(StoredFile)
        .where(StoredFile.request_id == row.id)
        .order_by(col(StoredFile.uploaded_at))
    ).all()
    samples = session.exec(
        select(Sample).where(Sample.request_id == row.id).order_by(col(Sample.at))
    ).all()
    names = names_of(session, {f.uploaded_by for f in files} | {s.actor_id for s in samples})
    certificate = session.exec(
        select(Certificate)
        .where(Certificate.request_id == row.id)
        .order_by(col(Certificate.issue).desc())
    ).first()
    report = session.exec(
        select(TestReport).where(
            TestReport.request_id == row.id, col(TestReport.superseded_at).is_(None)
        )
    ).first()

    def file_view(f: StoredFile) -> FilePublic:
        role = "manufacturer" if f.purpose is FilePurpose.DOCUMENT else "lab_technician"
        return FilePublic.model_validate(
            f.model_dump() | {"uploaded_by": name_for(actor, f.uploaded_by, names, role)}
        )

    return RequestPublic(
        id=row.id,
        number=row.number,
        status=row.status,
        kind=row.kind,
        scope=row.scope,
        allowed_actions=allowed_actions(facts_of(session, row), actor),
        product=ProductSummary.model_validate(product.model_dump()),
        scheme=SchemeSummary(code=scheme.code, version=scheme.version, title=scheme.title),
        centre=row.centre_code,
        proposed_centre=row.proposed_centre_code,
        round=row.round,
        retest_items=list(row.retest_items or []),
        documents=[file_view(f) for f in files if f.purpose is FilePurpose.DOCUMENT],
        evidence=[file_view(f) for f in files if f.purpose is FilePurpose.EVIDENCE],
        samples=[
            SamplePublic(
                round=s.round,
                status=s.status.value,
                reference=s.reference,
                condition=s.condition,
                reason=s.reason,
                at=s.at,
                by=name_for(actor, s.actor_id, names, "lab_technician"),
            )
            for s in samples
        ],
        results=results_view(session, row, actor),
        test_report=(
            {"version": report.version, "round": report.round, "digest": report.digest}
            if report
            else None
        ),
        # Shown once the grant is recorded (the certificate row is written just before it).
        certificate_number=certificate.number
        if certificate and row.status.value == "certified"
        else None,
        appeal_until=row.appeal_until,
        info_due_at=row.info_due_at,
        stage_seconds={k: float(v) for k, v in (row.stage_seconds or {}).items()},
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
