"""Requests: create (update-with-start), read, timeline, documents and actions.

The API never writes request tables: it reads them (the read model) and sends Updates to
the request's workflow, which has activities write them.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Annotated, Any

import rfc8785
import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, Header, Query, Response, status
from sqlmodel import Session, col, or_, select
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.requests import find_action
from api.context import AppContext
from api.deps import CurrentActor, SessionDep, get_context, not_found, require
from api.pagination import Page, PageParamsDep, paginate
from api.problems import Problem
from api.request_views import facts_of, plan_of, request_view
from api.workflow_calls import send_action, unavailable
from models.accounts import Product
from models.audit import AuditEvent, request_chain
from models.permissions import Actor, Permission, Role
from models.reference import Scheme, TechnicalCentre
from models.request_payloads import (
    ACTION_BODIES,
    ActionInput,
    PlanEntry,
    RequestCreate,
    RequestPublic,
    RequestRef,
    RequestSummary,
    RequestWorkflowInput,
    SchemeSnapshot,
    Timeline,
    TimelineItem,
)
from models.requests import (
    CertificationRequest,
    RequestStatus,
)
from mutabaqa.timing import timing_of
from workflows import search_attributes as attrs
from workflows.request import RequestWorkflow
from workflows.request_rules import (
    Refusal,
    allowed_actions,
    can_see,
    check,
    check_body,
    check_role,
)

router = APIRouter(prefix="/requests", tags=["requests"])

CreatorActor = Annotated[Actor, Depends(require(Permission.REQUESTS_CREATE))]
ReaderActor = Annotated[Actor, Depends(require(Permission.REQUESTS_READ))]
UploaderActor = Annotated[Actor, Depends(require(Permission.DOCUMENTS_UPLOAD))]
ContextDep = Annotated[AppContext, Depends(get_context)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Same key, same result; the same key with another body answers 422.",
    ),
]


def body_hash(value: Any) -> str:
    return hashlib.sha256(rfc8785.dumps(value)).hexdigest()


# --- reading -------------------------------------------------------------------------------


def get_visible_request(
    request_id: str, actor: ReaderActor, session: SessionDep
) -> CertificationRequest:
    """The request if it is within the caller's reach; 404 otherwise (as if unknown)."""
    row = session.get(CertificationRequest, request_id)
    if row is None or not can_see(facts_of(session, row), actor):
        raise not_found("request", request_id)
    return row


VisibleRequest = Annotated[CertificationRequest, Depends(get_visible_request)]


