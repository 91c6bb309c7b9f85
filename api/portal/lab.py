"""The laboratory's pages: the centre's work list, the sample receipt and the lab actions.

A technician sees their technical centre's requests only: the list is the JSON list's
query (``request_summaries``) narrowed to the technician's centre, a request is found with
``visible_request`` and every action goes through ``check_action_role`` and
``perform_action``, as ``POST /api/v1/requests/{id}/actions/{action}`` does. The results
sheet and the evidence upload are in ``api/portal/lab_results.py`` (its router is included
here, so ``api/app.py`` registers one router).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from babel.dates import format_timedelta
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api.deps import actor_of, get_context, require
from api.pagination import MAX_LIMIT, PageParams
from api.portal.lab_results import UPLOAD_PATHS, results_page
from api.portal.lab_results import router as results_router
from api.portal.pages import action_body
from api.portal.render import render
from api.portal.sessions import (
    PortalSession,
    current_session,
    language_of,
    posted_form,
)
from api.problems import Problem
from api.request_actions import check_action_role, perform_action, visible_request
from api.request_views import request_view
from api.routes.requests import request_summaries
from domain.actions import ACTION_BODIES
from domain.permissions import Actor, Permission
from models.audit import AuditEvent, request_chain
from models.request_api import RequestSummary
from models.requests import RequestStatus
from mutabaqa.i18n import PORTAL_LOCALES
from mutabaqa.settings import Settings

router = APIRouter(include_in_schema=False)
router.include_router(results_router)
__all__ = ["UPLOAD_PATHS", "router"]

#: The statuses of a centre's work, in the order of the work.
LAB_STATUSES = (
    RequestStatus.AWAITING_SAMPLE,
    RequestStatus.TESTING,
    RequestStatus.RESULTS_SUBMITTED,
)
#: The actions taken from the lab's pages, and the page each is taken from.
SAMPLE_ACTIONS = ("receive_sample", "reject_sample")
RESULTS_ACTIONS = ("submit_results", "verify_results")
#: At most this many requests per status in the work list (the longest unchanged first).
LAB_LIMIT = 500


def _settings(request: Request) -> Settings:
    return get_context(request).settings


def technician(request: Request) -> tuple[PortalSession, Actor] | Response:
    """The technician's session and actor; the login page when there is no session, 403
    (the JSON API's own permission check) for a role that records no results."""
    return technician_of(request, current_session(request, _settings(request)))


def technician_of(
    request: Request, portal: PortalSession | None
) -> tuple[PortalSession, Actor] | Response:
    """:func:`technician` for a session already found (no database work)."""
    settings = _settings(request)
    if portal is None:
        return RedirectResponse("/", status_code=303)
    actor = actor_of(portal.user)
    try:
        require(Permission.RESULTS_RECORD)(actor)
    except Problem as problem:
        return render(
            request, settings, "not_found.html", session=portal, status_code=problem.status
        )
    return portal, actor


# --- the work list -------------------------------------------------------------------------


def status_entered(session: Session, rows: Iterable[RequestSummary]) -> dict[str, datetime]:
    """When each request entered its current status: its latest audit event into it."""
    wanted = {request_chain(row.id): row for row in rows}
    if not wanted:
        return {}
    found = session.exec(
        select(AuditEvent.chain, AuditEvent.to_status, sa.func.max(AuditEvent.at))
        .where(col(AuditEvent.chain).in_(wanted), col(AuditEvent.to_status).is_not(None))
        .group_by(col(AuditEvent.chain), col(AuditEvent.to_status))
    ).all()
    entered: dict[str, datetime] = {}
    for chain, to_status, at in found:
        row = wanted[chain]
        if to_status == row.status.value:
            entered[row.id] = at if at.tzinfo else at.replace(tzinfo=UTC)
    return entered


def work_list(
    session: Session, actor: Actor, statuses: Iterable[RequestStatus]
) -> tuple[list[tuple[RequestSummary, datetime]], bool]:
    """The centre's requests in ``statuses`` with when each entered it, oldest first: the
    JSON list's query, longest unchanged first, page after page up to ``LAB_LIMIT`` per
    status; and whether some (the most recently changed) were left out."""
    rows: list[RequestSummary] = []
    more = False
    for status_ in statuses:
        cursor: str | None = None
        taken = 0
        while taken < LAB_LIMIT:
            page = request_summaries(
                session,
                actor,
                PageParams(min(MAX_LIMIT, LAB_LIMIT - taken), cursor),
                status_,
                centre=actor.centre_code,
                longest_unchanged_first=True,
            )
            rows += page.items
            taken += len(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        more = more or cursor is not None
    entered = status_entered(session, rows)
    listed = [(row, entered.get(row.id, row.updated_at)) for row in rows]
    return sorted(listed, key=lambda pair: (pair[1], pair[0].number)), more


@router.get("/lab")
def lab_home(request: Request, status: str | None = None) -> Response:
    found = technician(request)
    if isinstance(found, Response):
        return found
    portal, actor = found
    chosen = [s for s in LAB_STATUSES if s.value == status] or list(LAB_STATUSES)
    with get_context(request).session() as session:
        listed, more = work_list(session, actor, chosen)
    now = datetime.now(UTC)
    locale = PORTAL_LOCALES[language_of(request)[0]]
    groups = [
        (
            state.value,
            [
                (row, since, format_timedelta(now - since, locale=locale))
                for row, since in listed
                if row.status is state
            ],
        )
        for state in chosen
    ]
    return render(
        request,
        _settings(request),
        "lab_list.html",
        session=portal,
        groups=groups,
        statuses=[s.value for s in LAB_STATUSES],
        chosen=status if len(chosen) == 1 else None,
        more=more,
        cap=LAB_LIMIT,
    )


# --- the sample receipt --------------------------------------------------------------------


def sample_page(
    request: Request,
    portal: PortalSession,
    actor: Actor,
    request_id: str,
    *,
    error: str | None = None,
    kind: str | None = None,
    field_errors: dict[str, dict[str, str]] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    settings = _settings(request)
    try:
        with get_context(request).session() as session:
            view = request_view(session, visible_request(session, request_id, actor), actor)
    except Problem as problem:
        return render(
            request, settings, "not_found.html", session=portal, status_code=problem.status
        )
    actions = [
        (action, list(ACTION_BODIES[action].model_fields), uuid.uuid4().hex)
        for action in SAMPLE_ACTIONS
        if action in view.allowed_actions
    ]
    return render(
        request,
        settings,
        "lab_sample.html",
        here=f"/lab/requests/{request_id}/sample",
        session=portal,
        status_code=status_code,
        request_=view,
        actions=actions,
        error=error,
        kind=kind,
        field_errors=field_errors or {},
        form=form or {},
    )


@router.get("/lab/requests/{request_id}/sample")
def sample(request_id: str, request: Request) -> Response:
    found = technician(request)
    if isinstance(found, Response):
        return found
    return sample_page(request, *found, request_id)


def _field_errors(action: str, body: dict[str, Any]) -> dict[str, str]:
    """The action's body model's complaints, by field (shown next to each field)."""
    try:
        ACTION_BODIES[action].model_validate(body)
    except ValidationError as invalid:
        return {str(e["loc"][0]) if e["loc"] else "": e["type"] for e in invalid.errors()}
    return {}


@router.post("/lab/requests/{request_id}/actions/{action}")
async def lab_action(request_id: str, action: str, request: Request) -> Response:
    settings = _settings(request)
    portal, form = await posted_form(request)
    if portal is None:
        return render(request, settings, "refused.html", status_code=403)
    found = technician_of(request, portal)
    if isinstance(found, Response):
        return found
    portal, actor = found
    if action not in SAMPLE_ACTIONS + RESULTS_ACTIONS:
        return render(request, settings, "not_found.html", session=portal, status_code=404)
    body = action_body(action, form)
    on_sample = action in SAMPLE_ACTIONS

    async def again(
        status_code: int,
        *,
        error: str | None = None,
        kind: str | None = None,
        field_errors: dict[str, dict[str, str]] | None = None,
        form: dict[str, str] | None = None,
    ) -> Response:
        """The page the action's form is on, again, with what was refused."""
        if on_sample:
            return await run_in_threadpool(
                sample_page, request, portal, actor, request_id, status_code=status_code,
                error=error, kind=kind, field_errors=field_errors, form=form,
            )  # fmt: skip
        # The results page's actions have no fields to fill in again: only the errors.
        return await run_in_threadpool(
            results_page, request, portal, actor, request_id, status_code=status_code,
            error=error, kind=kind, field_errors=field_errors,
        )  # fmt: skip

    invalid = _field_errors(action, body)
    if invalid:
        return await again(422, field_errors={action: invalid}, form=body)
    key = str(form.get("idempotency_key", "")).strip()[:200] or None
    ctx = get_context(request)
    try:
        check_action_role(action, actor)
        await ctx.read(visible_request, request_id, actor)
        await perform_action(ctx, request_id, action, actor, body, key)
    except Problem as problem:
        if problem.status == 404:
            return render(request, settings, "not_found.html", session=portal, status_code=404)
        return await again(problem.status, error=problem.detail, kind=problem.kind, form=body)
    if action == "reject_sample":
        return RedirectResponse("/lab", status_code=303)
    return RedirectResponse(f"/lab/requests/{request_id}/results", status_code=303)
