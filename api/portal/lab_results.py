"""The laboratory's results sheet and evidence upload (the routes of ``api/portal/lab.py``).

- **Results**: one form per item of the request's test plan (``scheme_public``: its units
  and limits); saving one goes through ``plan_item`` and ``save_result``, the functions of
  ``PUT /api/v1/requests/{id}/results/{item_code}``, with the form's idempotency key. The
  verdict shown while typing (``api/static/results.js``) mirrors ``domain.decision_rules``;
  the verdict the server recorded, shown after saving, is the authority.
- **Evidence**: a plain multipart form posted to ``store_evidence``, the function of
  ``POST /api/v1/requests/{id}/evidence``. Its CSRF token comes from the ``X-CSRF-Token``
  header (the upload-progress script) or from the ``csrf`` field sent before the file, and
  is checked before any byte of the file is stored.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.deps import actor_of, get_context, require
from api.portal.render import render
from api.portal.sessions import (
    CSRF_FIELD,
    UPLOAD_CSRF_KIND,
    PortalSession,
    current_session,
    posted_form,
    upload_session,
)
from api.problems import Problem
from api.request_actions import visible_request
from api.request_views import request_view
from api.routes.files import store_evidence
from api.routes.lab import plan_item, save_result
from api.routes.reference import scheme_public
from domain.permissions import Actor, Permission
from models.reference import Scheme, SchemePublic
from models.request_api import RequestPublic, ResultBody
from mutabaqa.settings import Settings

router = APIRouter(include_in_schema=False)

KEY_FIELD = "idempotency_key"
#: Upload routes: ``api/app.py`` gives them the upload body limit.
UPLOAD_PATHS = ("/lab/requests/{request_id}/evidence",)
#: Specimen values are typed one per line or separated by spaces or semicolons (a comma
#: is not a separator: "5,1" is refused as a value rather than read as two).
_SEPARATORS = re.compile(r"[\s;]+")


def _settings(request: Request) -> Settings:
    return get_context(request).settings


def _load(session: Session, request_id: str, actor: Actor) -> tuple[RequestPublic, SchemePublic]:
    row = visible_request(session, request_id, actor)
    scheme = session.get(Scheme, row.scheme_id)
    if scheme is None:
        raise LookupError(f"scheme {row.scheme_id} is not stored")
    return request_view(session, row, actor), scheme_public(session, scheme)


def results_page(
    request: Request,
    portal: PortalSession,
    actor: Actor,
    request_id: str,
    *,
    error: str | None = None,
    kind: str | None = None,
    item_errors: dict[str, str] | None = None,
    upload_error: str | None = None,
    typed: dict[str, dict[str, str]] | None = None,
    field_errors: dict[str, dict[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    """The results sheet; ``typed`` keeps what was typed in an item's refused form,
    ``field_errors`` what a refused action's form (submit, verify) had wrong, by field."""
    settings = _settings(request)
    try:
        with get_context(request).session() as session:
            view, scheme = _load(session, request_id, actor)
    except Problem as problem:
        return render(
            request, settings, "not_found.html", session=portal, status_code=problem.status
        )
    saved = {r.item_code: r for r in view.results if r.round == view.round}
    items = [
        item
        for item in scheme.test_items
        if view.round == 1 or not view.retest_items or item.code in view.retest_items
    ]
    return render(
        request,
        settings,
        "lab_results.html",
        here=f"/lab/requests/{request_id}/results",
        session=portal,
        status_code=status_code,
        request_=view,
        rule=scheme.decision_rule.value,
        items=items,
        saved=saved,
        keys={item.code: uuid.uuid4().hex for item in items},
        error=error,
        kind=kind,
        item_errors=item_errors or {},
        upload_error=upload_error,
        typed=typed or {},
        field_errors=field_errors or {},
        can_record="record_result" in view.allowed_actions,
        can_upload="upload_evidence" in view.allowed_actions,
        can_submit="submit_results" in view.allowed_actions,
        verify_key=uuid.uuid4().hex,
        submit_key=uuid.uuid4().hex,
    )


