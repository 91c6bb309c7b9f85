"""Public, unauthenticated routes: certificate verification and the public directory.

- ``GET /verify/{number}`` at the root is the QR code's permanent landing page: HTML for
  browsers, in one language (``?lang=``, then the remembered cookie, then
  ``Accept-Language``: the portal's rendering, ``api.portal.public``), JSON when the
  ``Accept`` header prefers ``application/json`` over ``text/html`` (q-values compared; a
  tie gives HTML).
- ``GET /api/v1/verify/{number}``: the same facts, always JSON.
- ``GET /api/v1/directory?q=&status=&limit=&cursor=``: active, suspended, withdrawn and
  expired certificates (never superseded issues nor terminated certificates), newest
  first.

What the public sees is exactly the fields of ``models.certificates.PublicCertificate``
and ``DirectoryEntry`` (an allow-list): facts from the stored signed payload, the status
and since when. A number always shows its latest issue. A certificate still ``active``
or ``suspended`` in the database after its ``valid_until`` day (the certificate workflow
has not yet recorded the expiry) is shown as ``expired`` from the next day's start in the
business time zone: a public check never calls a lapsed certificate valid.

Every answer carries ``Cache-Control: no-store`` (status changes at any time), and every
route is rate-limited per client address (``api.ratelimit``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from api.deps import SessionDep, SettingsDep
from api.pagination import Page, PageParams, PageParamsDep, paginate
from api.portal.public import verify_html
from api.problems import Problem
from api.ratelimit import public_rate_limit
from domain.credential_status import IssueRecord, StatusChange, status_at
from models.audit import AuditEvent
from models.certificates import (
    DIRECTORY_STATUSES,
    DirectoryEntry,
    DirectoryHolder,
    DirectoryStatus,
    PublicCertificate,
    PublicHolder,
    PublicProduct,
    PublicScheme,
    PublicStandard,
    PublicStatusAt,
)
from models.lab import Certificate, CertificateStatus
from mutabaqa.settings import Settings
from records.certificates import certificate_chain

NO_STORE = {"Cache-Control": "no-store"}
_STATUS_VALUES = frozenset(s.value for s in CertificateStatus)
AtQuery = Annotated[
    datetime | None,
    Query(description="An instant (RFC 3339 with its offset): was it valid then?"),
]
_MAX_NUMBER_LENGTH = 40  # the column's width: anything longer is unknown
_MAX_CURSOR_LENGTH = 512

_rate_limited = [Depends(public_rate_limit)]
root_router = APIRouter(tags=["public"], dependencies=_rate_limited)
api_router = APIRouter(tags=["public"], dependencies=_rate_limited)

_NOT_FOUND_DOC: dict[int | str, dict[str, Any]] = {
    404: {"description": "No certificate has this number."},
    429: {"description": "Too many requests from this address; see `Retry-After`."},
}


# --- status as the public sees it ------------------------------------------------------------


def _business_today(settings: Settings) -> date:
    return datetime.now(ZoneInfo(settings.timezone)).date()


def _lapsed_since(valid_until: date, settings: Settings) -> datetime:
    """The instant a certificate valid through ``valid_until`` expires: the next day's start
    in the business time zone."""
    return datetime.combine(valid_until + timedelta(days=1), time(), ZoneInfo(settings.timezone))


def public_status(
    row: Certificate, today: date, settings: Settings
) -> tuple[CertificateStatus, datetime]:
    """The status and since when, with a lapsed validity shown as ``expired``."""
    lapsed = row.valid_until < today
    if lapsed and row.status in (CertificateStatus.ACTIVE, CertificateStatus.SUSPENDED):
        return CertificateStatus.EXPIRED, _lapsed_since(row.valid_until, settings)
    return row.status, row.status_since


def _effective_status_sql(today: date) -> sa.ColumnElement[str]:
    """``public_status`` in SQL, for the directory's status filter."""
    status = sa.type_coerce(col(Certificate.status), sa.String)
    lapsed = sa.and_(
        status.in_([CertificateStatus.ACTIVE.value, CertificateStatus.SUSPENDED.value]),
        col(Certificate.valid_until) < today,
    )
    return sa.case((lapsed, sa.literal(CertificateStatus.EXPIRED.value)), else_=status)