@router.get("", response_model=Page[RequestSummary])
def list_requests(
    actor: ReaderActor,
    session: SessionDep,
    page: PageParamsDep,
    status_: Annotated[RequestStatus | None, Query(alias="status")] = None,
    centre: Annotated[str | None, Query(max_length=32)] = None,
    scheme: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[RequestSummary]:
    """Requests within the caller's reach, newest first; filters combine."""
    reach = []
    if actor.has(Role.MANUFACTURER) and actor.organization_id:
        reach.append(CertificationRequest.organization_id == actor.organization_id)
    if actor.has(Role.LAB_TECHNICIAN) and actor.centre_code:
        reach.append(CertificationRequest.centre_code == actor.centre_code)
    if actor.has(Role.COMPLIANCE_OFFICER):
        reach.append(CertificationRequest.status != RequestStatus.DRAFT)
    statement = select(CertificationRequest).where(or_(sa.false(), *reach))
    if status_ is not None:
        statement = statement.where(CertificationRequest.status == status_)
    if centre:
        statement = statement.where(CertificationRequest.centre_code == centre)
    if scheme:
        statement = statement.where(CertificationRequest.scheme_code == scheme)
    if q:
        like = f"%{q.strip()}%"
        product_ids = select(Product.id).where(col(Product.name).ilike(like))
        statement = statement.where(
            or_(
                col(CertificationRequest.number).ilike(like),
                col(CertificationRequest.product_id).in_(product_ids),
            )
        )
    products: dict[str, str] = {}

    def summary(row: CertificationRequest) -> RequestSummary:
        if row.product_id not in products:
            product = session.get(Product, row.product_id)
            products[row.product_id] = product.name if product else ""
        return RequestSummary(
            id=row.id,
            number=row.number,
            status=row.status,
            kind=row.kind,
            product_name=products[row.product_id],
            scheme_code=row.scheme_code,
            centre=row.centre_code,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    return paginate(session, statement, CertificationRequest, page, summary)


@router.get("/{request_id}", response_model=RequestPublic)
def get_request(row: VisibleRequest, actor: ReaderActor, session: SessionDep) -> RequestPublic:
    return request_view(session, row, actor)


@router.get("/{request_id}/timeline", response_model=Timeline)
def get_timeline(row: VisibleRequest, actor: ReaderActor, session: SessionDep) -> Timeline:
    """Every recorded event of the request; manufacturers see roles, not staff names."""
    events = session.exec(
        select(AuditEvent)
        .where(AuditEvent.chain == request_chain(row.id))
        .order_by(col(AuditEvent.seq))
    ).all()
    staff = actor.has(Role.LAB_TECHNICIAN, Role.COMPLIANCE_OFFICER)
    items = []
    for e in events:
        if e.actor_id is None:
            who = "system"
        elif staff or e.actor_id == actor.user_id or e.actor_role == "manufacturer":
            who = e.actor_name or e.actor_role
        else:
            who = e.actor_role
        items.append(
            TimelineItem(
                at=e.at,
                action=e.action,
                actor=who,
                actor_role=e.actor_role,
                from_status=e.from_status,
                to_status=e.to_status,
                detail=e.detail,
            )
        )
    return Timeline(items=items)


# --- creating ------------------------------------------------------------------------------


def workflow_id_for(organization_id: str, key: str | None, request_id: str) -> str:
    if key is None:
        return f"request-{request_id}"
    return f"request-{organization_id}-{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def _existing_for_key(
    session: Session, organization_id: str, key: str, digest: str
) -> CertificationRequest | None:
    row = session.exec(
        select(CertificationRequest).where(
            CertificationRequest.organization_id == organization_id,
            CertificationRequest.idempotency_key == key,
        )
    ).first()
    if row is not None and row.idempotency_hash != digest:
        raise Problem(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            "this Idempotency-Key was used with a different body",
        )
    return row


@router.post(
    "",
    response_model=RequestPublic,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "a repeat with the same Idempotency-Key"}},
)
async def create_request(
    data: RequestCreate,
    response: Response,
    actor: CreatorActor,
    session: SessionDep,
    ctx: ContextDep,
    idempotency_key: IdempotencyKey = None,
) -> RequestPublic:
    if actor.organization_id is None:
        raise Problem(
            409, "no-organization", "Not allowed now", "your account belongs to no organisation"
        )
    product = session.get(Product, data.product_id)
    if product is None or product.organization_id != actor.organization_id:
        raise not_found("product", data.product_id)
    scheme = session.exec(
        select(Scheme).where(Scheme.code == data.scheme_code).order_by(col(Scheme.version).desc())
    ).first()
    if scheme is None or scheme.id is None:
        raise not_found("scheme", data.scheme_code)
    digest = body_hash(data.model_dump(mode="json"))
    if idempotency_key is not None:
        existing = _existing_for_key(session, actor.organization_id, idempotency_key, digest)
        if existing is not None:
            response.status_code = status.HTTP_200_OK
            return request_view(session, existing, actor)
    request_id = uuid.uuid4().hex
    params = RequestWorkflowInput(
        request_id=request_id,
        organization_id=actor.organization_id,
        product_id=product.id,
        product_name=product.name,
        scheme=SchemeSnapshot(
            id=scheme.id,
            code=scheme.code,
            version=scheme.version,
            sector=scheme.sector,
            title=scheme.title,
            required_documents=tuple(scheme.required_documents),
            decision_rule=scheme.decision_rule.value,
            items=tuple(
                PlanEntry(code=code, mandatory=mandatory)
                for code, mandatory in plan_of(session, scheme.id).items()
            ),
        ),
        kind=data.kind,
        scope=data.scope or f"{scheme.title} — {product.name} ({product.brand} {product.model})",
        actor=actor,
        idempotency_key=idempotency_key,
        idempotency_hash=digest,
        timing=timing_of(ctx.settings),
    )
    client = await ctx.temporal()
    workflow_id = workflow_id_for(actor.organization_id, idempotency_key, request_id)
    start = WithStartWorkflowOperation(
        RequestWorkflow.run,
        params,
        id=workflow_id,
        task_queue=ctx.settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(attrs.STATUS, RequestStatus.DRAFT.value),
            SearchAttributePair(attrs.MANUFACTURER, actor.organization_id),
            SearchAttributePair(attrs.SCHEME, scheme.code),
            SearchAttributePair(attrs.KIND, data.kind.value),
        ]),
    )  # fmt: skip
    try:
        async with asyncio.timeout(ctx.settings.workflow_answer_seconds):
            ref = await client.execute_update_with_start_workflow(
                "created", start_workflow_operation=start, id="created", result_type=RequestRef
            )
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise unavailable() from None
    except WorkflowAlreadyStartedError:
        # The workflow for this key has finished: the database has the request.
        assert idempotency_key is not None
        session.expire_all()
        row = _existing_for_key(session, actor.organization_id, idempotency_key, digest)
        if row is None:
            raise unavailable() from None
        response.status_code = status.HTTP_200_OK
        return request_view(session, row, actor)
    session.expire_all()
    row = session.get(CertificationRequest, ref.request_id)
    assert row is not None
    if row.id != request_id:  # another call with this key created it
        if row.idempotency_hash != digest:
            raise Problem(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was used with a different body",
            )
        response.status_code = status.HTTP_200_OK
    return request_view(session, row, actor)


