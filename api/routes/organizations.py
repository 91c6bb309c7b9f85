"""Manufacturer organisations (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlmodel import select

from api.deps import SessionDep, commit_or_conflict, require
from api.pagination import Page, PageParamsDep, paginate
from api.problems import Problem
from domain.permissions import Actor, Permission, Role
from models.accounts import Organization, OrganizationCreate, OrganizationPublic
from models.audit import ADMIN_CHAIN
from records.audit import append_event

router = APIRouter(prefix="/organizations", tags=["organizations"])

OrganizationsAdmin = Annotated[Actor, Depends(require(Permission.ORGANIZATIONS_MANAGE))]


def _duplicate(registration_id: str) -> str:
    return f"an organisation with registration id {registration_id!r} already exists"


@router.post(
    "",
    status_code=201,
    response_model=OrganizationPublic,
    responses={409: {"description": "An organisation with this registration id exists."}},
)
def create_organization(
    actor: OrganizationsAdmin, body: OrganizationCreate, session: SessionDep
) -> OrganizationPublic:
    existing = session.exec(
        select(Organization).where(Organization.registration_id == body.registration_id)
    ).first()
    if existing is not None:
        raise Problem(409, "conflict", "Conflict", _duplicate(body.registration_id))
    organization = Organization.model_validate(body.model_dump())
    session.add(organization)
    session.flush()
    append_event(
        session,
        chain=ADMIN_CHAIN,
        actor=actor,
        actor_role=Role.ADMIN,
        action="organization.create",
        object_type="organization",
        object_id=organization.id,
        detail={"after": body.model_dump(mode="json")},
    )
    public = OrganizationPublic.model_validate(organization)
    commit_or_conflict(session, _duplicate(body.registration_id))
    return public


@router.get("", response_model=Page[OrganizationPublic])
def list_organizations(
    _actor: OrganizationsAdmin, session: SessionDep, page: PageParamsDep
) -> Page[OrganizationPublic]:
    """Every organisation, newest first."""
    return paginate(
        session,
        select(Organization),
        page,
        OrganizationPublic.model_validate,
        order=(Organization.created_at, Organization.id),
    )
