"""The organisation's webhook page (``/webhook``): whoever the JSON API lets manage it —
``Permission.WEBHOOKS_MANAGE``, i.e. a manufacturer, for their own organisation.

It calls ``api.routes.webhooks``' own functions: ``get_webhook``, ``put_webhook`` (set the
URL, optionally a new secret — shown once, on the page that answers the POST),
``deactivate_webhook`` and ``list_deliveries`` (the recent deliveries). Every POST checks
its CSRF token before it reads or changes anything.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.deps import get_context
from api.pagination import PageParams
from api.portal.admin_forms import (
    NotSignedIn,
    allowed,
    csrf_refused,
    field_errors,
    in_write_session,
    login_redirect,
    refusal_page,
    signed_in,
    text,
)
from api.portal.refusals import Refused, refused
from api.portal.render import render
from api.portal.sessions import PortalSession, posted_form
from api.problems import Problem
from api.routes.webhooks import deactivate_webhook, get_webhook, list_deliveries, put_webhook
from domain.permissions import Permission
from models.webhooks import WebhookUpdate

router = APIRouter(include_in_schema=False)
#: Deliveries the page lists (newest first).
DELIVERIES_LIMIT = 20


def _webhook_page(
    request: Request,
    portal: PortalSession,
    *,
    secret: str | None = None,
    errors: dict[str, str] | None = None,
    url: str = "",
    refusal: Refused | None = None,
    status_code: int = 200,
) -> Response:
    settings = get_context(request).settings
    try:
        actor = allowed(portal, Permission.WEBHOOKS_MANAGE)
        with get_context(request).session() as session:
            try:
                webhook = get_webhook(actor, session)
            except Problem as problem:
                if problem.status != 404:
                    raise
                webhook = None
            deliveries = list_deliveries(actor, session, PageParams(limit=DELIVERIES_LIMIT))
    except Problem as problem:
        return refusal_page(request, portal, problem)
    return render(
        request,
        settings,
        "admin_webhook.html",
        here="/webhook",
        session=portal,
        status_code=status_code,
        webhook=webhook,
        deliveries=deliveries.items,
        secret=secret,
        errors=errors or {},
        url=url or (webhook.url if webhook else ""),
        refusal=refusal,
    )


@router.get("/webhook")
def webhook(request: Request) -> Response:
    try:
        portal = signed_in(request)
    except NotSignedIn:
        return login_redirect()
    return _webhook_page(request, portal)


@router.post("/webhook")
async def webhook_set(request: Request) -> Response:
    ctx = get_context(request)
    portal, form = await posted_form(request)
    if portal is None:
        return csrf_refused(request)
    url = text(form, "url")
    try:
        actor = allowed(portal, Permission.WEBHOOKS_MANAGE)
        body = WebhookUpdate(url=url, rotate_secret=form.get("rotate_secret") == "on")

        def put(session: Any) -> Any:
            return put_webhook(actor, body, session, ctx.settings, Response())

        answer = await in_write_session(request, put)
    except ValidationError as error:
        return await run_in_threadpool(
            _webhook_page, request, portal, errors=field_errors(error), url=url, status_code=422
        )
    except Problem as problem:
        if problem.status == 403:
            return refusal_page(request, portal, problem)
        return await run_in_threadpool(
            _webhook_page,
            request,
            portal,
            url=url,
            refusal=refused(problem),
            status_code=problem.status,
        )
    if answer.secret:  # shown this once: answer with the page, not a redirect
        return await run_in_threadpool(_webhook_page, request, portal, secret=answer.secret)
    return RedirectResponse("/webhook", status_code=303)


@router.post("/webhook/delete")
async def webhook_delete(request: Request) -> Response:
    portal, _form = await posted_form(request)
    if portal is None:
        return csrf_refused(request)
    try:
        actor = allowed(portal, Permission.WEBHOOKS_MANAGE)
        await in_write_session(request, lambda session: deactivate_webhook(actor, session))
    except Problem as problem:
        if problem.status == 403:
            return refusal_page(request, portal, problem)
        return await run_in_threadpool(
            _webhook_page, request, portal, refusal=refused(problem), status_code=problem.status
        )
    return RedirectResponse("/webhook", status_code=303)
