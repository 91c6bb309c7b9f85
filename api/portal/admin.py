"""The admin pages: organisations, users and the outbox's dead letter.

Every page calls the JSON API's own functions — ``list_organizations`` and
``create_organization`` (``api.routes.organizations``), ``list_users``, ``create_user``,
``get_user`` and ``update_user`` (``api.routes.users``) — with the API's permission check
(``require``) first; the outbox is listed by ``records.outbox.listing`` and replayed by
``records.outbox.reset_dead`` + ``mutabaqa.outbox_replay.start_replays``, as
``mutabaqa outbox list/replay`` do (the outbox has no JSON route: admins only). Every POST
checks its CSRF token before it reads or changes anything.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.deps import get_context, not_found
from api.pagination import PageParams
from api.portal.admin_forms import (
    NotSignedIn,
    allowed,
    csrf_refused,
    field_errors,
    in_write_session,
    login_redirect,
    optional,
    refusal_page,
    signed_in,
    text,
)
from api.portal.refusals import Refused, refused
from api.portal.render import render
from api.portal.sessions import PortalSession, portal_session, posted_form
from api.problems import Problem
from api.routes.organizations import create_organization, list_organizations
from api.routes.users import create_user, get_user, list_users, update_user
from domain.permissions import Permission, Role
from models.accounts import OrganizationCreate, UserCreate, UserUpdate
from models.outbox import OutboxStatus
from mutabaqa.outbox_replay import start_replays
from records.outbox import listing, reset_dead

router = APIRouter(include_in_schema=False)
#: Rows per page of the organisation and user lists.
ADMIN_LIMIT = 50
ROLES = [role.value for role in Role]


def _page(cursor: str) -> PageParams:
    return PageParams(limit=ADMIN_LIMIT, cursor=cursor[:512] or None)


def _show(
    request: Request, portal: PortalSession, template: str, status_code: int = 200, **values: Any
) -> Response:
    settings = get_context(request).settings
    return render(request, settings, template, session=portal, status_code=status_code, **values)


# --- organisations ---------------------------------------------------------------------------


def _organizations_page(
    request: Request,
    portal: PortalSession,
    cursor: str = "",
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    refusal: Refused | None = None,
    status_code: int = 200,
) -> Response:
    try:
        actor = allowed(portal, Permission.ORGANIZATIONS_MANAGE)
        with get_context(request).session() as session:
            page = list_organizations(actor, session, _page(cursor))
    except Problem as problem:
        return refusal_page(request, portal, problem)
    return _show(
        request,
        portal,
        "admin_organizations.html",
        status_code,
        here="/admin/organizations",
        section="organizations",
        organizations=page.items,
        next_cursor=page.next_cursor,
        errors=errors or {},
        values=values or {},
        refusal=refusal,
    )


@router.get("/admin")
def admin_home(request: Request) -> Response:
    return RedirectResponse("/admin/organizations", status_code=303)


@router.get("/admin/organizations")
def organizations(request: Request, cursor: str = "") -> Response:
    try:
        portal = signed_in(request)
    except NotSignedIn:
        return login_redirect()
    return _organizations_page(request, portal, cursor)


@router.post("/admin/organizations")
async def organization_create(request: Request) -> Response:
    portal, form = await posted_form(request)
    if portal is None:
        return csrf_refused(request)
    values = {
        name: text(form, name)
        for name in ("name", "name_ar", "registration_id", "address", "country")
    }
    try:
        actor = allowed(portal, Permission.ORGANIZATIONS_MANAGE)
        body = OrganizationCreate.model_validate(
            values | {"name_ar": values["name_ar"] or None, "country": values["country"].upper()}
        )
        await in_write_session(request, lambda s: create_organization(actor, body, s))
    except ValidationError as error:
        return await run_in_threadpool(
            _organizations_page,
            request,
            portal,
            errors=field_errors(error),
            values=values,
            status_code=422,
        )
    except Problem as problem:
        if problem.status == 403:
            return refusal_page(request, portal, problem)
        return await run_in_threadpool(
            _organizations_page,
            request,
            portal,
            values=values,
            refusal=refused(problem),
            status_code=problem.status,
        )
    return RedirectResponse("/admin/organizations", status_code=303)


# --- users -----------------------------------------------------------------------------------


def _users_page(
    request: Request,
    portal: PortalSession,
    cursor: str = "",
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    refusal: Refused | None = None,
    status_code: int = 200,
) -> Response:
    try:
        actor = allowed(portal, Permission.USERS_MANAGE)
        with get_context(request).session() as session:
            page = list_users(actor, session, _page(cursor))
    except Problem as problem:
        return refusal_page(request, portal, problem)
    return _show(
        request,
        portal,
        "admin_users.html",
        status_code,
        here="/admin/users",
        section="users",
        users=page.items,
        next_cursor=page.next_cursor,
        roles=ROLES,
        errors=errors or {},
        values=values or {},
        refusal=refusal,
    )


@router.get("/admin/users")
def users(request: Request, cursor: str = "") -> Response:
    try:
        portal = signed_in(request)
    except NotSignedIn:
        return login_redirect()
    return _users_page(request, portal, cursor)


@router.post("/admin/users")
async def user_create(request: Request) -> Response:
    portal, form = await posted_form(request)
    if portal is None:
        return csrf_refused(request)
    values: dict[str, Any] = {
        name: text(form, name) for name in ("email", "full_name", "organization_id", "centre_code")
    }
    values["roles"] = [role for role in form.getlist("roles") if isinstance(role, str)]
    try:
        actor = allowed(portal, Permission.USERS_MANAGE)
        body = UserCreate.model_validate(
            values
            | {
                "organization_id": optional(form, "organization_id"),
                "centre_code": optional(form, "centre_code"),
                "password": str(form.get("password", "")),
            }
        )
        await create_user(actor, body, get_context(request))
    except ValidationError as error:
        return await run_in_threadpool(
            _users_page, request, portal, errors=field_errors(error), values=values, status_code=422
        )
    except Problem as problem:
        if problem.status == 403:
            return refusal_page(request, portal, problem)
        return await run_in_threadpool(
            _users_page,
            request,
            portal,
            values=values,
            refusal=refused(problem),
            status_code=problem.status,
        )
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{user_id}")
async def user_update(user_id: str, request: Request) -> Response:
    """Change a user's roles and whether the account is disabled (the PATCH's function)."""
    portal, form = await posted_form(request)
    if portal is None:
        return csrf_refused(request)
    ctx = get_context(request)
    roles = [role for role in form.getlist("roles") if isinstance(role, str)]
    try:
        actor = allowed(portal, Permission.USERS_MANAGE)
        body = UserUpdate.model_validate({"roles": roles, "disabled": form.get("disabled") == "on"})
        target = await run_in_threadpool(get_user, user_id, actor, ctx)
        await update_user(target, actor, body, ctx)
    except ValidationError as error:
        problem = Problem(422, "invalid-body", "Invalid request", str(error.errors()[0]["msg"]))
        return await run_in_threadpool(
            _users_page, request, portal, refusal=refused(problem), status_code=422
        )
    except Problem as problem:
        if problem.status == 403:
            return refusal_page(request, portal, problem)
        return await run_in_threadpool(
            _users_page, request, portal, refusal=refused(problem), status_code=problem.status
        )
    return RedirectResponse("/admin/users", status_code=303)


# --- the outbox's dead letter ----------------------------------------------------------------


def _admin_only(portal: PortalSession) -> None:
    """The outbox has no JSON route: the same rule as the admin routes (the admin role)."""
    allowed(portal, Permission.USERS_MANAGE)


@router.get("/admin/outbox")
async def outbox(request: Request) -> Response:
    portal = await portal_session(request)
    if portal is None:
        return login_redirect()
    try:
        _admin_only(portal)
    except Problem as problem:
        return refusal_page(request, portal, problem)
    rows = await run_in_threadpool(listing, get_context(request).engine, OutboxStatus.DEAD)
    return _show(
        request, portal, "admin_outbox.html", here="/admin/outbox", section="outbox", rows=rows
    )


@router.post("/admin/outbox/{row_id}/replay")
async def outbox_replay(row_id: str, request: Request) -> Response:
    portal, _form = await posted_form(request)
    if portal is None:
        return csrf_refused(request)
    ctx = get_context(request)
    try:
        _admin_only(portal)
        # Reset in a short transaction of its own, then start the delivery (no DB held).
        reset = await run_in_threadpool(reset_dead, ctx.engine, [row_id])
        if not reset:
            raise not_found("dead outbox row", row_id)
        await start_replays(await ctx.temporal(), ctx.settings, reset)
    except Problem as problem:
        return refusal_page(request, portal, problem)
    return RedirectResponse("/admin/outbox", status_code=303)
