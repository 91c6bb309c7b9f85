"""The manufacturer's pages: products, the new request form, certificates (and, through
``maker_uploads``, the dossier's uploads on the request page).

Each page calls the JSON route's own function with the same permission check:
``list_products``/``create_product`` (``products:manage``), ``list_schemes`` and
``list_centres`` (reference data), ``create_request_as`` (``requests:create``, the same
idempotency record as ``POST /api/v1/requests``), ``list_certificates``, ``readable``,
``certificate_timeline_of`` and ``pdf_redirect`` (``certificates:read``, the reach of
``/api/v1/certificates``). No DB session is open while Temporal is awaited.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.deps import actor_of, get_context, require
from api.pagination import MAX_LIMIT, PageParams
from api.portal import maker_uploads
from api.portal.admin_forms import in_write_session
from api.portal.render import render
from api.portal.sessions import (
    PortalSession,
    current_session,
    language_of,
    posted_form,
)
from api.problems import Problem
from api.routes.certificates import (
    certificate_timeline_of,
    get_certificate,
    list_certificates,
    pdf_redirect,
    readable,
)
from api.routes.products import create_product, list_products
from api.routes.reference import list_centres, list_schemes
from api.routes.requests import create_request_as
from domain.permissions import Actor, Permission
from models.accounts import ProductCreate
from models.request_api import RequestCreate
from mutabaqa.settings import Settings

router = APIRouter(include_in_schema=False)
router.include_router(maker_uploads.router)
#: The upload route's path (``api/app.py`` gives it the upload body limit).
UPLOAD_PATH = maker_uploads.UPLOAD_PATH

PRODUCT_FIELDS = ("name", "name_ar", "brand", "model", "description", "hs_code", "gtin")
REQUEST_FIELDS = ("product_id", "scheme_code", "scope")


def _settings(request: Request) -> Settings:
    return get_context(request).settings


def _home() -> RedirectResponse:
    return RedirectResponse("/", status_code=303)


def _refused(request: Request, settings: Settings) -> Response:
    return render(request, settings, "refused.html", status_code=403)


def _not_found(request: Request, portal: PortalSession, status_code: int = 404) -> Response:
    return render(
        request, _settings(request), "not_found.html", session=portal, status_code=status_code
    )


def _allowed(actor: Actor, permission: Permission) -> bool:
    try:
        require(permission)(actor)
    except Problem:
        return False
    return True


def _field_errors(error: ValidationError) -> dict[str, str]:
    """The first error of each field: ``missing`` (nothing given) or ``invalid``."""
    errors: dict[str, str] = {}
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else ""
        missing = item["type"] in ("missing", "string_too_short")
        errors.setdefault(name, "missing" if missing else "invalid")
    return errors


# --- products ----------------------------------------------------------------------------------


def _products_page(
    request: Request,
    portal: PortalSession,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    actor = actor_of(portal.user)
    with get_context(request).session() as session:
        products = list_products(actor, session, PageParams(limit=MAX_LIMIT)).items
    return render(
        request,
        _settings(request),
        "maker_products.html",
        here="/products",
        session=portal,
        status_code=status_code,
        products=products,
        values=values or {},
        errors=errors or {},
    )


@router.get("/products")
def products_page(request: Request) -> Response:
    portal = current_session(request, _settings(request))
    if portal is None:
        return _home()
    if not _allowed(actor_of(portal.user), Permission.PRODUCTS_MANAGE):
        return _not_found(request, portal, 403)
    return _products_page(request, portal)


@router.post("/products")
async def add_product(request: Request) -> Response:
    portal, form = await posted_form(request)
    if portal is None:
        return _refused(request, _settings(request))
    actor = actor_of(portal.user)
    if not _allowed(actor, Permission.PRODUCTS_MANAGE):
        return _not_found(request, portal, 403)
    values = {name: str(form.get(name, "")).strip() for name in PRODUCT_FIELDS}
    try:
        body = ProductCreate.model_validate({k: v for k, v in values.items() if v})
    except ValidationError as error:
        return await run_in_threadpool(
            _products_page,
            request,
            portal,
            values=values,
            errors=_field_errors(error),
            status_code=422,
        )

    try:  # in a write session, as POST /api/v1/products (it commits)
        await in_write_session(request, lambda session: create_product(actor, body, session))
    except Problem as problem:
        return await run_in_threadpool(
            _products_page,
            request,
            portal,
            values=values,
            errors={"": problem.kind},
            status_code=problem.status,
        )
    return RedirectResponse("/products", status_code=303)


# --- a new request -----------------------------------------------------------------------------


def _reference(session: Session, actor: Actor) -> dict[str, Any]:
    """The form's choices, and for each scheme the active centres serving its sector."""
    schemes = list_schemes(actor, session)
    centres = list_centres(actor, session)
    return {
        "products": list_products(actor, session, PageParams(limit=MAX_LIMIT)).items,
        "schemes": schemes,
        "serving": {s.code: [c for c in centres if s.sector in c.sectors] for s in schemes},
    }


