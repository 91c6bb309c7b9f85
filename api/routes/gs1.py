"""GS1 Digital Link resolver for products with a confirmed GTIN: ``GET /01/{gtin}`` and
``GET /01/{gtin}/10/{lot}`` at the root (what the certificate's QR code encodes when the
product's GTIN is confirmed).

- A GTIN not in its 14-digit form (GTIN-8, -12, -13) answers 301 to the canonical path; a
  malformed GTIN or lot is 400 ``invalid-gtin`` / ``invalid-lot``; a GTIN no product has,
  or whose product's GTIN no officer has confirmed, or with no public certificate, is 404
  ``gtin-not-found``.
- ``Accept: application/linkset+json`` (preferred over ``text/html``) or ``?linkType=all``:
  the RFC 9264 linkset (``domain.gs1.linkset``) naming, for each public certificate of the
  product (active, suspended, withdrawn or expired, latest issue, as the directory lists
  them; newest first), its verifiable credential ``/credentials/{number}`` and its
  verification page in Arabic, French and English.
- Anything else (a browser, a phone's scanner): 307 to ``/verify/{number}?lang=<l>`` in
  the reader's language (``?lang=``, cookie, ``Accept-Language``, as the portal), for the
  most recent certificate that is active now (else the most recent public one).

Certificates name no lot today: a certificate covers every lot of its product, so a
lot-qualified URI answers the product's certificates, anchored at the lot's URI.

Every answer carries ``Link: <…?linkType=all>; rel="linkset"`` (except errors),
``Cache-Control: no-store``, and is rate-limited like ``/verify`` (``api.ratelimit``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from sqlmodel import Session, col, select

from api.deps import SessionDep, SettingsDep
from api.portal.sessions import language_of
from api.problems import Problem
from api.ratelimit import public_rate_limit
from api.routes.public import (
    NO_STORE,
    _business_today,
    _is_latest_issue,
    _media_quality,
    public_status,
)
from domain.gs1 import (
    LINKSET_MEDIA_TYPE,
    digital_link,
    is_gtin14,
    linkset,
    linkset_header,
    normalize_gtin,
    validate_lot,
)
from models.accounts import Product
from models.certificates import DIRECTORY_STATUSES
from models.lab import Certificate, CertificateStatus
from models.requests import CertificationRequest
from mutabaqa.settings import Settings

router = APIRouter(tags=["public"], dependencies=[Depends(public_rate_limit)])

_VARY = {"Vary": "Accept, Cookie, Accept-Language"}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The RFC 9264 linkset (`Accept: application/linkset+json` or "
        "`?linkType=all`).",
        "content": {LINKSET_MEDIA_TYPE: {"schema": {"type": "object"}}},
    },
    301: {"description": "The GTIN was not in its 14-digit form: the canonical URI."},
    307: {"description": "A browser: the verification page, in the reader's language."},
    400: {"description": "Not a valid GTIN or lot number."},
    404: {"description": "No product has this GTIN confirmed, or it has no public certificate."},
    429: {"description": "Too many requests from this address; see `Retry-After`."},
}
LinkType = Annotated[
    str | None,
    Query(alias="linkType", max_length=100, description="`all`: the linkset, whatever Accept."),
]


def _not_found(gtin: str) -> Problem:
    return Problem(
        404,
        "gtin-not-found",
        "GTIN not found",
        f"no certified product has the GTIN {gtin} confirmed",
        headers=NO_STORE,
    )


def _public_certificates(session: Session, gtin14: str) -> list[Certificate]:
    """The public certificates (latest issues) of the product whose confirmed GTIN is
    ``gtin14``, newest first."""
    product = session.exec(
        select(Product).where(Product.gtin == gtin14, col(Product.gtin_confirmed_at).is_not(None))
    ).first()
    if product is None:
        return []
    statement = (
        select(Certificate)
        .join(CertificationRequest, col(CertificationRequest.id) == col(Certificate.request_id))
        .where(
            CertificationRequest.product_id == product.id,
            col(Certificate.status).in_(DIRECTORY_STATUSES),
            _is_latest_issue(),
        )
        .order_by(col(Certificate.issued_on).desc(), col(Certificate.number).desc())
    )
    return list(session.exec(statement).all())


def _wants_linkset(request: Request, link_type: str | None) -> bool:
    if link_type == "all":
        return True
    accept = request.headers.get("accept")
    if not accept:
        return False
    return _media_quality(accept, LINKSET_MEDIA_TYPE) > _media_quality(accept, "text/html")


def _resolve(
    request: Request,
    session: Session,
    settings: Settings,
    gtin: str,
    lot: str | None,
    link_type: str | None,
) -> Response:
    try:
        gtin14 = normalize_gtin(gtin)
    except ValueError as exc:
        raise Problem(400, "invalid-gtin", "Invalid GTIN", str(exc), headers=NO_STORE) from None
    if lot is not None:
        try:
            validate_lot(lot)
        except ValueError as exc:
            raise Problem(400, "invalid-lot", "Invalid lot", str(exc), headers=NO_STORE) from None
    if not is_gtin14(gtin):
        canonical = digital_link(settings.public_base_url, gtin14, lot)
        if request.url.query:
            canonical += f"?{request.url.query}"
        return RedirectResponse(canonical, status_code=301, headers=NO_STORE)
    certificates = _public_certificates(session, gtin14)
    if not certificates:
        raise _not_found(gtin14)
    base = settings.public_base_url
    anchor = digital_link(base, gtin14, lot)
    headers = NO_STORE | _VARY | {"Link": linkset_header(anchor)}
    if _wants_linkset(request, link_type):
        body = linkset(anchor, base, [c.number for c in certificates])
        return JSONResponse(body, media_type=LINKSET_MEDIA_TYPE, headers=headers)
    today = _business_today(settings)
    active = [
        c for c in certificates if public_status(c, today, settings)[0] is CertificateStatus.ACTIVE
    ]
    chosen = (active or certificates)[0]
    language, _ = language_of(request)
    target = f"{base.rstrip('/')}/verify/{chosen.number}?lang={language}"
    return RedirectResponse(target, status_code=307, headers=headers)


@router.get(
    "/01/{gtin}",
    summary="GS1 Digital Link of a product with a confirmed GTIN",
    response_class=Response,
    responses=_RESPONSES,
)
def resolve_gtin(
    gtin: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    link_type: LinkType = None,
) -> Response:
    """The product's certificates: the linkset, or the verification page for a browser."""
    return _resolve(request, session, settings, gtin, None, link_type)


@router.get(
    "/01/{gtin}/10/{lot:path}",
    summary="GS1 Digital Link of a lot of a product with a confirmed GTIN",
    response_class=Response,
    responses=_RESPONSES,
)
def resolve_gtin_lot(
    gtin: str,
    lot: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    link_type: LinkType = None,
) -> Response:
    """As ``/01/{gtin}``: a certificate covers every lot of its product."""
    return _resolve(request, session, settings, gtin, lot, link_type)
