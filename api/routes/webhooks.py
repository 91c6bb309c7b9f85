"""The caller's organisation's webhook (manufacturers) and its delivery log.

One webhook per organisation. ``PUT`` creates it (201, with its signing secret, shown this
once) or changes its URL (200; ``rotate_secret`` shows a new secret); ``DELETE``
deactivates it, which also cancels deliveries still being retried. Every change is an
audit event on the organisation's chain; the secret never appears in it.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Response
from sqlmodel import Session, select

from api.deps import SessionDep, SettingsDep, commit_or_conflict, require
from api.pagination import Page, PageParamsDep, paginate
from api.problems import Problem
from domain.permissions import Actor, Permission, Role
from models.types import utcnow
from models.webhooks import (
    Webhook,
    WebhookDelivery,
    WebhookDeliveryPublic,
    WebhookPublic,
    WebhookUpdate,
    WebhookWithSecret,
    organization_chain,
)
from mutabaqa.settings import Settings
from records.audit import append_event
from records.webhooks import new_secret

router = APIRouter(prefix="/webhook", tags=["webhooks"])

WebhookManager = Annotated[Actor, Depends(require(Permission.WEBHOOKS_MANAGE))]


def _organization_of(actor: Actor) -> str:
    if actor.organization_id is None:
        raise Problem(
            409,
            "no-organization",
            "Conflict",
            "your account belongs to no organisation; ask an admin to attach it to one",
        )
    return actor.organization_id


def _no_webhook() -> Problem:
    return Problem(
        404, "not-found", "Not found", "your organisation has no webhook; create it with PUT"
    )


def _refuse_internal_target(url: str, settings: Settings) -> None:
    """Outside development, refuse URLs naming a loopback or private address outright (the
    worker also checks what a host name resolves to, at each delivery)."""
    if settings.is_development:
        return
    host = urlsplit(url).hostname or ""
    internal = host == "localhost" or host.endswith(".localhost")
    with contextlib.suppress(ValueError):  # a host name, not an address
        internal = internal or not ipaddress.ip_address(host).is_global
    if internal:
        raise Problem(
            422,
            "webhook-target-not-allowed",
            "Webhook target not allowed",
            f"{host!r} is not a public address; webhooks are delivered to public hosts only",
        )


def _audit(session: Session, actor: Actor, action: str, detail: dict[str, Any]) -> None:
    organization_id = _organization_of(actor)
    append_event(
        session,
        chain=organization_chain(organization_id),
        actor=actor,
        actor_role=Role.MANUFACTURER,
        action=action,
        object_type="webhook",
        object_id=organization_id,
        detail=detail,
    )


@router.put(
    "",
    response_model=WebhookWithSecret,
    response_model_exclude_none=True,
    responses={
        201: {"model": WebhookWithSecret, "description": "Created, with its secret."},
        409: {"description": "The caller's account belongs to no organisation."},
        422: {"description": "An invalid URL, or (in production) one naming a private host."},
    },
)
def put_webhook(
    actor: WebhookManager,
    body: WebhookUpdate,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> WebhookWithSecret:
    """Create (201) or change (200) the organisation's webhook; it is active afterwards.

    The signing secret is in the answer only when the webhook is created or
    ``rotate_secret`` is true: store it then, it is not shown again."""
    organization_id = _organization_of(actor)
    _refuse_internal_target(body.url, settings)
    webhook = session.get(Webhook, organization_id, with_for_update=True)
    secret: str | None = None
    if webhook is None:
        secret = new_secret()
        webhook = Webhook(organization_id=organization_id, url=body.url, secret=secret)
        session.add(webhook)
        session.flush()
        _audit(session, actor, "webhook.create", {"after": {"url": body.url, "active": True}})
        response.status_code = 201
    else:
        before = {"url": webhook.url, "active": webhook.active}
        after = {"url": body.url, "active": True}
        if before != after or body.rotate_secret:
            webhook.url = body.url
            webhook.active = True
            if body.rotate_secret:
                secret = webhook.secret = new_secret()
            webhook.updated_at = utcnow()
            session.add(webhook)
            detail = {"before": before, "after": after, "secret_rotated": body.rotate_secret}
            _audit(session, actor, "webhook.update", detail)
    public = WebhookWithSecret(**WebhookPublic.model_validate(webhook).model_dump(), secret=secret)
    commit_or_conflict(session, "the webhook was created meanwhile; try again")
    return public


_NO_WEBHOOK_DOC: dict[int | str, dict[str, Any]] = {
    404: {"description": "The organisation has no webhook (create it with PUT)."}
}


@router.get("", response_model=WebhookPublic, responses=_NO_WEBHOOK_DOC)
def get_webhook(actor: WebhookManager, session: SessionDep) -> WebhookPublic:
    """The organisation's webhook (never its secret)."""
    webhook = session.get(Webhook, actor.organization_id) if actor.organization_id else None
    if webhook is None:
        raise _no_webhook()
    return WebhookPublic.model_validate(webhook)


@router.delete(
    "",
    response_model=WebhookPublic,
    responses={
        **_NO_WEBHOOK_DOC,
        409: {"description": "The caller's account belongs to no organisation."},
    },
)
def deactivate_webhook(actor: WebhookManager, session: SessionDep) -> WebhookPublic:
    """Stop deliveries (pending retries are cancelled); ``PUT`` activates it again with the
    same secret."""
    organization_id = _organization_of(actor)
    webhook = session.get(Webhook, organization_id, with_for_update=True)
    if webhook is None:
        raise _no_webhook()
    if webhook.active:
        webhook.active = False
        webhook.updated_at = utcnow()
        session.add(webhook)
        _audit(session, actor, "webhook.deactivate", {"url": webhook.url})
    public = WebhookPublic.model_validate(webhook)
    session.commit()
    return public


@router.get("/deliveries", response_model=Page[WebhookDeliveryPublic])
def list_deliveries(
    actor: WebhookManager, session: SessionDep, page: PageParamsDep
) -> Page[WebhookDeliveryPublic]:
    """The organisation's delivery log, newest first: attempts, last answer, delivery time."""
    statement = select(WebhookDelivery).where(
        WebhookDelivery.organization_id == actor.organization_id
    )
    return paginate(
        session,
        statement,
        page,
        WebhookDeliveryPublic.model_validate,
        order=(WebhookDelivery.created_at, WebhookDelivery.id),
    )
