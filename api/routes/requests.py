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
from temporalio.service import RPCError, RPCStatusCode

from api.context import AppContext
from api.deps import CurrentActor, SessionDep, get_context, not_found, require
from api.masking import shown_name
from api.pagination import Page, PageParams, PageParamsDep, page_of
from api.problems import Problem
from api.request_actions import (
    ActionName,
    get_actionable_request,
    key_reused,
    perform_action,
    visible_request,
)
from api.request_views import request_view, scheme_info
from api.workflow_calls import unavailable
from domain.permissions import CLIENT_REQUEST_KINDS, Actor, Permission, Role
from models import search_attributes as attrs
from models.accounts import Product
from models.audit import AuditEvent, request_chain
from models.reference import Scheme
from models.request_api import (
    RequestCreate,
    RequestPublic,
    RequestSummary,
    Timeline,
    TimelineItem,
)
from models.request_payloads import (
    PlanEntry,
    RequestRef,
    RequestWorkflowInput,
    SchemeSnapshot,
)
from models.requests import (
    CertificationRequest,
    RequestStatus,
)
from models.workflow_names import REQUEST_WORKFLOW
from mutabaqa.timing import timing_of

router = APIRouter(prefix="/requests", tags=["requests"])

#: The request workflow's type name (started by name: the API does not load workflow code).

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
    return visible_request(session, request_id, actor)


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
    return request_summaries(session, actor, page, status_, centre, scheme, q)


def request_summaries(
    session: Session,
    actor: Actor,
    page: PageParams,
    status_: RequestStatus | None = None,
    centre: str | None = None,
    scheme: str | None = None,
    q: str | None = None,
    *,
    longest_unchanged_first: bool = False,
) -> Page[RequestSummary]:
    """One page of the requests within ``actor``'s reach (the JSON list and the portal's
    home page): newest first, or with ``longest_unchanged_first`` by their last change,
    oldest first (the portal's work lists: a cap never drops the longest waiting)."""
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
        words = q.strip()  # matched literally: % and _ are not wildcards
        product_ids = select(Product.id).where(col(Product.name).icontains(words, autoescape=True))
        statement = statement.where(
            or_(
                col(CertificationRequest.number).icontains(words, autoescape=True),
                col(CertificationRequest.product_id).in_(product_ids),
            )
        )
    if longest_unchanged_first:
        order = (CertificationRequest.updated_at, CertificationRequest.id)
    else:
        order = (CertificationRequest.created_at, CertificationRequest.id)
    rows, next_cursor = page_of(session, statement, page, order, ascending=longest_unchanged_first)
    # Product names of the page in one query (not one per row).
    ids = {row.product_id for row in rows}
    names = (
        dict(session.exec(select(Product.id, Product.name).where(col(Product.id).in_(ids))).all())
        if ids
        else {}
    )
    items = [
        RequestSummary(
            id=row.id,
            number=row.number,
            status=row.status,
            kind=row.kind,
            product_name=names.get(row.product_id, ""),
            scheme_code=row.scheme_code,
            centre=row.centre_code,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in rows
    ]
    return Page(items=items, next_cursor=next_cursor)


@router.get("/{request_id}", response_model=RequestPublic)
def get_request(row: VisibleRequest, actor: ReaderActor, session: SessionDep) -> RequestPublic:
    return request_view(session, row, actor)


@router.get("/{request_id}/timeline", response_model=Timeline)
def get_timeline(row: VisibleRequest, actor: ReaderActor, session: SessionDep) -> Timeline:
    """Every recorded event of the request; manufacturers see roles, not staff names."""
    return timeline_of(session, row, actor)


def timeline_of(session: Session, row: CertificationRequest, actor: Actor) -> Timeline:
    """The request's timeline as ``actor`` may see it (names masked by ``api.masking``)."""
    events = session.exec(
        select(AuditEvent)
        .where(AuditEvent.chain == request_chain(row.id))
        .order_by(col(AuditEvent.seq))
    ).all()
    items = []
    for e in events:
        names = {e.actor_id: e.actor_name} if e.actor_id and e.actor_name else {}
        items.append(
            TimelineItem(
                at=e.at,
                action=e.action,
                actor=shown_name(actor, e.actor_id, e.actor_role, names),
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
        raise key_reused()
    return row


def _prepare_create(
    session: Session,
    data: RequestCreate,
    actor: Actor,
    idempotency_key: str | None,
    digest: str,
    timing: Any,
) -> RequestPublic | RequestWorkflowInput:
    """Everything the creation needs from the record, read before Temporal is called: the
    stored request when the key was used already, otherwise the workflow's input."""
    assert actor.organization_id is not None
    product = session.get(Product, data.product_id)
    if product is None or product.organization_id != actor.organization_id:
        raise not_found("product", data.product_id)
    scheme = session.exec(
        select(Scheme).where(Scheme.code == data.scheme_code).order_by(col(Scheme.version).desc())
    ).first()
    if scheme is None or scheme.id is None:
        raise not_found("scheme", data.scheme_code)
    if idempotency_key is not None:
        existing = _existing_for_key(session, actor.organization_id, idempotency_key, digest)
        if existing is not None:
            return request_view(session, existing, actor)
    return RequestWorkflowInput(
        request_id=uuid.uuid4().hex,
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
                for code, mandatory in scheme_info(session, scheme.id).plan.items()
            ),
        ),
        kind=data.kind,
        scope=data.scope or f"{scheme.title} — {product.name} ({product.brand} {product.model})",
        actor=actor,
        idempotency_key=idempotency_key,
        idempotency_hash=digest,
        timing=timing,
    )


def _created_view(
    session: Session,
    request_id: str | None,
    actor: Actor,
    idempotency_key: str | None,
    digest: str,
) -> tuple[RequestPublic, bool]:
    """The request as stored after creation, and whether this call created it (False: an
    earlier call with the same key did)."""
    assert actor.organization_id is not None
    if request_id is None:  # the workflow for this key has finished: the record has it
        assert idempotency_key is not None
        row = _existing_for_key(session, actor.organization_id, idempotency_key, digest)
        if row is None:
            raise unavailable()
        return request_view(session, row, actor), False
    row = session.get(CertificationRequest, request_id)
    if row is None:
        raise unavailable()
    if idempotency_key is not None and row.idempotency_hash != digest:
        raise key_reused()
    return request_view(session, row, actor), True


@router.post(
    "",
    response_model=RequestPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "a repeat with the same Idempotency-Key"},
        403: {"description": "The caller's roles, or a kind of request only the system opens."},
        404: {"description": "No such product of the caller's organisation, or no such scheme."},
        409: {"description": "The caller's account belongs to no organisation."},
        422: {"description": "An invalid body, or an Idempotency-Key used with another body."},
    },
)
async def create_request(
    data: RequestCreate,
    response: Response,
    actor: CreatorActor,
    ctx: ContextDep,
    idempotency_key: IdempotencyKey = None,
) -> RequestPublic:
    view, new = await create_request_as(ctx, actor, data, idempotency_key)
    if not new:
        response.status_code = status.HTTP_200_OK
    return view


