"""Certificates for those who may read them: holders (their organisation), officers, and
technicians of the centre that tested. The public facts are in ``public.py``."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header
from fastapi.responses import RedirectResponse
from pydantic import BaseModel
from sqlmodel import Session, col, or_, select
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from api.context import AppContext
from api.deps import CurrentActor, SessionDep, get_context, not_found, require
from api.masking import shown_name
from api.pagination import Page, PageParamsDep, paginate
from api.problems import Problem
from api.workflow_calls import problem_from_failure, try_again_later, unavailable
from domain import certificate_lifecycle as lifecycle
from domain.keys import client_key, update_id
from domain.permissions import Actor, Permission, Role
from domain.request_rules import Refusal
from models.audit import AuditEvent
from models.certificate_lifecycle import CertificateActionBody, CertificateCommand
from models.lab import Certificate, CertificateStatus
from models.request_api import Timeline, TimelineItem
from records.actions import find_action
from records.canonical import action_digest
from records.certificates import certificate_chain, transition_key

router = APIRouter(prefix="/certificates", tags=["certificates"])

ReaderActor = Annotated[Actor, Depends(require(Permission.CERTIFICATES_READ))]
ContextDep = Annotated[AppContext, Depends(get_context)]
PDF_LINK_VALID_FOR = timedelta(minutes=5)


class CertificateView(BaseModel):
    number: str
    allowed_actions: list[str] = []
    issue: int
    status: CertificateStatus
    status_since: datetime
    request_id: str
    centre: str
    issued_on: date
    valid_until: date
    payload: dict[str, Any]
    signature: str | None
    key_id: str | None
    pdf_sha256: str | None
    pdf_size: int | None


def certificate_view(row: Certificate, actor: Actor | None = None) -> CertificateView:
    return CertificateView(
        allowed_actions=(
            lifecycle.allowed_actions(row.status, row.organization_id, row.centre_code, actor)
            if actor is not None
            else []
        ),
        number=row.number,
        issue=row.issue,
        status=row.status,
        status_since=row.status_since,
        request_id=row.request_id,
        centre=row.centre_code,
        issued_on=row.issued_on,
        valid_until=row.valid_until,
        payload=row.payload,
        signature=row.signature,
        key_id=row.kid,
        pdf_sha256=row.pdf_sha256,
        pdf_size=row.pdf_size,
    )


def _reach(actor: Actor) -> sa.ColumnElement[bool]:
    clauses: list[sa.ColumnElement[bool]] = []
    if actor.has(Role.COMPLIANCE_OFFICER):
        clauses.append(sa.true())
    if actor.has(Role.MANUFACTURER) and actor.organization_id:
        clauses.append(col(Certificate.organization_id) == actor.organization_id)
    if actor.has(Role.LAB_TECHNICIAN) and actor.centre_code:
        clauses.append(col(Certificate.centre_code) == actor.centre_code)
    return or_(sa.false(), *clauses)


def get_readable(number: str, actor: ReaderActor, ctx: ContextDep) -> Certificate:
    """The latest issue of ``number`` within the caller's reach; 404 otherwise (in a short
    session of its own: the certificate actions await Temporal)."""
    with ctx.session() as session:
        return readable(session, number, actor)


def readable(session: Session, number: str, actor: Actor) -> Certificate:
    row = session.exec(
        select(Certificate)
        .where(Certificate.number == number, _reach(actor))
        .order_by(col(Certificate.issue).desc())
    ).first()
    if row is None:
        raise not_found("certificate", number)
    return row


Readable = Annotated[Certificate, Depends(get_readable)]


@router.get("", response_model=Page[CertificateView])
def list_certificates(
    actor: ReaderActor, session: SessionDep, page: PageParamsDep
) -> Page[CertificateView]:
    """Certificates within the caller's reach, newest first."""
    return paginate(
        session,
        select(Certificate).where(_reach(actor)),
        page,
        lambda row: certificate_view(row, actor),
        order=(Certificate.created_at, Certificate.id),
    )


@router.get("/{number}", response_model=CertificateView)
def get_certificate(row: Readable, actor: ReaderActor) -> CertificateView:
    return certificate_view(row, actor)


@router.get("/{number}/timeline", response_model=Timeline)
def certificate_timeline(row: Readable, actor: ReaderActor, session: SessionDep) -> Timeline:
    """Every recorded event of the certificate (all issues): its own audit chain."""
    return certificate_timeline_of(session, row, actor)


def certificate_timeline_of(session: Session, row: Certificate, actor: Actor) -> Timeline:
    """The certificate's timeline as ``actor`` may see it (the JSON route and the portal)."""
    events = session.exec(
        select(AuditEvent)
        .where(AuditEvent.chain == certificate_chain(row.number))
        .order_by(col(AuditEvent.seq))
    ).all()
    return Timeline(
        items=[
            TimelineItem(
                at=e.at,
                action=e.action,
                actor=shown_name(
                    actor,
                    e.actor_id,
                    e.actor_role,
                    {e.actor_id: e.actor_name} if e.actor_id and e.actor_name else {},
                ),
                actor_role=e.actor_role,
                detail=e.detail | {"from": e.from_status, "to": e.to_status},
            )
            for e in events
        ]
    )