def _is_latest_issue() -> sa.ColumnElement[bool]:
    newer = aliased(Certificate)
    return ~sa.exists().where(
        col(newer.number) == col(Certificate.number), col(newer.issue) > col(Certificate.issue)
    )


# --- verification ------------------------------------------------------------------------------


def latest_issue(session: Session, number: str) -> Certificate | None:
    """The highest issue of ``number``, or ``None`` when no certificate has it."""
    if not number or len(number) > _MAX_NUMBER_LENGTH:
        return None
    statement = (
        select(Certificate)
        .where(Certificate.number == number)
        .order_by(col(Certificate.issue).desc())
        .limit(1)
    )
    return session.exec(statement).first()


def to_public(row: Certificate, settings: Settings) -> PublicCertificate:
    """The allow-listed public view of one certificate issue."""
    payload = row.payload
    status, since = public_status(row, _business_today(settings), settings)
    return PublicCertificate(
        number=row.number,
        issue=row.issue,
        status=status,
        status_since=since,
        holder=PublicHolder.model_validate(payload["holder"]),
        product=PublicProduct.model_validate(payload["product"]),
        scheme=PublicScheme.model_validate(payload["scheme"]),
        standards=[PublicStandard.model_validate(s) for s in payload.get("standards", [])],
        scope=str(payload.get("scope", "")),
        issued_on=row.issued_on,
        valid_until=row.valid_until,
        certificate=payload,
        signature=row.signature,
        key_id=row.kid,
        pdf_pending=row.pdf_key is None,
    )


def _not_found(number: str) -> Problem:
    return Problem(
        404,
        "certificate-not-found",
        "Certificate not found",
        f"no certificate has the number {number!r}; check the number printed on it",
        headers=NO_STORE,
    )


def status_at_instant(
    session: Session, settings: Settings, number: str, at: datetime
) -> PublicStatusAt:
    """Whether certificate ``number`` was valid at ``at`` (``domain.credential_status``)."""
    if at.tzinfo is None:
        raise Problem(
            400,
            "invalid-query",
            "Invalid instant",
            "give the instant with its UTC offset, e.g. 2026-06-01T09:00:00Z",
        )
    rows = session.exec(select(Certificate).where(Certificate.number == number)).all()
    if not rows or len(number) > _MAX_NUMBER_LENGTH:
        raise _not_found(number)
    events = session.exec(
        select(AuditEvent)
        .where(AuditEvent.chain == certificate_chain(number))
        .order_by(col(AuditEvent.seq))
    ).all()
    changes = [
        StatusChange(int(e.detail["issue"]), e.at, CertificateStatus(e.to_status))
        for e in events
        if e.to_status in _STATUS_VALUES and str(e.detail.get("issue", "")).isdigit()
    ]
    issues = [IssueRecord(r.issue, r.created_at, r.issued_on, r.valid_until) for r in rows]
    answer = status_at(issues, changes, at.astimezone(UTC), settings.timezone)
    return PublicStatusAt(
        number=number, at=at, issue=answer.issue, status=answer.status, valid=answer.valid
    )


def _find(session: Session, settings: Settings, number: str) -> PublicCertificate:
    row = latest_issue(session, number)
    if row is None:
        raise _not_found(number)
    return to_public(row, settings)


def _media_quality(accept: str, media: str) -> float:
    """The q-value ``accept`` gives ``media``, from its most specific matching range."""
    main, _, _sub = media.partition("/")
    best_specificity, best_q = -1, 0.0
    for element in accept.split(","):
        range_, *params = (part.strip() for part in element.split(";"))
        range_ = range_.lower()
        if range_ == media:
            specificity = 2
        elif range_ == f"{main}/*":
            specificity = 1
        elif range_ == "*/*":
            specificity = 0
        else:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(1.0, max(0.0, float(value.strip())))
                except ValueError:
                    q = 0.0
        if specificity > best_specificity:
            best_specificity, best_q = specificity, q
    return best_q


def prefers_json(accept: str | None) -> bool:
    """True when ``Accept`` ranks ``application/json`` strictly above ``text/html``."""
    if not accept:
        return False
    return _media_quality(accept, "application/json") > _media_quality(accept, "text/html")