# --- actions -------------------------------------------------------------------------------


def check_action_role(action: str, actor: CurrentActor) -> str:
    try:
        check_role(action, actor)
    except Refusal as refusal:
        raise Problem(refusal.status, refusal.kind, "Refused", refusal.detail) from None
    return action


ActionName = Annotated[str, Depends(check_action_role)]


def get_actionable_request(
    request_id: str, action: ActionName, actor: CurrentActor, session: SessionDep
) -> CertificationRequest:
    row = session.get(CertificationRequest, request_id)
    if row is None or not can_see(facts_of(session, row), actor):
        raise not_found("request", request_id)
    return row


@router.post("/{request_id}/actions/{action}", response_model=RequestPublic)
async def act(
    action: ActionName,
    row: Annotated[CertificationRequest, Depends(get_actionable_request)],
    actor: CurrentActor,
    session: SessionDep,
    ctx: ContextDep,
    body: Annotated[dict[str, Any] | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> RequestPublic:
    """Take an action of SPEC section 4; answers the request as stored afterwards."""
    payload = body or {}
    try:
        check_body(action, payload)
    except Refusal as refusal:
        raise Problem(refusal.status, refusal.kind, "Invalid request", refusal.detail) from None
    clean = ACTION_BODIES[action].model_validate(payload).model_dump(mode="json")
    digest = body_hash({"action": action, "body": clean})
    key = idempotency_key or uuid.uuid4().hex
    if idempotency_key is not None:
        done = _recorded_action(session, row.id, idempotency_key)
        if done is not None:
            if done != digest:
                raise Problem(
                    422,
                    "idempotency-key-reused",
                    "Idempotency-Key reused",
                    "this Idempotency-Key was used with a different body",
                )
            return request_view(session, row, actor)
    if action == "accept" and clean.get("centre_code"):
        _require_centre(session, clean["centre_code"])
    facts = facts_of(session, row)
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
    client: Client = await ctx.temporal()
    command = ActionInput(action=action, actor=actor, body=clean, key=key, body_hash=digest)
    await send_action(
        client.get_workflow_handle(row.workflow_id),
        action,
        command,
        ctx.settings.workflow_answer_seconds,
    )
    session.expire_all()
    fresh = session.get(CertificationRequest, row.id)
    assert fresh is not None
    return request_view(session, fresh, actor)


def _recorded_action(session: Session, request_id: str, key: str) -> str | None:
    record = find_action(session, request_id, key)
    return None if record is None else record.body_hash


def _require_centre(session: Session, code: str) -> None:
    if session.get(TechnicalCentre, code) is None:
        raise not_found("technical centre", code)