def _new_request_page(
    request: Request,
    portal: PortalSession,
    *,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    actor = actor_of(portal.user)
    with get_context(request).session() as session:
        reference = _reference(session, actor)
    return render(
        request,
        _settings(request),
        "maker_new_request.html",
        here="/requests/new",
        session=portal,
        status_code=status_code,
        values=values,
        errors=errors or {},
        key=values.get("idempotency_key") or uuid.uuid4().hex,
        language=language_of(request)[0],
        **reference,
    )


@router.get("/requests/new")
def new_request_page(request: Request) -> Response:
    portal = current_session(request, _settings(request))
    if portal is None:
        return _home()
    if not _allowed(actor_of(portal.user), Permission.REQUESTS_CREATE):
        return _not_found(request, portal, 403)
    values = {
        "scheme_code": request.query_params.get("scheme", "")[:64],
        "product_id": request.query_params.get("product", "")[:64],
    }
    return _new_request_page(request, portal, values=values)


@router.post("/requests/new")
async def create_request_page(request: Request) -> Response:
    portal, form = await posted_form(request)
    if portal is None:
        return _refused(request, _settings(request))
    actor = actor_of(portal.user)
    if not _allowed(actor, Permission.REQUESTS_CREATE):
        return _not_found(request, portal, 403)
    values = {name: str(form.get(name, "")).strip() for name in REQUEST_FIELDS}
    values["idempotency_key"] = str(form.get("idempotency_key", "")).strip()[:200]
    try:
        data = RequestCreate.model_validate(
            {k: v for k, v in values.items() if v and k in REQUEST_FIELDS}
        )
    except ValidationError as error:
        return await run_in_threadpool(
            _new_request_page,
            request,
            portal,
            values=values,
            errors=_field_errors(error),
            status_code=422,
        )
    try:
        view, _new = await create_request_as(
            get_context(request), actor, data, values["idempotency_key"] or None
        )
    except Problem as problem:
        field = ""
        if problem.status == 404:
            field = "product_id" if "product" in (problem.detail or "") else "scheme_code"
        errors = {field: "invalid" if field else problem.kind}
        return await run_in_threadpool(
            _new_request_page,
            request,
            portal,
            values=values,
            errors=errors,
            status_code=problem.status,
        )
    return RedirectResponse(f"/requests/{view.id}", status_code=303)


# --- certificates ------------------------------------------------------------------------------


@router.get("/certificates")
def certificates_page(request: Request) -> Response:
    portal = current_session(request, _settings(request))
    if portal is None:
        return _home()
    actor = actor_of(portal.user)
    if not _allowed(actor, Permission.CERTIFICATES_READ):
        return _not_found(request, portal, 403)
    with get_context(request).session() as session:
        certificates = list_certificates(actor, session, PageParams(limit=MAX_LIMIT)).items
    return render(
        request,
        _settings(request),
        "maker_certificates.html",
        session=portal,
        certificates=certificates,
    )


@router.get("/certificates/{number}")
def certificate_page(number: str, request: Request) -> Response:
    portal = current_session(request, _settings(request))
    if portal is None:
        return _home()
    actor = actor_of(portal.user)
    try:
        require(Permission.CERTIFICATES_READ)(actor)
        with get_context(request).session() as session:
            row = readable(session, number, actor)
            timeline = certificate_timeline_of(session, row, actor)
    except Problem as problem:
        return _not_found(request, portal, problem.status)
    return render(
        request,
        _settings(request),
        "maker_certificate.html",
        session=portal,
        certificate=get_certificate(row, actor),
        pdf_ready=row.pdf_key is not None,
        timeline=timeline.items,
    )


@router.get("/certificates/{number}/pdf")
def certificate_pdf_page(number: str, request: Request) -> Response:
    """The PDF through the API's presigned redirect; while it is being rendered, back to
    the certificate's page (which says so)."""
    portal = current_session(request, _settings(request))
    if portal is None:
        return _home()
    actor = actor_of(portal.user)
    try:
        require(Permission.CERTIFICATES_READ)(actor)
        with get_context(request).session() as session:
            row = readable(session, number, actor)
    except Problem as problem:
        return _not_found(request, portal, problem.status)
    try:
        return pdf_redirect(get_context(request), row)
    except Problem:
        return RedirectResponse(f"/certificates/{number}", status_code=303)
