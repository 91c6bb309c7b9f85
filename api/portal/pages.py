"""The portal's routes: login and logout, the home page, a request and its actions.

Every route here is left out of the OpenAPI document (it is not the JSON API) and reuses
the JSON API's own functions: the throttled login (``authenticate``), token revocation
(``revoke_tokens``), the list's reach (``request_summaries``), the request's view and
timeline, and the one path to a workflow action (``check_action_role``,
``visible_request``, ``perform_action``).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from api.deps import actor_of, get_context, require
from api.nul_guard import refuse_nul_in_form
from api.pagination import PageParams
from api.passwords import HasherBusy
from api.portal.maker_view import document_slots, stage_seconds
from api.portal.refusals import Refused, refused
from api.portal.render import API_ONLY_FIELDS, render
from api.portal.sessions import (
    CSRF_FIELD,
    PortalSession,
    csrf_ok,
    csrf_token,
    current_session,
    end_session,
    login_binding,
    new_login_binding,
    posted_form,
    start_session,
)
from api.problems import Problem
from api.request_actions import check_action_role, perform_action, visible_request
from api.request_views import request_view, scheme_info
from api.routes.auth import authenticate, revoke_tokens
from api.routes.requests import request_summaries, timeline_of
from domain.actions import ACTION_BODIES
from domain.permissions import Actor, Permission
from domain.request_rules import UPLOAD_DOCUMENT
from mutabaqa.settings import Settings

router = APIRouter(include_in_schema=False)
#: How many requests the home page lists (newest first).
HOME_LIMIT = 50


def _settings(request: Request) -> Settings:
    return get_context(request).settings


def _actor(portal: PortalSession) -> Actor:
    return actor_of(portal.user)


def _home() -> RedirectResponse:
    return RedirectResponse("/", status_code=303)


def _csrf_refused(request: Request, settings: Settings) -> Response:
    return render(request, settings, "refused.html", status_code=403)


# --- login and logout --------------------------------------------------------------------------


def _login_page(
    request: Request, settings: Settings, *, error: str | None = None, status_code: int = 200
) -> Response:
    binding = login_binding(request, settings)
    cookie = Response()
    if binding is None:
        binding = new_login_binding(cookie, settings)
    response = render(
        request,
        settings,
        "login.html",
        here="/",
        status_code=status_code,
        error=error,
        login_csrf=csrf_token(settings, "login", binding),
    )
    for value in cookie.headers.getlist("set-cookie"):
        response.headers.append("set-cookie", value)
    return response


@router.get("/")
def home(request: Request) -> Response:
    settings = _settings(request)
    portal = current_session(request, settings)
    if portal is None:
        return _login_page(request, settings)
    actor = _actor(portal)
    requests = None
    try:
        require(Permission.REQUESTS_READ)(actor)
    except Problem:
        pass  # a role without requests (an admin): nothing to list yet
    else:
        with get_context(request).session() as session:
            page = request_summaries(session, actor, PageParams(limit=HOME_LIMIT))
        requests = page.items
    return render(request, settings, "home.html", session=portal, requests=requests)


@router.post("/login")
async def login(request: Request) -> Response:
    settings = _settings(request)
    form = await request.form()
    refuse_nul_in_form(form)  # PostgreSQL text cannot hold U+0000: 422
    binding = login_binding(request, settings)
    expected = csrf_token(settings, "login", binding) if binding else None
    if not csrf_ok(expected, form.get(CSRF_FIELD)):
        return _csrf_refused(request, settings)
    address = request.client.host if request.client else "unknown"
    try:
        user = await authenticate(
            get_context(request),
            settings,
            str(form.get("email", "")),
            str(form.get("password", "")),
            address,
        )
    except Problem as problem:
        page = _login_page(request, settings, error=problem.kind, status_code=problem.status)
        page.headers.update(problem.headers or {})
        return page
    except HasherBusy:
        return _login_page(request, settings, error="busy", status_code=503)
    response = _home()
    start_session(response, user, settings)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    settings = _settings(request)
    portal, _form = await posted_form(request)
    if portal is None:
        return _csrf_refused(request, settings)
    await get_context(request).write(revoke_tokens, portal.user.id)
    response = _home()
    end_session(response, settings)
    return response


# --- a request -----------------------------------------------------------------------------------


def show_request_page(
    request: Request,
    portal: PortalSession,
    request_id: str,
    *,
    error: Refused | None = None,
    status_code: int = 200,
    upload_error: tuple[str, str] | None = None,
    error_action: str | None = None,
) -> Response:
    settings = _settings(request)
    actor = _actor(portal)

    def load(session: Session) -> tuple[Any, Any, Any]:
        row = visible_request(session, request_id, actor)
        required = scheme_info(session, row.scheme_id).required_documents
        return request_view(session, row, actor), timeline_of(session, row, actor), required

    try:
        with get_context(request).session() as session:
            view, timeline, required = load(session)
    except Problem as problem:
        return render(
            request, settings, "not_found.html", session=portal, status_code=problem.status
        )
    forms = [
        (
            action,
            [
                (name, field.is_required())
                for name, field in ACTION_BODIES[action].model_fields.items()
                if name not in API_ONLY_FIELDS
            ],
            uuid.uuid4().hex,
        )
        for action in view.allowed_actions
        if action in ACTION_BODIES
    ]
    return render(
        request,
        settings,
        "request.html",
        here=f"/requests/{request_id}",
        session=portal,
        status_code=status_code,
        request_=view,
        timeline=timeline.items,
        forms=forms,
        error=error,
        error_action=error_action,
        documents=document_slots(required, view.documents, upload_error),
        can_upload=UPLOAD_DOCUMENT in view.allowed_actions,
        upload_general=(
            upload_error[1] if upload_error and upload_error[0] not in required else None
        ),
        durations=stage_seconds(timeline.items),
    )


@router.get("/requests/{request_id}")
def request_page(request_id: str, request: Request) -> Response:
    portal = current_session(request, _settings(request))
    if portal is None:
        return _home()
    return show_request_page(request, portal, request_id)


def action_body(action: str, form: FormData) -> dict[str, Any]:
    """The action's body from the form: its model's fields that were filled in (a list
    field takes one item per line or comma)."""
    body: dict[str, Any] = {}
    for name, field in ACTION_BODIES[action].model_fields.items():
        value = str(form.get(name, "")).strip()
        if not value or name in API_ONLY_FIELDS:
            continue
        if field.annotation is not None and "list" in str(field.annotation):
            body[name] = [item.strip() for item in value.replace(",", "\n").splitlines() if item]
        else:
            body[name] = value
    return body


@router.post("/requests/{request_id}/actions/{action}")
async def take_action(request_id: str, action: str, request: Request) -> Response:
    settings = _settings(request)
    portal, form = await posted_form(request)
    if portal is None:
        return _csrf_refused(request, settings)
    actor = _actor(portal)
    ctx = get_context(request)
    key = str(form.get("idempotency_key", "")).strip()[:200] or None
    try:
        check_action_role(action, actor)
        await ctx.read(visible_request, request_id, actor)
        await perform_action(ctx, request_id, action, actor, action_body(action, form), key)
    except Problem as problem:
        return await run_in_threadpool(
            show_request_page,
            request,
            portal,
            request_id,
            error=refused(problem),
            status_code=problem.status,
            error_action=action,
        )
    return RedirectResponse(f"/requests/{request_id}", status_code=303)
