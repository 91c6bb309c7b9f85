"""Request actions: the one path from a person's action to the request's workflow.

The JSON route (``POST /api/v1/requests/{id}/actions/{action}``) and the portal's action
forms both check the role (``check_action_role``), find the request within the caller's
reach (``visible_request``) and call ``perform_action``: the same rules, the same
idempotency record, the same Update.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends
from sqlmodel import Session
from temporalio.client import Client

from api.context import AppContext
from api.deps import ContextDep, CurrentActor, not_found
from api.problems import Problem
from api.request_views import RequestRecord, reach_facts, request_view
from api.workflow_calls import send_action
from domain.actions import ACTION_BODIES
from domain.keys import client_key
from domain.permissions import Actor
from domain.request_rules import (
    Refusal,
    RequestFacts,
    allowed_actions,
    can_see,
    check,
    check_body,
    check_role,
)
from models.accounts import Product
from models.reference import TechnicalCentre
from models.request_api import RequestPublic
from models.request_payloads import ActionInput
from models.requests import CertificationRequest
from records.actions import find_action
from records.canonical import action_digest


def key_reused() -> Problem:
    return Problem(
        422,
        "idempotency-key-reused",
        "Idempotency-Key reused",
        "this Idempotency-Key was used with a different body",
    )


def visible_request(session: Session, request_id: str, actor: Actor) -> CertificationRequest:
    """The request if it is within the caller's reach; 404 otherwise (as if unknown)."""
    row = session.get(CertificationRequest, request_id)
    if row is None or not can_see(reach_facts(row), actor):
        raise not_found("request", request_id)
    return row


def check_action_role(action: str, actor: CurrentActor) -> str:
    try:
        check_role(action, actor)
    except Refusal as refusal:
        raise Problem(refusal.status, refusal.kind, "Refused", refusal.detail) from None
    return action


ActionName = Annotated[str, Depends(check_action_role)]


def get_actionable_request(
    request_id: str, action: ActionName, actor: CurrentActor, ctx: ContextDep
) -> CertificationRequest:
    with ctx.session() as session:  # its own short session: the route awaits Temporal
        return visible_request(session, request_id, actor)


def _prepare_action(
    session: Session,
    request_id: str,
    action: str,
    actor: Actor,
    clean: dict[str, Any],
    digest: str,
    idempotency_key: str | None,
) -> RequestPublic | str:
    """Judge the action against the record before the workflow is asked: the stored request
    when the key was used already, else the workflow id to send the action to."""
    row = visible_request(session, request_id, actor)
    record = RequestRecord.load(session, row)
    if idempotency_key is not None:
        done = _recorded_action(session, row.id, idempotency_key)
        if done is not None:
            if done != digest:
                raise key_reused()
            return request_view(session, row, actor)
    if action == "accept" and clean.get("centre_code"):
        _require_centre(session, clean["centre_code"])
    facts = record.facts()
    try:  # the record's view first: a refusal costs the workflow nothing
        check(action, facts, actor, clean)
    except Refusal as refusal:
        raise Problem(
            refusal.status,
            refusal.kind,
            "Not allowed now",
            refusal.detail,
            request_status=row.status.value,
            allowed_actions=allowed_actions(facts, actor),
        ) from None
    if action == "accept" and clean.get("confirm_gtin") is True:
        _require_gtin(session, row, facts, actor)
    return row.workflow_id


def _view(session: Session, request_id: str, actor: Actor) -> RequestPublic:
    row = session.get(CertificationRequest, request_id)
    if row is None:
        raise not_found("request", request_id)
    return request_view(session, row, actor)


async def perform_action(
    ctx: AppContext,
    request_id: str,
    action: str,
    actor: Actor,
    payload: dict[str, Any],
    idempotency_key: str | None,
) -> RequestPublic:
    """Take ``action`` on a request within the caller's reach whose role may take it (the
    caller checked both: ``ActionName`` and ``get_actionable_request``, or the portal with
    the same functions); answers the request as stored afterwards. Refusals are problems
    (422 body, 409/403 rules, 503 Temporal) and change nothing."""
    try:
        check_body(action, payload)
    except Refusal as refusal:
        raise Problem(refusal.status, refusal.kind, "Invalid request", refusal.detail) from None
    clean = ACTION_BODIES[action].model_validate(payload).model_dump(mode="json")
    digest = action_digest(action, clean)
    prepared = await ctx.read(
        _prepare_action, request_id, action, actor, clean, digest, idempotency_key
    )
    if isinstance(prepared, RequestPublic):
        return prepared
    client: Client = await ctx.temporal()
    key = client_key(idempotency_key or uuid.uuid4().hex)
    command = ActionInput(action=action, actor=actor, body=clean, key=key, body_hash=digest)
    await send_action(
        client.get_workflow_handle(prepared),
        action,
        command,
        ctx.settings.workflow_answer_seconds,
    )
    return await ctx.read(_view, request_id, actor)


def _recorded_action(session: Session, request_id: str, key: str) -> str | None:
    """The body digest recorded with the client's ``key`` on this request, if any."""
    record = find_action(session, request_id, client_key(key))
    return None if record is None else record.body_hash


def _require_gtin(
    session: Session, row: CertificationRequest, facts: RequestFacts, actor: Actor
) -> None:
    """``confirm_gtin`` needs a product with a GTIN (a product's GTIN never changes, so
    the workflow need not know it: it only marks the accept, its activity writes it)."""
    product = session.get(Product, row.product_id)
    if product is None or product.gtin is None:
        raise Problem(
            409,
            "no-gtin",
            "Not allowed now",
            "the request's product has no GTIN to confirm: accept without confirm_gtin",
            request_status=row.status.value,
            allowed_actions=allowed_actions(facts, actor),
        )


def _require_centre(session: Session, code: str) -> None:
    if session.get(TechnicalCentre, code) is None:
        raise not_found("technical centre", code)
