"""The compliance officers' pages: the review queue, a request's review (application,
documents, the evaluated test report, decisions, appeals), a certificate's actions and
the dashboard.

Nothing here decides on its own: the queue is ``request_summaries`` (the JSON list's
query), a request is ``visible_request`` + ``request_view``, an action goes through
``check_action_role`` + ``perform_action``, a file through ``presigned_file_url``, a
certificate through ``readable`` + ``certificate_view`` + ``perform_certificate_action``
(the JSON routes' own functions). Every POST checks its CSRF token before anything else.
"""

from __future__ import annotations

import uuid
from datetime import MAXYEAR, MINYEAR, UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from api.deps import actor_of, get_context, require
from api.pagination import MAX_LIMIT, PageParams
from api.portal.refusals import Refused, refused
from api.portal.render import API_ONLY_FIELDS, render
from api.portal.sessions import PortalSession, current_session, posted_form
from api.problems import Problem
from api.request_actions import check_action_role, perform_action, visible_request
from api.request_views import request_view
from api.routes.certificates import (
    certificate_view,
    check_certificate_role,
    perform_certificate_action,
    readable,
)
from api.routes.evidence import presigned_file_url
from api.routes.requests import request_summaries, timeline_of
from domain.actions import ACTION_BODIES
from domain.dashboard import bars
from domain.permissions import ACTION_ROLES, Actor, Permission, Role
from domain.request_rules import TRANSITIONS
from models.accounts import Product
from models.certificate_lifecycle import CertificateActionBody
from models.reference import TestItem
from models.request_api import RequestSummary, ResultPublic
from models.requests import CertificationRequest, RequestStatus
from mutabaqa.settings import Settings
from records.dashboard import dashboard

router = APIRouter(include_in_schema=False)

#: The actions an officer takes on a request, and the statuses they start from: the queue.
OFFICER_ACTIONS = tuple(a for a, roles in ACTION_ROLES.items() if Role.COMPLIANCE_OFFICER in roles)
QUEUE_STATUSES = tuple(
    status
    for status in RequestStatus
    if any(status in TRANSITIONS[action][0] for action in OFFICER_ACTIONS)
)
#: At most this many requests per status in the queue (oldest first).
QUEUE_LIMIT = 500
DEFAULT_DAYS = 90
#: Stages with a target duration (SPEC section 4) and the setting that holds it.
STAGE_TARGETS = {
    RequestStatus.AWAITING_SAMPLE.value: "sample_receipt_target_seconds",
    RequestStatus.TESTING.value: "testing_target_seconds",
    RequestStatus.EVALUATED.value: "decision_target_seconds",
}


def _settings(request: Request) -> Settings:
    return get_context(request).settings


def _officer(request: Request) -> tuple[PortalSession | None, Response | None]:
    """The session of an officer, or the answer for anyone else: the login page's redirect
    without a session, 404 for another role (as a page out of reach)."""
    settings = _settings(request)
    portal = current_session(request, settings)
    if portal is None:
        return None, RedirectResponse("/", status_code=303)
    if not actor_of(portal.user).has(Role.COMPLIANCE_OFFICER):
        return None, render(request, settings, "not_found.html", session=portal, status_code=404)
    return portal, None


def _refused(request: Request) -> Response:
    return render(request, _settings(request), "refused.html", status_code=403)


async def _checked_form(request: Request) -> tuple[PortalSession | None, FormData, Response | None]:
    """The form of a POST and its officer's session once the CSRF token is right (checked
    before anything is read or changed)."""
    portal, form = await posted_form(request)
    if portal is None:
        return None, form, _refused(request)
    if not actor_of(portal.user).has(Role.COMPLIANCE_OFFICER):
        return None, form, _not_found(request, portal)
    return portal, form, None


def _fields(model_fields: dict[str, FieldInfo]) -> list[tuple[str, bool]]:
    """A form's fields: each name and whether the server requires it."""
    return [
        (name, field.is_required())
        for name, field in model_fields.items()
        if name not in API_ONLY_FIELDS
    ]


def _not_found(request: Request, portal: PortalSession, status: int = 404) -> Response:
    return render(request, _settings(request), "not_found.html", session=portal, status_code=status)


# --- the queue ---------------------------------------------------------------------------------