async def create_request_as(
    ctx: AppContext, actor: Actor, data: RequestCreate, idempotency_key: str | None
) -> tuple[RequestPublic, bool]:
    """Create a request for ``actor`` (who holds ``requests:create``; the JSON route and
    the portal's form): the request as stored, and whether this call created it (False: a
    repeat of the same ``idempotency_key``)."""
    if data.kind not in CLIENT_REQUEST_KINDS:
        raise Problem(
            403,
            "forbidden",
            "Forbidden",
            f"requests of kind {data.kind.value!r} are opened by the system only "
            f"(allowed: {', '.join(sorted(CLIENT_REQUEST_KINDS))})",
        )
    if actor.organization_id is None:
        raise Problem(
            409, "no-organization", "Not allowed now", "your account belongs to no organisation"
        )
    digest = body_hash(data.model_dump(mode="json"))
    prepared = await ctx.read(
        _prepare_create, data, actor, idempotency_key, digest, timing_of(ctx.settings)
    )
    if isinstance(prepared, RequestPublic):
        return prepared, False
    params = prepared
    client = await ctx.temporal()
    workflow_id = workflow_id_for(actor.organization_id, idempotency_key, params.request_id)
    start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        REQUEST_WORKFLOW,
        params,
        id=workflow_id,
        task_queue=ctx.settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(attrs.STATUS, RequestStatus.DRAFT.value),
            SearchAttributePair(attrs.MANUFACTURER, actor.organization_id),
            SearchAttributePair(attrs.SCHEME, params.scheme.code),
            SearchAttributePair(attrs.KIND, data.kind.value),
        ]),
    )  # fmt: skip
    created_id: str | None
    try:
        async with asyncio.timeout(ctx.settings.workflow_answer_seconds):
            ref = await client.execute_update_with_start_workflow(
                "created", start_workflow_operation=start, id="created", result_type=RequestRef
            )
        created_id = ref.request_id
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise unavailable() from None
    except WorkflowAlreadyStartedError:
        if idempotency_key is None:
            raise unavailable() from None
        created_id = None
    except RPCError as exc:
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise unavailable() from None
        raise
    view, new = await ctx.read(_created_view, created_id, actor, idempotency_key, digest)
    # not new, or another id: another call with this key created it
    return view, new and view.id == params.request_id


# --- actions (api/request_actions.py holds their logic, shared with the portal) ----------


@router.post(
    "/{request_id}/actions/{action}",
    response_model=RequestPublic,
    responses={
        403: {"description": "The caller's roles do not allow this action."},
        404: {"description": "No such request within reach, no such action or test item."},
        409: {"description": "The action is not allowed in the request's present state."},
        422: {"description": "An invalid body, or an Idempotency-Key used with another body."},
        500: {"description": "The action's activity failed for good (`action-failed`)."},
    },
)
async def act(
    action: ActionName,
    row: Annotated[CertificationRequest, Depends(get_actionable_request)],
    actor: CurrentActor,
    ctx: ContextDep,
    body: Annotated[dict[str, Any] | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> RequestPublic:
    """Take an action of SPEC section 4; answers the request as stored afterwards."""
    return await perform_action(ctx, row.id, action, actor, body or {}, idempotency_key)
