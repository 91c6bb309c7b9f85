"""Reference data: technical centres and versioned certification schemes.

``GET /schemes`` lists the latest version of each scheme; ``GET /schemes/{code}`` answers
the latest version too, or the one named by ``?version=``. A published version never
changes (requests keep the version they started with): publish a change as a new version.
Both lists are short reference lists, returned whole rather than paginated.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from sqlmodel import Session, col, select

from api.deps import SessionDep, commit_or_conflict, not_found, require
from api.problems import Problem
from domain.permissions import Actor, Permission, Role
from models.audit import ADMIN_CHAIN
from models.reference import (
    Scheme,
    SchemeCreate,
    SchemePublic,
    TechnicalCentre,
    TechnicalCentrePublic,
    TestItem,
    TestItemPublic,
)
from models.types import SQL_INT_MAX
from mutabaqa.seed import add_scheme
from records.audit import append_event

router = APIRouter(tags=["reference"])

CentresReader = Annotated[Actor, Depends(require(Permission.CENTRES_READ))]
SchemesReader = Annotated[Actor, Depends(require(Permission.SCHEMES_READ))]
SchemesAdmin = Annotated[Actor, Depends(require(Permission.SCHEMES_MANAGE))]


def scheme_public(session: Session, scheme: Scheme) -> SchemePublic:
    """A stored scheme with its test plan, in plan order (limits serialise as strings)."""
    items = session.exec(
        select(TestItem).where(TestItem.scheme_id == scheme.id).order_by(col(TestItem.position))
    ).all()
    return SchemePublic.model_validate(
        scheme.model_dump(exclude={"created_at"})
        | {"test_items": [TestItemPublic.model_validate(item.model_dump()) for item in items]}
    )


@router.get("/technical-centres", response_model=list[TechnicalCentrePublic])
def list_centres(_actor: CentresReader, session: SessionDep) -> list[TechnicalCentrePublic]:
    """Active technical centres, by code."""
    centres = session.exec(
        select(TechnicalCentre)
        .where(col(TechnicalCentre.active).is_(True))
        .order_by(col(TechnicalCentre.code))
    ).all()
    return [TechnicalCentrePublic.model_validate(centre.model_dump()) for centre in centres]


@router.get("/schemes", response_model=list[SchemePublic])
def list_schemes(_actor: SchemesReader, session: SessionDep) -> list[SchemePublic]:
    """The latest version of every scheme, by code."""
    latest = (
        select(col(Scheme.code), sa.func.max(Scheme.version).label("version"))
        .group_by(col(Scheme.code))
        .subquery()
    )
    schemes = session.exec(
        select(Scheme)
        .join(
            latest,
            sa.and_(col(Scheme.code) == latest.c.code, col(Scheme.version) == latest.c.version),
        )
        .order_by(col(Scheme.code))
    ).all()
    return [scheme_public(session, scheme) for scheme in schemes]


@router.get("/schemes/{code}", response_model=SchemePublic)
def get_scheme(
    code: str,
    _actor: SchemesReader,
    session: SessionDep,
    version: Annotated[
        int | None,
        Query(ge=1, le=SQL_INT_MAX, description="A published version; the latest when omitted."),
    ] = None,
) -> SchemePublic:
    statement = select(Scheme).where(Scheme.code == code)
    if version is None:
        statement = statement.order_by(col(Scheme.version).desc()).limit(1)
    else:
        statement = statement.where(Scheme.version == version)
    scheme = session.exec(statement).first()
    if scheme is None:
        raise not_found("scheme", code if version is None else f"{code} version {version}")
    return scheme_public(session, scheme)


@router.post(
    "/schemes",
    status_code=201,
    response_model=SchemePublic,
    responses={409: {"description": "This version of the scheme exists."}},
)
def create_scheme(actor: SchemesAdmin, body: SchemeCreate, session: SessionDep) -> SchemePublic:
    """Publish a scheme, or a new version of one (an existing code and version is 409)."""
    label = f"{body.code} version {body.version}"
    duplicate = f"scheme {label} already exists; publish a new version instead"
    existing = session.exec(
        select(Scheme).where(Scheme.code == body.code, Scheme.version == body.version)
    ).first()
    if existing is not None:
        raise Problem(409, "conflict", "Conflict", duplicate)
    scheme = add_scheme(session, body)
    session.flush()
    assert scheme.id is not None
    append_event(
        session,
        chain=ADMIN_CHAIN,
        actor=actor,
        actor_role=Role.ADMIN,
        action="scheme.create",
        object_type="scheme",
        object_id=str(scheme.id),
        detail={
            "code": body.code,
            "version": body.version,
            "sector": body.sector,
            "decision_rule": body.decision_rule.value,
            "test_items": [item.code for item in body.test_items],
        },
    )
    public = scheme_public(session, scheme)
    commit_or_conflict(session, duplicate)
    return public
