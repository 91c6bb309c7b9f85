"""Certificates for those who may read them: holders (their organisation), officers, and
technicians of the centre that tested. The public facts are in ``public.py``."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse
from pydantic import BaseModel
from sqlmodel import col, or_, select

from api.context import AppContext
from api.deps import SessionDep, get_context, not_found, require
from api.pagination import Page, PageParamsDep, decode_cursor, encode_cursor
from models.lab import Certificate, CertificateStatus
from models.permissions import Actor, Permission, Role
from models.types import UTCDateTime

router = APIRouter(prefix="/certificates", tags=["certificates"])

ReaderActor = Annotated[Actor, Depends(require(Permission.CERTIFICATES_READ))]
PDF_LINK_VALID_FOR = timedelta(minutes=5)


class CertificateView(BaseModel):
    number: str
    issue: int
    status: CertificateStatus
    status_since: datetime
    request_id: str
    centre: str
    issued_on: date
    valid_until: date
    payload: dict[str, Any]
    signature: str | None
    key_id: str | None
    pdf_sha256: str | None
    pdf_size: int | None


def _view(row: Certificate) -> CertificateView:
    return CertificateView(
        number=row.number, issue=row.issue, status=row.status, status_since=row.status_since,
        request_id=row.request_id, centre=row.centre_code, issued_on=row.issued_on,
        valid_until=row.valid_until, payload=row.payload, signature=row.signature,
        key_id=row.kid, pdf_sha256=row.pdf_sha256, pdf_size=row.pdf_size,
    )  # fmt: skip


def _reach(actor: Actor) -> sa.ColumnElement[bool]:
    clauses: list[sa.ColumnElement[bool]] = []
    if actor.has(Role.COMPLIANCE_OFFICER):
        clauses.append(sa.true())
    if actor.has(Role.MANUFACTURER) and actor.organization_id:
        clauses.append(col(Certificate.organization_id) == actor.organization_id)
    if actor.has(Role.LAB_TECHNICIAN) and actor.centre_code:
        clauses.append(col(Certificate.centre_code) == actor.centre_code)
    return or_(sa.false(), *clauses)


def get_readable(number: str, actor: ReaderActor, session: SessionDep) -> Certificate:
    """The latest issue of ``number`` within the caller's reach; 404 otherwise."""
    row = session.exec(
        select(Certificate)
        .where(Certificate.number == number, _reach(actor))
        .order_by(col(Certificate.issue).desc())
    ).first()
    if row is None:
        raise not_found("certificate", number)
    return row


Readable = Annotated[Certificate, Depends(get_readable)]


@router.get("", response_model=Page[CertificateView])
def list_certificates(
    actor: ReaderActor, session: SessionDep, page: PageParamsDep
) -> Page[CertificateView]:
    """Certificates within the caller's reach, newest first."""
    statement = select(Certificate).where(_reach(actor))
    if page.cursor is not None:
        after_at, after_id = decode_cursor(page.cursor)
        statement = statement.where(
            sa.tuple_(col(Certificate.created_at), col(Certificate.id))
            < sa.tuple_(
                sa.literal(after_at, type_=UTCDateTime()),
                sa.literal(after_id),
            )
        )
    rows = session.exec(
        statement.order_by(col(Certificate.created_at).desc(), col(Certificate.id).desc())
        .limit(page.limit + 1)
    ).all()  # fmt: skip
    next_cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return Page(items=[_view(r) for r in rows], next_cursor=next_cursor)


@router.get("/{number}", response_model=CertificateView)
def get_certificate(row: Readable) -> CertificateView:
    return _view(row)


@router.get(
    "/{number}/pdf",
    status_code=307,
    response_class=RedirectResponse,
    responses={307: {"description": "redirect to a presigned URL valid for five minutes"}},
)
def certificate_pdf(
    row: Readable, ctx: Annotated[AppContext, Depends(get_context)]
) -> RedirectResponse:
    """The signed PDF of the latest issue, through a short-lived presigned URL."""
    if row.pdf_key is None:
        raise not_found("certificate PDF", row.number)
    url = ctx.presigner.presigned_get_object(
        ctx.settings.s3_certificates_bucket,
        row.pdf_key,
        expires=PDF_LINK_VALID_FOR,
        version_id=row.pdf_version_id,
        response_headers={
            "response-content-type": "application/pdf",
            "response-content-disposition": f'inline; filename="{row.number}.pdf"',
        },
    )
    return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
