"""Certificate rows inserted straight into the database, for the public routes' tests.

Each call makes its own organisation, creator, product, request, test result, test report
and certificate issue(s), tagged uniquely, so tests never depend on each other's data::

    cert = insert_certificate(engine, statuses=[CertificateStatus.SUPERSEDED,
                                                CertificateStatus.ACTIVE])
    client.get(f"/api/v1/verify/{cert.number}")   # issue 1, active
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import select

from models.accounts import Organization, Product, User
from models.lab import Certificate, CertificateStatus, ResultVerdict, TestReport, TestResult
from models.reference import Scheme
from models.requests import CertificationRequest, RequestKind, RequestStatus
from mutabaqa.db import session_scope

FFP2 = "FFP2-NM-EN-149"
#: A measured value and a remark that must never reach the public.
SECRET_VALUE = "4.321987"
SECRET_REMARK = "confidential bench remark"


@dataclass(frozen=True)
class InsertedCertificate:
    number: str
    tag: str  # in the holder name: a directory search for it finds only this test's rows
    holder: str
    holder_ar: str
    registration_id: str
    product_name: str
    brand: str
    model: str
    creator_email: str
    creator_name: str
    request_id: str
    issued_on: date
    valid_until: date


def insert_certificate(
    engine: Engine,
    *,
    statuses: Sequence[CertificateStatus] = (CertificateStatus.ACTIVE,),
    tag: str | None = None,
    issued_on: date | None = None,
    valid_until: date | None = None,
    signed: bool = True,
    gtin: str | None = None,
) -> InsertedCertificate:
    """One certificate number with one issue per status (issue 0, 1, …), in one
    transaction, with everything its foreign keys need; ``gtin`` (14 digits): the product's,
    confirmed (so published at ``/01/{gtin}``)."""
    uid = uuid.uuid4().hex[:10]
    tag = tag or uid
    issued_on = issued_on or date(2026, 3, 2)
    valid_until = valid_until or date(2029, 3, 1)
    number = f"MA-T{uuid.uuid4().hex[:6].upper()}-{issued_on.year}-000001"
    creator_email = f"quality-{uid}@holder.example"
    creator_name = f"Nadia Benali {uid}"
    holder = f"Atlas Protective Wear {tag}"
    holder_ar = "أطلس للملابس الواقية"
    brand, model = f"Atlas{uuid.uuid4().hex[:8]}", f"AT-{uuid.uuid4().hex[:8]}"
    product_name = "Respirator FFP2 NR"
    registration_id = str(uuid.uuid4().int)[:15]
    digest = "sha256:" + hashlib.sha256(uid.encode()).hexdigest()
    with session_scope(engine) as session:
        scheme = session.exec(select(Scheme).where(Scheme.code == FFP2)).first()
        assert scheme is not None and scheme.id is not None
        org = Organization(
            name=holder,
            name_ar=holder_ar,
            registration_id=registration_id,
            address="Zone industrielle, Tanger",
            country="MA",
        )
        session.add(org)
        session.flush()
        creator = User(
            email=creator_email,
            full_name=creator_name,
            password_hash="not-a-hash",
            roles=["manufacturer"],
            organization_id=org.id,
        )
        session.add(creator)
        session.flush()
        product = Product(
            organization_id=org.id,
            name=product_name,
            brand=brand,
            model=model,
            gtin=gtin,
            gtin_confirmed_at=None if gtin is None else datetime.now(UTC),
            gtin_confirmed_by=None if gtin is None else creator.id,
        )
        session.add(product)
        session.flush()
        request_id = uuid.uuid4().hex
        session.add(
            CertificationRequest(
                id=request_id,
                number=f"REQ-2026-{uid}",
                organization_id=org.id,
                product_id=product.id,
                scheme_id=scheme.id,
                scheme_code=scheme.code,
                scheme_version=scheme.version,
                kind=RequestKind.CERTIFICATION,
                scope="Filtering half mask against particles, class FFP2 NR",
                status=RequestStatus.CERTIFIED,
                centre_code="CTTH",
                workflow_id=f"request-{uid}",
                created_by=creator.id,
            )
        )
        session.flush()
        session.add(
            TestResult(
                id=uuid.uuid4().hex,
                request_id=request_id,
                round=1,
                item_code="CO2",
                revision=1,
                values=[SECRET_VALUE],
                value=Decimal(SECRET_VALUE),
                unit="%",
                verdict=ResultVerdict.PASS,
                remarks=SECRET_REMARK,
                recorded_by=creator.id,
            )
        )
        session.add(
            TestReport(
                id=uuid.uuid4().hex,
                request_id=request_id,
                version=1,
                round=1,
                body={"results": [{"item_code": "CO2", "value": SECRET_VALUE}]},
                digest=digest,
                frozen_by=creator.id,
            )
        )
        for issue, status in enumerate(statuses):
            payload: dict[str, Any] = {
                "v": "1",
                "number": number,
                "issue": str(issue),
                "kid": "test-kid",
                "issuer": {"name": "Organisme de certification de démonstration", "country": "MA"},
                "holder": {
                    "name": holder,
                    "name_ar": holder_ar,
                    "registration_id": registration_id,
                    "country": "MA",
                },
                "product": {"name": product_name, "brand": brand, "model": model},
                "scheme": {"code": FFP2, "version": str(scheme.version)},
                "standards": [{"code": "NM EN 149", "edition": "2001+A1:2009"}],
                "scope": "Filtering half mask against particles, class FFP2 NR",
                "decision_rule": "guarded",
                "test_report_digest": digest,
                "issued_on": issued_on.isoformat(),
                "valid_until": valid_until.isoformat(),
            }
            session.add(
                Certificate(
                    id=uuid.uuid4().hex,
                    number=number,
                    issue=issue,
                    request_id=request_id,
                    organization_id=org.id,
                    centre_code="CTTH",
                    status=status,
                    status_since=datetime.now(UTC) - timedelta(days=len(statuses) - issue),
                    payload=payload,
                    signature=f"sig-{uid}-{issue}" if signed else None,
                    kid="test-kid" if signed else None,
                    test_report_digest=digest,
                    issued_on=issued_on,
                    valid_until=valid_until,
                )
            )
    return InsertedCertificate(
        number=number,
        tag=tag,
        holder=holder,
        holder_ar=holder_ar,
        registration_id=registration_id,
        product_name=product_name,
        brand=brand,
        model=model,
        creator_email=creator_email,
        creator_name=creator_name,
        request_id=request_id,
        issued_on=issued_on,
        valid_until=valid_until,
    )
