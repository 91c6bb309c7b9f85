"""Many requests and certificates written straight into a migrated, seeded database, in the
shape a few years of a certification body's work leaves (the read benchmark and the
query-count test use it; no workflow runs).

The shape, per 100 requests (``Shape``): 20 certified with a certificate, the rest spread
over the earlier and closed statuses (drafts, reviews, the lab, refusals, withdrawals).
Every request has its manufacturer's product; from submission on, the scheme's required
documents; from sample receipt on, a sample; from testing on, results for the scheme's test
items (nine for FFP2) and evidence; from evaluation on, a frozen test report; and its audit
events, one per transition it went through. Certificates are 85 % active, the rest
suspended, withdrawn or expired. Organisations have four products each and 200 requests
between them on average. Audit rows carry placeholder hashes: the chain of a bulk-written
request does not verify (the read paths never check it).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from api.security import hash_password
from domain.certificate_rules import search_text
from domain.statuses import (
    CertificateStatus,
    FilePurpose,
    RequestKind,
    RequestStatus,
    ResultVerdict,
    SampleStatus,
)
from models.accounts import Organization, Product, User
from models.audit import AuditChainHead, AuditEvent, request_chain
from models.lab import Certificate, TestReport
from models.lab import TestResult as Result
from models.reference import Scheme, TechnicalCentre, TestItem
from models.requests import CertificationRequest, NumberCounter, Sample, StoredFile

#: The bulk accounts' password (a throwaway database).
PASSWORD = "bulk-password-1234"
CHUNK = 5_000

#: The path each status went through (its audit events), from creation.
PATHS: dict[RequestStatus, list[str]] = {
    RequestStatus.DRAFT: ["draft"],
    RequestStatus.SUBMITTED: ["draft", "submitted"],
    RequestStatus.APPLICATION_REVIEW: ["draft", "submitted", "application_review"],
    RequestStatus.INFO_REQUESTED: ["draft", "submitted", "application_review", "info_requested"],
    RequestStatus.DECLINED: ["draft", "submitted", "application_review", "declined"],
    RequestStatus.AWAITING_SAMPLE: [
        "draft", "submitted", "application_review", "awaiting_sample",
    ],
    RequestStatus.TESTING: ["draft", "submitted", "application_review", "awaiting_sample",
                            "testing"],
    RequestStatus.RESULTS_SUBMITTED: ["draft", "submitted", "application_review",
                                      "awaiting_sample", "testing", "results_submitted"],
    RequestStatus.EVALUATED: ["draft", "submitted", "application_review", "awaiting_sample",
                              "testing", "results_submitted", "evaluated"],
    RequestStatus.CERTIFIED: ["draft", "submitted", "application_review", "awaiting_sample",
                              "testing", "results_submitted", "evaluated", "certified"],
    RequestStatus.REFUSED: ["draft", "submitted", "application_review", "awaiting_sample",
                            "testing", "results_submitted", "evaluated", "refused"],
    RequestStatus.WITHDRAWN: ["draft", "submitted", "application_review", "withdrawn"],
}  # fmt: skip
#: Of the requests not certified, how many per 80 are in each status.
OPEN_MIX: dict[RequestStatus, int] = {
    RequestStatus.DRAFT: 6,
    RequestStatus.SUBMITTED: 3,
    RequestStatus.APPLICATION_REVIEW: 8,
    RequestStatus.INFO_REQUESTED: 4,
    RequestStatus.DECLINED: 4,
    RequestStatus.AWAITING_SAMPLE: 8,
    RequestStatus.TESTING: 12,
    RequestStatus.RESULTS_SUBMITTED: 5,
    RequestStatus.EVALUATED: 4,
    RequestStatus.REFUSED: 10,
    RequestStatus.WITHDRAWN: 16,
}
BRANDS = ["Atlas", "Sahara", "Rif", "Argan", "Medina", "Oasis", "Tazi", "Noor"]
PRODUCT_NAMES = [
    ("Demi-masque filtrant FFP2", "نصف قناع مرشح FFP2"),
    ("Masque chirurgical type IIR", "قناع جراحي من النوع IIR"),
    ("Demi-masque filtrant FFP2 NR", "نصف قناع مرشح FFP2 NR"),
    ("Masque de protection respiratoire", "قناع حماية تنفسية"),
]


@dataclass(frozen=True)
class Shape:
    requests: int = 100_000
    certificates: int = 20_000
    requests_per_organization: int = 200
    products_per_organization: int = 4
    technicians_per_centre: int = 2
    seed: int = 20261205


@dataclass(frozen=True)
class Seeded:
    """What the bench needs to address the rows: accounts (password ``PASSWORD``) and some
    ids and numbers to read."""

    manufacturer_email: str
    officer_email: str
    technician_email: str
    request_ids: list[str]
    submitted_request_ids: list[str]  # past draft: what an officer can read
    own_request_ids: list[str]  # the manufacturer's own
    certificate_numbers: list[str]
    product_words: list[str]


def _rows(model: type[SQLModel], items: list[SQLModel]) -> list[dict[str, Any]]:
    """Column values (an autoincrement key left to the database)."""
    columns = set(model.__table__.columns.keys())  # type: ignore[attr-defined]
    if "id" in columns and getattr(items[0], "id", 0) is None:
        columns.discard("id")
    return [{k: v for k, v in item.model_dump().items() if k in columns} for item in items]


ORDER: list[type[SQLModel]] = [
    Organization,
    User,
    Product,
    CertificationRequest,
    AuditEvent,
    AuditChainHead,
    StoredFile,
    Sample,
    Result,
    TestReport,
    Certificate,
]


class _Writer:
    """Buffers rows per table and inserts them in chunks (executemany)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pending: dict[type[SQLModel], list[SQLModel]] = {}
        self.counts: dict[str, int] = {}

    def add(self, item: SQLModel) -> None:
        rows = self.pending.setdefault(type(item), [])
        rows.append(item)
        if len(rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        """Every buffered row, parents before children (PostgreSQL checks foreign keys)."""
        for kind in ORDER:
            items = self.pending.pop(kind, [])
            if items:
                table = kind.__table__  # type: ignore[attr-defined]
                self.session.execute(sa.insert(table), _rows(kind, items))
                self.counts[table.name] = self.counts.get(table.name, 0) + len(items)


def _hex(rng: random.Random, n: int = 64) -> str:
    return f"{rng.getrandbits(n * 4):0{n}x}"


def _id(rng: random.Random) -> str:
    return uuid.UUID(int=rng.getrandbits(128), version=4).hex


def bulk_seed(engine: Engine, shape: Shape = Shape(), now: datetime | None = None) -> Seeded:
    """Write ``shape`` into ``engine``'s database (migrated and seeded with the reference
    data, otherwise empty). Returns what the reads need."""
    rng = random.Random(shape.seed)
    now = now or datetime.now(UTC)
    with Session(engine) as session:
        schemes = list(session.exec(select(Scheme)).all())
        centres = list(session.exec(select(TechnicalCentre)).all())
        items = {
            s.id: list(
                session.exec(
                    select(TestItem).where(TestItem.scheme_id == s.id).order_by(TestItem.position)  # type: ignore[arg-type]
                ).all()
            )
            for s in schemes
        }
    serving = {
        s.id: [c.code for c in centres if s.sector in c.sectors] or [centres[0].code]
        for s in schemes
    }
    password_hash = hash_password(PASSWORD)
    organizations = max(1, shape.requests // shape.requests_per_organization)
    with Session(engine) as session:
        w = _Writer(session)
        officer = User(
            email="officer@bulk.test",
            full_name="Officer Bulk",
            password_hash=password_hash,
            roles=["compliance_officer"],
        )
        w.add(officer)
        technicians: dict[str, list[str]] = {}
        for c in centres:
            for k in range(shape.technicians_per_centre):
                t = User(
                    email=f"tech{k}.{c.code.lower()}@bulk.test",
                    full_name=f"Technician {k} {c.code}",
                    centre_code=c.code,
                    password_hash=password_hash,
                    roles=["lab_technician"],
                )
                w.add(t)
                technicians.setdefault(c.code, []).append(t.id)
        org_ids: list[str] = []
        makers: list[str] = []
        products: list[list[tuple[str, str]]] = []
        for o in range(organizations):
            org = Organization(
                name=f"Fabricant {o:05d} SARL",
                name_ar=f"المصنع {o:05d}",
                registration_id=f"{900000000000000 + o}",
                address=f"{o} zone industrielle, Casablanca",
                country="MA",
            )
            w.add(org)
            org_ids.append(org.id)
            maker = User(
                email=f"maker{o}@bulk.test",
                full_name=f"Maker {o}",
                organization_id=org.id,
                password_hash=password_hash,
                roles=["manufacturer"],
            )
            w.add(maker)
            makers.append(maker.id)
            own: list[tuple[str, str]] = []
            for p in range(shape.products_per_organization):
                name, name_ar = PRODUCT_NAMES[(o + p) % len(PRODUCT_NAMES)]
                product = Product(
                    organization_id=org.id,
                    name=name,
                    name_ar=name_ar,
                    brand=BRANDS[(o * 7 + p) % len(BRANDS)],
                    model=f"M{o:05d}-{p}",
                )
                w.add(product)
                own.append((product.id, product.model))
            products.append(own)

        statuses = [RequestStatus.CERTIFIED] * shape.certificates
        others = shape.requests - shape.certificates
        weights = list(OPEN_MIX.values())
        statuses += rng.choices(list(OPEN_MIX), weights=weights, k=others)
        rng.shuffle(statuses)
        span = timedelta(days=3 * 365)
        counters: dict[str, int] = {}
        request_ids: list[str] = []
        submitted: list[str] = []
        own_request_ids: list[str] = []
        numbers: list[str] = []
        chains: list[tuple[str, int, str]] = []
        for n, status in enumerate(statuses):
            o = n % organizations
            scheme = schemes[n % len(schemes)]
            assert scheme.id is not None
            centre = rng.choice(serving[scheme.id])
            # older requests first: created_at grows with n (plus jitter)
            created = now - span + span * (n / len(statuses)) + timedelta(minutes=rng.random())
            year = created.year
            counters[f"REQ-{year}"] = counters.get(f"REQ-{year}", 0) + 1
            rid = _id(rng)
            path = PATHS[status]
            step = timedelta(days=2, hours=rng.randrange(48))
            last = created + step * (len(path) - 1)
            product_id, _ = products[o][n % shape.products_per_organization]
            row = CertificationRequest(
                id=rid,
                number=f"REQ-{year}-{counters[f'REQ-{year}']:06d}",
                organization_id=org_ids[o],
                product_id=product_id,
                scheme_id=scheme.id,
                scheme_code=scheme.code,
                scheme_version=scheme.version,
                kind=RequestKind.CERTIFICATION,
                scope=f"{scheme.title}: série {n}",
                status=status,
                centre_code=None if status is RequestStatus.DRAFT else centre,
                workflow_id=f"request-{rid}",
                created_by=makers[o],
                created_at=created,
                updated_at=last,
                stage_seconds={s: step.total_seconds() for s in path[1:-1]},
            )
            w.add(row)
            request_ids.append(rid)
            if status is not RequestStatus.DRAFT:
                submitted.append(rid)
            if o == 0:
                own_request_ids.append(rid)
            seq = 0
            for k, to in enumerate(path):
                seq += 1
                at = created + step * k
                w.add(
                    AuditEvent(
                        chain=request_chain(rid),
                        seq=seq,
                        at=at,
                        actor_id=makers[o] if k < 2 else officer.id,
                        actor_name=None,
                        actor_role="manufacturer" if k < 2 else "compliance_officer",
                        action="create" if k == 0 else to,
                        object_type="request",
                        object_id=rid,
                        from_status=None if k == 0 else path[k - 1],
                        to_status=to,
                        detail={},
                        canonical="{}",
                        prev_hash=_hex(rng),
                        hash=_hex(rng),
                    )
                )
            chains.append((request_chain(rid), seq, _hex(rng)))
            if len(path) >= 2 and status is not RequestStatus.DRAFT:
                for kind in scheme.required_documents:
                    w.add(
                        StoredFile(
                            id=_id(rng),
                            request_id=rid,
                            purpose=FilePurpose.DOCUMENT,
                            kind=kind,
                            filename=f"{kind}.pdf",
                            content_type="application/pdf",
                            size=rng.randrange(80_000, 4_000_000),
                            sha256=_hex(rng),
                            bucket="mutabaqa-evidence",
                            object_key=f"requests/{rid}/documents/{kind}.pdf",
                            uploaded_by=makers[o],
                            uploaded_at=created + timedelta(hours=1),
                        )
                    )
            if "testing" in path:
                tech = technicians[centre]
                w.add(
                    Sample(
                        id=_id(rng),
                        request_id=rid,
                        round=1,
                        status=SampleStatus.RECEIVED,
                        reference=f"S-{n}",
                        condition="intact",
                        actor_id=tech[0],
                        at=created + step * path.index("testing"),
                    )
                )
                tested = items[scheme.id]
                if status is RequestStatus.TESTING:
                    tested = tested[: rng.randrange(len(tested) + 1)]
                for item in tested:
                    value = item.upper_limit or item.lower_limit or Decimal(1)
                    w.add(
                        Result(
                            id=_id(rng),
                            request_id=rid,
                            round=1,
                            item_code=item.code,
                            revision=1,
                            values=[str(value * Decimal("0.8"))] * 3,
                            value=value * Decimal("0.8"),
                            uncertainty=value * Decimal("0.02"),
                            unit=item.unit,
                            verdict=ResultVerdict.PASS,
                            specimen_verdicts=["pass"] * 3,
                            recorded_by=tech[0],
                            recorded_at=created + step * path.index("testing"),
                            verified_by=tech[-1] if len(path) > 6 else None,
                            verified_at=last if len(path) > 6 else None,
                        )
                    )
                if tested:
                    w.add(
                        StoredFile(
                            id=_id(rng),
                            request_id=rid,
                            purpose=FilePurpose.EVIDENCE,
                            item_code=tested[0].code,
                            round=1,
                            filename="bench-photo.jpg",
                            content_type="image/jpeg",
                            size=rng.randrange(500_000, 6_000_000),
                            sha256=_hex(rng),
                            bucket="mutabaqa-evidence",
                            object_key=f"requests/{rid}/evidence/{tested[0].code}.jpg",
                            uploaded_by=tech[0],
                            uploaded_at=created + step * path.index("testing"),
                        )
                    )
            if "evaluated" in path:
                digest = "sha256:" + _hex(rng)
                w.add(
                    TestReport(
                        id=_id(rng),
                        request_id=rid,
                        version=1,
                        round=1,
                        body={
                            "items": [
                                {"code": i.code, "verdict": "pass", "unit": i.unit}
                                for i in items[scheme.id]
                            ]
                        },
                        digest=digest,
                        frozen_by=technicians[centre][-1],
                        frozen_at=created + step * path.index("evaluated"),
                    )
                )
            if status is RequestStatus.CERTIFIED:
                series = f"CERT-{centre}-{year}"
                counters[series] = counters.get(series, 0) + 1
                number = f"MA-{centre}-{year}-{counters[series]:06d}"
                issued = last.date()
                valid_until = issued + timedelta(days=3 * 365)
                roll = rng.random()
                cert_status = (
                    CertificateStatus.ACTIVE
                    if roll < 0.85
                    else CertificateStatus.SUSPENDED
                    if roll < 0.90
                    else CertificateStatus.WITHDRAWN
                    if roll < 0.95
                    else CertificateStatus.EXPIRED
                )
                product_model = products[o][n % shape.products_per_organization][1]
                name = PRODUCT_NAMES[(o + n % shape.products_per_organization) % 4][0]
                payload = _payload(
                    number, o, name, product_model, scheme, issued, valid_until, digest
                )
                w.add(
                    Certificate(
                        id=_id(rng),
                        number=number,
                        issue=0,
                        request_id=rid,
                        organization_id=org_ids[o],
                        centre_code=centre,
                        status=cert_status,
                        status_since=last,
                        payload=payload,
                        search_text=search_text(payload),
                        signature=_hex(rng, 86),
                        kid="bulk",
                        test_report_digest=digest,
                        issued_on=issued,
                        valid_until=valid_until,
                        created_at=last,
                        pdf_key=f"certificates/{number}/0.pdf",
                        pdf_size=180_000,
                    )
                )
                numbers.append(number)
        w.flush()
        for chain, seq, head in chains:
            w.add(AuditChainHead(chain=chain, seq=seq, hash=head))
        w.flush()
        for series, count in counters.items():
            session.merge(NumberCounter(series=series, value=count))
        session.commit()
    words = sorted({m for own in products for _, m in own})
    return Seeded(
        manufacturer_email="maker0@bulk.test",
        officer_email=officer.email,
        technician_email=f"tech0.{centres[0].code.lower()}@bulk.test",
        request_ids=request_ids,
        submitted_request_ids=submitted,
        own_request_ids=own_request_ids,
        certificate_numbers=numbers,
        product_words=words,
    )


def _payload(
    number: str,
    o: int,
    product_name: str,
    model: str,
    scheme: Scheme,
    issued: date,
    valid_until: date,
    digest: str,
) -> dict[str, Any]:
    """A certificate payload of the real one's shape and size (schema v1)."""
    return {
        "v": "1",
        "number": number,
        "issue": "0",
        "kid": "bulk",
        "issuer": {"name": "Organisme de certification de démonstration", "country": "MA"},
        "holder": {
            "name": f"Fabricant {o:05d} SARL",
            "name_ar": f"المصنع {o:05d}",
            "registration_id": f"{900000000000000 + o}",
            "country": "MA",
        },
        "product": {"name": product_name, "brand": BRANDS[o % len(BRANDS)], "model": model},
        "scheme": {"code": scheme.code, "version": str(scheme.version)},
        "standards": [dict(s) for s in scheme.standards],
        "scope": scheme.title,
        "decision_rule": scheme.decision_rule.value,
        "test_report_digest": digest,
        "issued_on": issued.isoformat(),
        "valid_until": valid_until.isoformat(),
    }