def queue_of(session: Session, actor: Actor) -> tuple[list[RequestSummary], bool]:
    """Requests waiting for an officer, oldest change first: the JSON list's query
    (``request_summaries``, filtered by status, longest unchanged first), page after page
    up to ``QUEUE_LIMIT`` per status; and whether some (the most recent) were left out."""
    waiting: list[RequestSummary] = []
    more = False
    for status in QUEUE_STATUSES:
        cursor: str | None = None
        taken = 0
        while taken < QUEUE_LIMIT:
            params = PageParams(min(MAX_LIMIT, QUEUE_LIMIT - taken), cursor)
            page = request_summaries(session, actor, params, status, longest_unchanged_first=True)
            waiting.extend(page.items)
            taken += len(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        more = more or cursor is not None
    return sorted(waiting, key=lambda item: (item.updated_at, item.id)), more


@router.get("/officer/queue")
def queue_page(request: Request) -> Response:
    portal, denied = _officer(request)
    if portal is None:
        return denied  # type: ignore[return-value]
    with get_context(request).session() as session:
        items, more = queue_of(session, actor_of(portal.user))
    now = datetime.now(UTC)
    rows = [(item, (now - item.updated_at).total_seconds()) for item in items]
    return render(
        request,
        _settings(request),
        "officer_queue.html",
        session=portal,
        rows=rows,
        more=more,
        cap=QUEUE_LIMIT,
    )


# --- a request's review ------------------------------------------------------------------------


def _review(session: Session, request_id: str, actor: Actor) -> dict[str, Any]:
    row = visible_request(session, request_id, actor)
    view = request_view(session, row, actor)
    items = session.exec(
        select(TestItem).where(TestItem.scheme_id == row.scheme_id).order_by(col(TestItem.position))
    ).all()
    product = session.get(Product, row.product_id)
    return {
        "request_": view,
        "timeline": timeline_of(session, row, actor).items,
        "plan": list(items),
        # a GTIN the officer confirms at accept before it is ever published (GS1)
        "gtin": product.gtin if product else None,
        "gtin_confirmed": bool(product and product.gtin_confirmed_at),
    }


def _request_page(
    request: Request,
    portal: PortalSession,
    request_id: str,
    *,
    failed: tuple[str, str | None, Refused] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    actor = actor_of(portal.user)
    try:
        with get_context(request).session() as session:
            review = _review(session, request_id, actor)
    except Problem as problem:
        return _not_found(request, portal, problem.status)
    view = review["request_"]
    results: dict[str, ResultPublic] = {}
    for result in view.results:  # the latest round's result of each item
        if result.item_code not in results or result.round > results[result.item_code].round:
            results[result.item_code] = result
    forms = [
        (action, _fields(ACTION_BODIES[action].model_fields), uuid.uuid4().hex)
        for action in view.allowed_actions
        if action in OFFICER_ACTIONS
    ]
    return render(
        request,
        _settings(request),
        "officer_request.html",
        here=f"/officer/requests/{request_id}",
        session=portal,
        status_code=status_code,
        request_=view,
        timeline=review["timeline"],
        plan=review["plan"],
        gtin=review["gtin"],
        gtin_confirmed=review["gtin_confirmed"],
        results=results,
        forms=forms,
        failed=failed,
        values=values or {},
    )


@router.get("/officer/requests/{request_id}")
def review_page(request_id: str, request: Request) -> Response:
    portal, denied = _officer(request)
    if portal is None:
        return denied  # type: ignore[return-value]
    return _request_page(request, portal, request_id)


def action_body(action: str, form: FormData) -> dict[str, Any]:
    """The action's body from the form: the fields of its model that were filled in (a
    list field takes its checked boxes, or one item per line)."""
    body: dict[str, Any] = {}
    for name, field in ACTION_BODIES[action].model_fields.items():
        if name == "confirm_gtin":  # its own checkbox, shown when the product has a GTIN
            if form.get(name) == "true":
                body[name] = True
            continue
        if name in API_ONLY_FIELDS:
            continue
        if field.annotation is not None and "list" in str(field.annotation):
            items = [str(v).strip() for v in form.getlist(name)]
            items = [i.strip() for v in items for i in v.replace(",", "\n").splitlines()]
            if [i for i in items if i]:
                body[name] = [i for i in items if i]
            continue
        value = str(form.get(name, "")).strip()
        if value:
            body[name] = value
    return body


def field_of(problem: Problem, fields: list[str]) -> str | None:
    """The form field a refusal is about (an invalid body names it first: ``reason: …``)."""
    if problem.kind != "invalid-body":
        return None
    named = (problem.detail or "").split(":", 1)[0].split(".")[0].strip()
    return named if named in fields else None


@router.post("/officer/requests/{request_id}/actions/{action}")
async def take_action(request_id: str, action: str, request: Request) -> Response:
    portal, form, denied = await _checked_form(request)
    if portal is None:
        return denied  # type: ignore[return-value]
    actor = actor_of(portal.user)
    ctx = get_context(request)
    key = str(form.get("idempotency_key", "")).strip()[:200] or None
    try:
        check_action_role(action, actor)
        await ctx.read(visible_request, request_id, actor)
        body = action_body(action, form)
        await perform_action(ctx, request_id, action, actor, body, key)
    except Problem as problem:
        fields = (
            [n for n, _ in _fields(ACTION_BODIES[action].model_fields)]
            if action in ACTION_BODIES
            else []
        )
        failed = (action, field_of(problem, fields), refused(problem))
        values = {name: form.getlist(name) for name in fields}
        return await run_in_threadpool(
            _request_page,
            request,
            portal,
            request_id,
            failed=failed,
            values=values,
            status_code=problem.status,
        )
    return RedirectResponse(f"/officer/requests/{request_id}", status_code=303)


@router.get("/officer/files/{file_id}")
def file_link(file_id: str, request: Request) -> Response:
    """A stored file through a short-lived presigned URL (the JSON route's function)."""
    portal, denied = _officer(request)
    if portal is None:
        return denied  # type: ignore[return-value]
    actor = actor_of(portal.user)
    ctx = get_context(request)
    try:
        require(Permission.EVIDENCE_READ)(actor)
        with ctx.session() as session:
            url = presigned_file_url(session, ctx, file_id, actor)
    except Problem as problem:
        return _not_found(request, portal, problem.status)
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


# --- certificates --------------------------------------------------------------------------------


def _certificate_page(
    request: Request,
    portal: PortalSession,
    number: str,
    *,
    failed: tuple[str, str | None, Refused] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    actor = actor_of(portal.user)
    try:
        require(Permission.CERTIFICATES_READ)(actor)
        with get_context(request).session() as session:
            row = readable(session, number, actor)
            request_row = session.get(CertificationRequest, row.request_id)
    except Problem as problem:
        return _not_found(request, portal, problem.status)
    view = certificate_view(row, actor)
    fields = _fields(CertificateActionBody.model_fields)
    forms = [
        (action, [f for f in fields if f[0] != "scope" or action == "reissue"], uuid.uuid4().hex)
        for action in view.allowed_actions
    ]
    return render(
        request,
        _settings(request),
        "officer_certificate.html",
        here=f"/officer/certificates/{number}",
        session=portal,
        status_code=status_code,
        certificate=view,
        request_number=request_row.number if request_row else None,
        forms=forms,
        failed=failed,
        values=values or {},
    )


@router.get("/officer/certificates/{number}")
def certificate_page(number: str, request: Request) -> Response:
    portal, denied = _officer(request)
    if portal is None:
        return denied  # type: ignore[return-value]
    return _certificate_page(request, portal, number)


@router.post("/officer/certificates/{number}/actions/{action}")
async def certificate_action(number: str, action: str, request: Request) -> Response:
    portal, form, denied = await _checked_form(request)
    if portal is None:
        return denied  # type: ignore[return-value]
    actor = actor_of(portal.user)
    ctx = get_context(request)
    fields = list(CertificateActionBody.model_fields)
    raw = {name: str(form.get(name, "")).strip() for name in fields}
    key = str(form.get("idempotency_key", "")).strip()[:180] or None
    try:
        check_certificate_role(action, actor)
        require(Permission.CERTIFICATES_READ)(actor)
        row = await ctx.read(readable, number, actor)
        try:
            body = CertificateActionBody.model_validate({k: v for k, v in raw.items() if v})
        except ValidationError as exc:
            where = str(exc.errors()[0]["loc"][0])
            raise Problem(422, "invalid-body", "Invalid request", f"{where}: required") from None
        await perform_certificate_action(ctx, row, action, actor, body, key)
    except Problem as problem:
        failed = (action, field_of(problem, fields), refused(problem))
        values = {name: [value] for name, value in raw.items()}
        return await run_in_threadpool(
            _certificate_page,
            request,
            portal,
            number,
            failed=failed,
            values=values,
            status_code=problem.status,
        )
    return RedirectResponse(f"/officer/certificates/{number}", status_code=303)


# --- the dashboard -------------------------------------------------------------------------------


def _day(value: str | None, default: date) -> tuple[date, bool]:
    """The day a field names, and whether it is readable and within the years a range
    can be computed in (a day before or after it must exist: 0001-01-01 or 9999-12-31
    would overflow)."""
    if not value:
        return default, True
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return default, False
    if not MINYEAR < day.year < MAXYEAR:
        return default, False
    return day, True


def stage_targets(settings: Settings) -> dict[str, float]:
    return {status: float(getattr(settings, name)) for status, name in STAGE_TARGETS.items()}


@router.get("/dashboard")
def dashboard_page(request: Request) -> Response:
    portal, denied = _officer(request)
    if portal is None:
        return denied  # type: ignore[return-value]
    settings = _settings(request)
    now = datetime.now(UTC)
    to_day, to_ok = _day(request.query_params.get("to"), now.date())
    from_day, from_ok = _day(request.query_params.get("from"), to_day - timedelta(DEFAULT_DAYS))
    errors = {}
    if not to_ok:
        errors["to"] = "invalid"
    if not from_ok:
        errors["from"] = "invalid"
    if from_ok and to_ok and from_day > to_day:
        errors["from"] = "after"
    if errors:
        to_day = now.date()
        from_day = to_day - timedelta(DEFAULT_DAYS)
    start = datetime.combine(from_day, time(), UTC)
    end = datetime.combine(to_day + timedelta(1), time(), UTC)
    with get_context(request).session() as session:
        board = dashboard(session, start, end, stage_targets(settings), now)
    return render(
        request,
        settings,
        "officer_dashboard.html",
        session=portal,
        status_code=422 if errors else 200,
        board=board,
        from_day=from_day.isoformat(),
        to_day=to_day.isoformat(),
        errors=errors,
        bars=bars,
    )
