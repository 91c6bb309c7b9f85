"""Reading a request from the record: the facts the rules need, and the views callers see.

A request's view is read in a handful of queries, each table once (``RequestRecord.load``),
and everything else — the rules' facts, ``allowed_actions``, the results' verdicts, names —
is derived from what was loaded, never read again. Clients and the portal poll this.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from threading import Lock

from sqlmodel import Session, col, select

from api.masking import shown_name
from domain.permissions import Actor
from domain.request_rules import RequestFacts, allowed_actions
from models.accounts import Product, User
from models.lab import Certificate, TestReport, TestResult
from models.reference import Scheme, TestItem
from models.request_api import (
    FilePublic,
    ProductSummary,
    RequestPublic,
    ResultPublic,
    SamplePublic,
    SchemeSummary,
)
from models.requests import CertificationRequest, FilePurpose, Sample, StoredFile
from records.results import counting_of, latest_of, result_view


@dataclass(frozen=True)
class SchemeInfo:
    """What a request's view needs of its scheme version (stored versions never change)."""

    code: str
    version: int
    title: str
    required_documents: tuple[str, ...]
    #: The test plan: item code → mandatory, in plan order.
    plan: dict[str, bool]


_schemes: dict[tuple[str, int], SchemeInfo] = {}
_schemes_lock = Lock()


def scheme_info(session: Session, scheme_id: int) -> SchemeInfo:
    """A scheme version and its plan, read once per database and process: a stored scheme
    version is never overwritten (a change is a new version), so it can be kept."""
    key = (str(session.get_bind().engine.url), scheme_id)
    cached = _schemes.get(key)
    if cached is not None:
        return cached
    scheme = session.get(Scheme, scheme_id)
    if scheme is None:
        raise LookupError(f"scheme {scheme_id} is not stored")
    info = SchemeInfo(
        code=scheme.code,
        version=scheme.version,
        title=scheme.title,
        required_documents=tuple(scheme.required_documents),
        plan=plan_of(session, scheme_id),
    )
    with _schemes_lock:
        _schemes[key] = info
    return info


def plan_of(session: Session, scheme_id: int) -> dict[str, bool]:
    items = session.exec(
        select(TestItem).where(TestItem.scheme_id == scheme_id).order_by(col(TestItem.position))
    ).all()
    return {item.code: item.mandatory for item in items}


def reach_facts(row: CertificationRequest) -> RequestFacts:
    """Just enough of the facts to decide who may see the request (tenant scoping)."""
    return RequestFacts(
        status=row.status, organization_id=row.organization_id, centre_code=row.centre_code
    )


@dataclass
class RequestRecord:
    """One request as stored, each related table read once."""

    row: CertificationRequest
    scheme: SchemeInfo
    files: list[StoredFile]
    results: list[TestResult]

    @classmethod
    def load(cls, session: Session, row: CertificationRequest) -> RequestRecord:
        files = session.exec(
            select(StoredFile)
            .where(StoredFile.request_id == row.id)
            .order_by(col(StoredFile.uploaded_at))
        ).all()
        results = session.exec(select(TestResult).where(TestResult.request_id == row.id)).all()
        return cls(row, scheme_info(session, row.scheme_id), list(files), list(results))

    def facts(self) -> RequestFacts:
        """The rules' view of the request (the workflow keeps the same facts)."""
        row = self.row
        kinds = {
            f.kind
            for f in self.files
            if f.purpose is FilePurpose.DOCUMENT and f.superseded_at is None and f.kind
        }
        this_round = [r for r in self.results if r.round == row.round]
        counting = counting_of(latest_of(self.results))
        return RequestFacts(
            status=row.status,
            organization_id=row.organization_id,
            centre_code=row.centre_code,
            proposed_centre_code=row.proposed_centre_code,
            required_documents=self.scheme.required_documents,
            documents=frozenset(kinds),
            kind=row.kind,
            round=row.round,
            plan=self.scheme.plan,
            retest_items=frozenset(row.retest_items or ()),
            round_results=frozenset(r.item_code for r in this_round),
            verdicts={code: r.verdict.value for code, r in counting.items()},
            round_recorders=frozenset(r.recorded_by for r in this_round),
            recorders=frozenset(r.recorded_by for r in self.results),
            verifiers=frozenset(r.verified_by for r in self.results if r.verified_by),
            refused_by=row.refused_by,
            excluded_decider=row.excluded_decider,
            appeal_open=(
                row.status.value == "refused"
                and not row.appeal_filed
                and row.appeal_until is not None
                and datetime.now(UTC) < row.appeal_until
            ),
            info_due_at=row.info_due_at,
            appeal_until=row.appeal_until,
            appeal_filed=bool(row.appeal_filed),
        )


