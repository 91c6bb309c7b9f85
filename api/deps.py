"""Named dependencies: the database session, settings, the authenticated caller, and the
one way routes are authorised.

Checks run in this order on every route: 401 (who are you?) → 403 (may your roles ever
use this route? — ``require``) → 404 (does the addressed resource exist within your
reach?) → 422 (is the body valid?) → 409 (is it allowed now?). FastAPI resolves
dependencies before it validates the body, so authentication, authorisation and resource
look-ups are dependencies, declared in that order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from typing import Annotated, cast

import jwt
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.context import AppContext
from api.problems import Problem
from api.security import decode_access_token
from domain.permissions import ROUTE_ROLES, Actor, Permission, Role, roles_allow
from models.accounts import Product, User
from mutabaqa.db import write_session
from mutabaqa.settings import Settings

TOKEN_URL = "/api/v1/auth/token"

oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


def get_context(request: Request) -> AppContext:
    return cast(AppContext, request.app.state.ctx)


def get_settings(request: Request) -> Settings:
    return get_context(request).settings


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_session(request: Request) -> Iterator[Session]:
    """The session of a **synchronous** route (FastAPI runs it in the thread pool), closed
    as soon as the route returns, before the response is sent.

    A ``GET`` reads (a deferred transaction on SQLite: readers never wait for a writer); any
    other method may write, so its transaction is a write transaction (``BEGIN IMMEDIATE``
    on SQLite: the write lock is taken at the start instead of failing half-way). Such a
    route is short and awaits nothing. Async routes never take this session: they use
    ``AppContext.read``/``write`` around their awaits (a test holds the rule)."""
    engine = get_context(request).engine
    with Session(engine) if request.method in SAFE_METHODS else write_session(engine) as session:
        yield session


def get_read_session(request: Request) -> Iterator[Session]:
    """A read session whatever the method (e.g. the login, which only reads the account
    and must not hold SQLite's write lock while it hashes the password)."""
    with get_context(request).session() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
ContextDep = Annotated[AppContext, Depends(get_context)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]


def unauthenticated(detail: str) -> Problem:
    """401, with the ``WWW-Authenticate`` challenge RFC 6750 asks for."""
    return Problem(
        401,
        "unauthenticated",
        "Not authenticated",
        detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def get_current_user(
    request: Request,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    """The caller, read from the database on every request (so that disabling an account
    or changing its roles takes effect at once, and a token of an earlier ``token_version``
    is refused), in a session of its own closed at once: every route depends on this, async
    ones included."""
    if not token:
        raise unauthenticated("a bearer token is required (POST /api/v1/auth/token)")
    try:
        claims = decode_access_token(token, settings)
    except jwt.ExpiredSignatureError:
        raise unauthenticated("the token has expired; request a new one") from None
    except jwt.InvalidTokenError:
        raise unauthenticated("the token is not valid") from None
    with get_context(request).session() as session:
        user = session.get(User, claims["sub"])
    if user is None or user.disabled:
        raise unauthenticated("the account is unknown or disabled")
    if claims["ver"] != user.token_version:
        raise unauthenticated(
            "the token was revoked (logout, password change or disablement); log in again"
        )
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def actor_of(user: User) -> Actor:
    """The ``Actor`` carried into workflow Updates and audit events."""
    known = {role.value for role in Role}
    return Actor(
        user_id=user.id,
        roles=tuple(Role(role) for role in user.roles if role in known),
        organization_id=user.organization_id,
        centre_code=user.centre_code,
    )


def get_current_actor(user: CurrentUser) -> Actor:
    return actor_of(user)


CurrentActor = Annotated[Actor, Depends(get_current_actor)]


@cache
def require(permission: Permission) -> Callable[[Actor], Actor]:
    """A dependency that answers 403 unless the caller's roles allow ``permission``
    (``domain.permissions.ROUTE_ROLES``), and otherwise returns the caller as an Actor::

        AdminActor = Annotated[Actor, Depends(require(Permission.USERS_MANAGE))]
    """
    allowed = ROUTE_ROLES[permission]

    def dependency(actor: CurrentActor) -> Actor:
        if not roles_allow(actor.roles, allowed):
            raise Problem(
                403,
                "forbidden",
                "Forbidden",
                f"this route needs one of the roles: {', '.join(sorted(allowed))}",
            )
        return actor

    dependency.__name__ = f"require_{permission.name.lower()}"
    dependency.permission = permission  # type: ignore[attr-defined]  # read by api/openapi.py
    return dependency


def not_found(what: str, key: str) -> Problem:
    return Problem(404, "not-found", "Not found", f"no {what} {key!r}")


# --- resources within the caller's reach ---------------------------------------------------

ManufacturerActor = Annotated[Actor, Depends(require(Permission.PRODUCTS_MANAGE))]


def get_own_product(product_id: str, actor: ManufacturerActor, session: SessionDep) -> Product:
    """A product of the caller's organisation; another organisation's product is 404, as
    if it did not exist."""
    product = session.get(Product, product_id)
    if product is None or product.organization_id != actor.organization_id:
        raise not_found("product", product_id)
    return product


OwnProduct = Annotated[Product, Depends(get_own_product)]


def commit_or_conflict(session: Session, detail: str) -> None:
    """Commit; a unique constraint violated meanwhile (two callers racing) answers 409."""
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Problem(409, "conflict", "Conflict", detail) from None