def check_certificate_role(action: str, actor: CurrentActor) -> str:
    try:
        lifecycle.check_role(action, actor)
    except Refusal as refusal:
        raise Problem(refusal.status, refusal.kind, "Refused", refusal.detail) from None
    return action


@router.post(
    "/{number}/actions/{action}",
    response_model=CertificateView,
    responses={
        403: {"description": "The caller's roles do not allow this action."},
        404: {"description": "No such certificate within reach, or no such action."},
        409: {"description": "The action is not allowed in the certificate's present state."},
        422: {"description": "An invalid body, or an Idempotency-Key used with another body."},
    },
)
async def certificate_action(
    action: Annotated[str, Depends(check_certificate_role)],
    row: Readable,
    body: CertificateActionBody,
    actor: CurrentActor,
    ctx: ContextDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=180)
    ] = None,
) -> CertificateView:
    """``suspend``, ``restore``, ``withdraw``, ``reissue`` (officer) or ``terminate`` (the
    holder), each with a reason; answers the certificate as stored afterwards. A repeat with
    the same ``Idempotency-Key`` answers the certificate as stored, also once the status
    has changed (e.g. after a 503 whose action went through)."""
    return await perform_certificate_action(ctx, row, action, actor, body, idempotency_key)


async def perform_certificate_action(
    ctx: AppContext,
    row: Certificate,
    action: str,
    actor: Actor,
    body: CertificateActionBody,
    idempotency_key: str | None,
) -> CertificateView:
    """One certificate action on ``row`` (read within the caller's reach, the role checked
    by ``check_certificate_role``): the JSON route's and the portal's one path. Refusals
    are problems and change nothing."""
    digest = action_digest(action, body.model_dump(mode="json"))
    key = client_key(idempotency_key or uuid.uuid4().hex)
    if idempotency_key is not None:
        done = await ctx.read(find_action, row.request_id, transition_key(key))
        if done is not None:
            # Rows recorded before digests were kept carry none: their action must match.
            if done.body_hash != digest and (done.body_hash or done.action != action):
                raise Problem(
                    422,
                    "idempotency-key-reused",
                    "Idempotency-Key reused",
                    f"this Idempotency-Key was used for {done.action!r} with another body",
                )
            return certificate_view(row, actor)
    try:
        lifecycle.check(action, row.status, row.organization_id, row.centre_code, actor)
    except Refusal as refusal:
        raise Problem(
            refusal.status,
            refusal.kind,
            "Not allowed now",
            refusal.detail,
            certificate_status=row.status.value,
            allowed_actions=lifecycle.allowed_actions(
                row.status, row.organization_id, row.centre_code, actor
            ),
        ) from None
    command = CertificateCommand(
        action=action,
        actor=actor,
        reason=body.reason,
        scope=body.scope,
        key=key,
        body_hash=digest,
    )
    client = await ctx.temporal()
    handle = client.get_workflow_handle(f"certificate-{row.number}")
    try:
        async with asyncio.timeout(ctx.settings.workflow_answer_seconds):
            await handle.execute_update(
                action, command, id=update_id(command.key, command.body_hash)
            )
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise unavailable() from None
    except WorkflowUpdateFailedError as exc:
        problem = problem_from_failure(exc)
        problem.extra.setdefault("certificate_status", row.status.value)
        raise problem from None
    except RPCError as exc:
        if try_again_later(exc):
            raise unavailable() from None
        raise
    return certificate_view(await ctx.read(readable, row.number, actor), actor)


@router.get(
    "/{number}/pdf",
    status_code=307,
    response_class=RedirectResponse,
    responses={307: {"description": "redirect to a presigned URL valid for five minutes"}},
)
def certificate_pdf(
    row: Readable, ctx: Annotated[AppContext, Depends(get_context)]
) -> RedirectResponse:
    """The signed PDF of the latest issue, through a short-lived presigned URL."""
    return pdf_redirect(ctx, row)


def pdf_redirect(ctx: AppContext, row: Certificate) -> RedirectResponse:
    """The presigned redirect to ``row``'s PDF (read within the caller's reach: ``readable``),
    or 404 ``certificate-pdf-pending`` while it is being rendered (the JSON route and the
    portal)."""
    if row.pdf_key is None:  # rendered and signed just after the grant, in the background
        raise Problem(
            404,
            "certificate-pdf-pending",
            "Not found yet",
            f"the PDF of certificate {row.number} is being rendered; try again shortly",
            headers={"Retry-After": "2"},
        )
    url = ctx.presigner.presigned_get_object(
        ctx.settings.s3_certificates_bucket,
        row.pdf_key,
        expires=PDF_LINK_VALID_FOR,
        version_id=row.pdf_version_id,
        response_headers={
            "response-content-type": "application/pdf",
            "response-content-disposition": f'inline; filename="{row.number}.pdf"',
        },
    )
    return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