@root_router.get(
    "/verify/{number}",
    response_model=PublicCertificate,
    summary="Verify a certificate (the QR code's landing page)",
    responses={
        200: {
            "description": "HTML for browsers; JSON when `application/json` is preferred.",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        **_NOT_FOUND_DOC,
        404: {
            "description": "No certificate has this number: a page saying so for browsers; "
            "a problem when JSON is preferred (or with `at`).",
            "content": {
                "text/html": {"schema": {"type": "string"}},
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}},
            },
        },
    },
)
def verify_page(
    number: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    at: AtQuery = None,
) -> Response:
    """The latest issue of certificate ``number``: its status and public facts, as an HTML
    page in the reader's language (``?lang=``, cookie, ``Accept-Language``), or as JSON
    when the client prefers it. With ``?at=<instant>``: whether it was valid then (JSON)."""
    if at is not None:
        answer = status_at_instant(session, settings, number, at)
        return JSONResponse(answer.model_dump(mode="json"), headers=NO_STORE)
    wants_json = prefers_json(request.headers.get("accept"))
    if wants_json:
        public = _find(session, settings, number)
        return JSONResponse(public.model_dump(mode="json"), headers=NO_STORE | {"Vary": "Accept"})
    row = latest_issue(session, number)
    return verify_html(request, settings, number, None if row is None else to_public(row, settings))


@api_router.get(
    "/verify/{number}",
    response_model=PublicCertificate | PublicStatusAt,
    responses=_NOT_FOUND_DOC,
)
def verify(
    number: str,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    at: AtQuery = None,
) -> PublicCertificate | PublicStatusAt:
    """The latest issue of certificate ``number``: status, public facts, the signed payload
    and its signature (check it against ``/.well-known/mutabaqa-keys.json``). With
    ``?at=<instant>``: whether it was valid then."""
    response.headers.update(NO_STORE)
    if at is not None:
        return status_at_instant(session, settings, number, at)
    return _find(session, settings, number)


# --- directory -----------------------------------------------------------------------------------


def _to_entry(row: Certificate, today: date, settings: Settings) -> DirectoryEntry:
    status, since = public_status(row, today, settings)
    payload = row.payload
    return DirectoryEntry(
        number=row.number,
        issue=row.issue,
        status=status,
        status_since=since,
        holder=DirectoryHolder.model_validate(payload["holder"]),
        product=PublicProduct.model_validate(payload["product"]),
        scheme=PublicScheme.model_validate(payload["scheme"]),
        issued_on=row.issued_on,
        valid_until=row.valid_until,
    )


def _matches(q: str) -> sa.ColumnElement[bool]:
    """Case-insensitive substring match on the number, the holder's names and the
    product's name, brand and model (as the certificate states them): one column,
    ``search_text``, case-folded as the search is."""
    return col(Certificate.search_text).contains(q.casefold(), autoescape=True)


@api_router.get("/directory", response_model=Page[DirectoryEntry], responses=_NOT_FOUND_DOC)
def directory(
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    page: PageParamsDep,
    q: Annotated[
        str | None,
        Query(
            max_length=100,
            description="Words of the number, holder name, or product name, brand or model "
            "(case-insensitive).",
        ),
    ] = None,
    status: Annotated[DirectoryStatus | None, Query(description="Only this status.")] = None,
) -> Page[DirectoryEntry]:
    """Certificates that are active, suspended, withdrawn or expired (the latest issue of
    each number), newest first (by issue date, then number)."""
    response.headers.update(NO_STORE)
    return directory_entries(session, settings, page, q, status)


def directory_entries(
    session: Session,
    settings: Settings,
    page: PageParams,
    q: str | None = None,
    status: DirectoryStatus | None = None,
) -> Page[DirectoryEntry]:
    """The directory's query (``GET /api/v1/directory`` and the portal's ``/directory``)."""
    today = _business_today(settings)
    statement = select(Certificate).where(
        col(Certificate.status).in_(DIRECTORY_STATUSES), _is_latest_issue()
    )
    if status is not None:
        statement = statement.where(_effective_status_sql(today) == status)
    if q and q.strip():
        statement = statement.where(_matches(q.strip()))
    return paginate(
        session,
        statement,
        page,
        lambda row: _to_entry(row, today, settings),
        order=(Certificate.issued_on, Certificate.number),
    )
