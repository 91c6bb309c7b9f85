"""Laboratory results: ``PUT /requests/{id}/results/{item_code}``.

Values are exact decimals (JSON numbers or decimal strings); the verdict is computed by the
scheme's decision rule when the workflow has the result recorded. A correction is a new
revision; earlier revisions are kept.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from sqlmodel import Session, select

from api.context import AppContext
from api.deps import CurrentUser, get_context, not_found, require
from api.masking import shown_name
from api.problems import Problem
from api.request_actions import key_reused
from api.request_views import facts_of
from api.routes.requests import IdempotencyKey
from api.workflow_calls import send_action
from domain.decision_rules import InvalidValues, Limits, aggregate
from domain.keys import client_key
from domain.permissions import Actor, Permission
from domain.request_rules import RECORD_RESULT, Refusal, allowed_actions, check_result
from models.lab import TestResult
from models.reference import Aggregation, DecisionRule, Scheme, TestItem
from models.request_api import ResultBody, ResultPublic
from models.request_payloads import ActionInput, ResultView
from models.requests import CertificationRequest
from models.types import stable_id
from records.actions import find_action
from records.canonical import action_digest
from records.results import result_view

router = APIRouter(prefix="/requests", tags=["results"])

TechnicianActor = Annotated[Actor, Depends(require(Permission.RESULTS_RECORD))]
ContextDep = Annotated[AppContext, Depends(get_context)]


def plan_item(
    session: Session, request_id: str, item_code: str, actor: Actor
) -> tuple[CertificationRequest, TestItem]:
    """404 unless the request is assigned to the caller's centre and the item is in its plan."""
    row = session.get(CertificationRequest, request_id)
    if row is None or actor.centre_code is None or row.centre_code != actor.centre_code:
        raise not_found("request", request_id)
    item = session.exec(
        select(TestItem).where(TestItem.scheme_id == row.scheme_id, TestItem.code == item_code)
    ).first()
    if item is None:
        raise not_found("test item of this plan", item_code)
    return row, item


def get_plan_item(
    request_id: str, item_code: str, actor: TechnicianActor, ctx: ContextDep
) -> tuple[CertificationRequest, TestItem]:
    with ctx.session() as session:  # its own short session: the route awaits Temporal
        return plan_item(session, request_id, item_code, actor)


PlanItem = Annotated[tuple[CertificationRequest, TestItem], Depends(get_plan_item)]


def _validate(body: ResultBody, item: TestItem, rule: DecisionRule) -> None:
    """422: the values cannot be judged as given (count, uncertainty under ``guarded``)."""
    values = body.all_values
    try:
        if item.aggregation is Aggregation.SINGLE and len(values) != 1:
            raise InvalidValues(f"item {item.code} takes one value, not {len(values)}")
        aggregate(values, item.aggregation, item.min_count, Limits.of(item), rule, body.uncertainty)
    except ValueError as exc:  # InvalidValues, UncertaintyRequired
        raise Problem(422, "invalid-result", "Invalid result", str(exc)) from None


def _judge_result(
    session: Session, request_id: str, item: TestItem, body: ResultBody, actor: Actor
) -> None:
    """422 if the values cannot be judged, 409 if results cannot be recorded now."""
    row = session.get(CertificationRequest, request_id)
    scheme = session.get(Scheme, item.scheme_id)
    if row is None or scheme is None:
        raise not_found("request", request_id)
    _validate(body, item, scheme.decision_rule)
    facts = facts_of(session, row)
    try:
        check_result(item.code, facts, actor)
    except Refusal as refusal:
        raise Problem(
            refusal.status, refusal.kind, "Not allowed now", refusal.detail,
            request_status=row.status.value, allowed_actions=allowed_actions(facts, actor),
        ) from None  # fmt: skip


def _recorded_result(
    session: Session, request_id: str, key: str, digest: str
) -> ResultPublic | None:
    """The revision already recorded under the client's ``key``; 422 if the key was used
    with another body (or for another action)."""
    done = find_action(session, request_id, key)
    if done is None:
        return None
    if done.body_hash != digest:
        raise key_reused()
    result = session.get(TestResult, stable_id(request_id, key))
    return None if result is None else ResultPublic.model_validate(result_view(result).model_dump())


@router.put(
    "/{request_id}/results/{item_code}",
    response_model=ResultPublic,
    responses={
        200: {"description": "a new revision, or a repeat with the same Idempotency-Key"},
        201: {"description": "the round's first result for this item"},
        422: {"description": "invalid values, or an Idempotency-Key used with another body"},
        409: {"description": "results cannot be recorded in the request's present state"},
    },
)
async def record_result(
    plan_item: PlanItem,
    body: ResultBody,
    actor: TechnicianActor,
    user: CurrentUser,
    response: Response,
    ctx: ContextDep,
    idempotency_key: IdempotencyKey = None,
) -> ResultPublic:
    """Record a result (a correction is a new revision). With an ``Idempotency-Key``, a
    repeat (e.g. after a 503) answers the revision recorded the first time, never a new one."""
    row, item = plan_item
    public, created = await save_result(
        ctx, row, item, body, actor, user.full_name, idempotency_key
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    return public


async def save_result(
    ctx: AppContext,
    row: CertificationRequest,
    item: TestItem,
    body: ResultBody,
    actor: Actor,
    user_name: str,
    idempotency_key: str | None,
) -> tuple[ResultPublic, bool]:
    """Record ``body`` for ``item`` of ``row`` (found by ``plan_item`` for a technician): the
    JSON ``PUT`` and the portal's results sheet. Answers the revision and whether it is the
    round's first for this item."""
    fields = {
        "item_code": item.code,
        "values": [str(v) for v in body.all_values],
        "uncertainty": None if body.uncertainty is None else str(body.uncertainty),
        "equipment_id": body.equipment_id,
        "remarks": body.remarks,
    }
    digest = action_digest(RECORD_RESULT, fields)
    key = client_key(idempotency_key or uuid.uuid4().hex)
    if idempotency_key is not None:
        done = await ctx.read(_recorded_result, row.id, key, digest)
        if done is not None:
            names = {actor.user_id: user_name}
            done.recorded_by = shown_name(actor, done.recorded_by, "lab_technician", names)
            return done, False
    await ctx.read(_judge_result, row.id, item, body, actor)
    command = ActionInput(action=RECORD_RESULT, actor=actor, key=key, body=fields, body_hash=digest)
    client = await ctx.temporal()
    result = await send_action(
        client.get_workflow_handle(row.workflow_id), RECORD_RESULT, command,
        ctx.settings.workflow_answer_seconds, result_type=ResultView,
    )  # fmt: skip
    public = ResultPublic.model_validate(result.model_dump())
    public.recorded_by = user_name  # the technician who just recorded it
    return public, result.revision == 1