def facts_of(session: Session, row: CertificationRequest) -> RequestFacts:
    """The rules' view of a request, from the record."""
    return RequestRecord.load(session, row).facts()


def name_for(actor: Actor, user_id: str, names: dict[str, str], role: str | None = None) -> str:
    return shown_name(actor, user_id, role, names)


def names_of(session: Session, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = session.exec(select(User.id, User.full_name).where(col(User.id).in_(ids))).all()
    return dict(rows)


def _results_view(
    latest: list[TestResult], actor: Actor, names: dict[str, str]
) -> list[ResultPublic]:
    """Every round's latest revision per item, with verdicts (names hidden as for the rest)."""
    views = []
    for result in latest:
        view = ResultPublic.model_validate(result_view(result).model_dump())
        view.recorded_by = name_for(actor, result.recorded_by, names, "lab_technician")
        if result.verified_by:
            view.verified_by = name_for(actor, result.verified_by, names, "lab_technician")
        views.append(view)
    return views


def request_view(session: Session, row: CertificationRequest, actor: Actor) -> RequestPublic:
    record = RequestRecord.load(session, row)
    product = session.get(Product, row.product_id)
    if product is None:
        raise LookupError(f"product {row.product_id} of request {row.id} is not stored")
    samples = session.exec(
        select(Sample).where(Sample.request_id == row.id).order_by(col(Sample.at))
    ).all()
    latest = latest_of(record.results)
    names = names_of(
        session,
        {f.uploaded_by for f in record.files}
        | {s.actor_id for s in samples}
        | {r.recorded_by for r in latest}
        | {r.verified_by for r in latest if r.verified_by},
    )
    # Shown once the grant is recorded (the certificate row is written just before it).
    certificate_number = None
    if row.status.value == "certified":
        certificate_number = session.exec(
            select(Certificate.number)
            .where(Certificate.request_id == row.id)
            .order_by(col(Certificate.issue).desc())
        ).first()
    report = None
    if record.results:
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

    scheme = record.scheme
    return RequestPublic(
        id=row.id,
        number=row.number,
        status=row.status,
        kind=row.kind,
        scope=row.scope,
        allowed_actions=allowed_actions(record.facts(), actor),
        product=ProductSummary.model_validate(product.model_dump()),
        scheme=SchemeSummary(code=scheme.code, version=scheme.version, title=scheme.title),
        centre=row.centre_code,
        proposed_centre=row.proposed_centre_code,
        round=row.round,
        retest_items=list(row.retest_items or []),
        documents=[file_view(f) for f in record.files if f.purpose is FilePurpose.DOCUMENT],
        evidence=[file_view(f) for f in record.files if f.purpose is FilePurpose.EVIDENCE],
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
        results=_results_view(latest, actor, names),
        test_report=(
            {"version": report.version, "round": report.round, "digest": report.digest}
            if report
            else None
        ),
        certificate_number=certificate_number,
        appeal_until=row.appeal_until,
        info_due_at=row.info_due_at,
        stage_seconds={k: float(v) for k, v in (row.stage_seconds or {}).items()},
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