def _technician(request: Request, permission: Permission) -> tuple[PortalSession, Actor] | None:
    portal = current_session(request, _settings(request))
    if portal is None:
        return None
    actor = actor_of(portal.user)
    require(permission)(actor)  # a Problem (403) for another role
    return portal, actor


@router.get("/lab/requests/{request_id}/results")
def results(request_id: str, request: Request) -> Response:
    settings = _settings(request)
    try:
        found = _technician(request, Permission.RESULTS_RECORD)
    except Problem as problem:
        return render(request, settings, "not_found.html", status_code=problem.status)
    if found is None:
        return RedirectResponse("/", status_code=303)
    return results_page(request, *found, request_id)


def result_body(form: Mapping[str, Any]) -> dict[str, Any]:
    """The ``PUT`` body from a results form: ``value`` or ``values`` (split on spaces,
    new lines and semicolons), and the optional fields that were filled in."""
    body: dict[str, Any] = {}
    if "values" in form:
        body["values"] = [v for v in _SEPARATORS.split(str(form["values"])) if v]
    else:
        body["value"] = str(form.get("value", "")).strip()
    for name in ("uncertainty", "equipment_id", "remarks"):
        value = str(form.get(name, "")).strip()
        if value:
            body[name] = value
    return body


@router.post("/lab/requests/{request_id}/results/{item_code}")
async def save_item(request_id: str, item_code: str, request: Request) -> Response:
    settings = _settings(request)
    portal, form = await posted_form(request)
    if portal is None:
        return render(request, settings, "refused.html", status_code=403)
    actor = actor_of(portal.user)
    ctx = get_context(request)
    # What was typed is shown again; the key only after a 503 (the result may have been
    # recorded: the same key then answers that revision), else a refused form gets a new one.
    typed = {item_code: {k: str(v) for k, v in form.items() if k not in (CSRF_FIELD, KEY_FIELD)}}
    key = str(form.get(KEY_FIELD, "")).strip()[:200] or None
    try:
        require(Permission.RESULTS_RECORD)(actor)
        row, item = await ctx.read(plan_item, request_id, item_code, actor)
    except Problem as problem:
        return render(
            request, settings, "not_found.html", session=portal, status_code=problem.status
        )
    raw = result_body(form)
    try:
        body = ResultBody.model_validate(raw)
    except ValidationError:
        return await run_in_threadpool(
            results_page,
            request,
            portal,
            actor,
            request_id,
            status_code=422,
            typed=typed,
            item_errors={item_code: "unreadable"},
        )
    try:
        await save_result(ctx, row, item, body, actor, portal.user.full_name, key)
    except Problem as problem:
        if problem.status == 503 and key:
            typed[item_code][KEY_FIELD] = key
        return await run_in_threadpool(
            results_page,
            request,
            portal,
            actor,
            request_id,
            status_code=problem.status,
            typed=typed,
            item_errors={item_code: problem.detail or problem.kind},
        )
    return RedirectResponse(f"/lab/requests/{request_id}/results#item-{item.code}", status_code=303)


@router.post("/lab/requests/{request_id}/evidence")
async def upload(request_id: str, request: Request) -> Response:
    """Test evidence from the portal's form; 303 to the results sheet once recorded."""
    settings = _settings(request)
    portal, before_file = await upload_session(request)
    if portal is None:
        return render(request, settings, "refused.html", status_code=403)

    actor = actor_of(portal.user)
    try:
        require(Permission.EVIDENCE_UPLOAD)(actor)
        await store_evidence(request, get_context(request), actor, request_id, before_file)
    except Problem as problem:
        if problem.kind == UPLOAD_CSRF_KIND:
            return render(request, settings, "refused.html", status_code=403)
        if problem.status in (403, 404):
            return render(
                request, settings, "not_found.html", session=portal, status_code=problem.status
            )
        return await run_in_threadpool(
            results_page,
            request,
            portal,
            actor,
            request_id,
            status_code=problem.status,
            upload_error=problem.detail or problem.kind,
        )
    return RedirectResponse(f"/lab/requests/{request_id}/results#evidence", status_code=303)
