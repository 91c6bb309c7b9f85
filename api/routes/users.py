"""User accounts and their roles (admin).

Rules beyond the payload schema, checked in the API's order (404 → 422 → 409):
- ``organization_id`` and ``centre_code`` must name an existing organisation and an
  existing technical centre (404 otherwise);
- a ``manufacturer`` belongs to an organisation and a ``lab_technician`` to a centre
  (422 otherwise), since neither can do anything without one;
- e-mail addresses are unique, compared in lower case (409);
- an admin cannot disable their own account nor remove their own admin role (409), so that
  the last admin cannot lock everyone out by mistake.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from api.deps import ContextDep, CurrentUser, SessionDep, not_found, require
from api.pagination import Page, PageParamsDep, paginate
from api.problems import Problem
from domain.permissions import Actor, Permission, Role
from models.accounts import Organization, User, UserCreate, UserPublic, UserUpdate
from models.audit import ADMIN_CHAIN
from models.reference import TechnicalCentre
from models.types import utcnow
from records.audit import append_event

router = APIRouter(prefix="/users", tags=["users"])

UsersAdmin = Annotated[Actor, Depends(require(Permission.USERS_MANAGE))]


def get_user(user_id: str, _actor: UsersAdmin, ctx: ContextDep) -> User:
    """The addressed user (404 otherwise), read in a short session of its own."""
    with ctx.session() as session:
        user = session.get(User, user_id)
    if user is None:
        raise not_found("user", user_id)
    return user


TargetUser = Annotated[User, Depends(get_user)]


def _public(user: User) -> UserPublic:
    return UserPublic.model_validate(user)


def _check_references(
    session: Session, organization_id: str | None, centre_code: str | None
) -> None:
    if organization_id is not None and session.get(Organization, organization_id) is None:
        raise not_found("organisation", organization_id)
    if centre_code is not None and session.get(TechnicalCentre, centre_code) is None:
        raise not_found("technical centre", centre_code)


def _check_affiliation(
    roles: list[str], organization_id: str | None, centre_code: str | None
) -> None:
    if Role.MANUFACTURER in roles and organization_id is None:
        raise Problem(
            422,
            "invalid-body",
            "Invalid request",
            "a user with the manufacturer role needs an organization_id",
        )
    if Role.LAB_TECHNICIAN in roles and centre_code is None:
        raise Problem(
            422,
            "invalid-body",
            "Invalid request",
            "a user with the lab_technician role needs a centre_code",
        )


def _duplicate(email: str) -> str:
    return f"a user with e-mail {email!r} already exists"


@router.post(
    "",
    status_code=201,
    response_model=UserPublic,
    responses={
        404: {"description": "No such organisation or technical centre."},
        409: {"description": "A user with this e-mail address exists."},
    },
)
async def create_user(actor: UsersAdmin, body: UserCreate, ctx: ContextDep) -> UserPublic:
    # Hashed first, outside the write transaction (and within the process's bound).
    password_hash = await ctx.passwords.hash(body.password)
    return await ctx.write(_create_user, actor, body, password_hash)


def _create_user(
    session: Session, actor: Actor, body: UserCreate, password_hash: str
) -> UserPublic:
    _check_references(session, body.organization_id, body.centre_code)
    roles = list(dict.fromkeys(role.value for role in body.roles))
    _check_affiliation(roles, body.organization_id, body.centre_code)
    if session.exec(select(User).where(User.email == body.email)).first() is not None:
        raise Problem(409, "conflict", "Conflict", _duplicate(body.email))
    user = User(
        email=body.email,
        full_name=body.full_name,
        organization_id=body.organization_id,
        centre_code=body.centre_code,
        roles=roles,
        password_hash=password_hash,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # the same e-mail created meanwhile
        raise Problem(409, "conflict", "Conflict", _duplicate(body.email)) from None
    append_event(
        session,
        chain=ADMIN_CHAIN,
        actor=actor,
        actor_role=Role.ADMIN,
        action="user.create",
        object_type="user",
        object_id=user.id,
        detail={"after": body.model_dump(mode="json", exclude={"password"}) | {"roles": roles}},
    )
    return _public(user)


@router.get("/me", response_model=UserPublic, summary="The caller's own account")
def who_am_i(user: CurrentUser) -> UserPublic:
    """The account the bearer token belongs to (any role): its roles, organisation and
    centre, as a client shows them after logging in."""
    return _public(user)


@router.get("", response_model=Page[UserPublic])
def list_users(_actor: UsersAdmin, session: SessionDep, page: PageParamsDep) -> Page[UserPublic]:
    """Every user, newest first."""
    return paginate(session, select(User), page, _public, order=(User.created_at, User.id))


@router.patch(
    "/{user_id}",
    response_model=UserPublic,
    responses={
        404: {"description": "No such user, organisation or technical centre."},
        409: {"description": "An admin cannot disable themselves or drop their admin role."},
    },
)
async def update_user(
    user: TargetUser, actor: UsersAdmin, body: UserUpdate, ctx: ContextDep
) -> UserPublic:
    """Change roles, disable or enable, rename, re-affiliate or set a new password. Fields
    left out are unchanged; ``organization_id`` or ``centre_code`` set to ``null`` clear
    them. Takes effect on the user's next request; a new password or a disablement also
    revokes every token the user holds (re-enabling does not bring them back)."""
    password_hash = None
    if body.password is not None:
        # Hashed first, outside the write transaction (and within the process's bound).
        password_hash = await ctx.passwords.hash(body.password)
    return await ctx.write(_update_user, user.id, actor, body, password_hash)


def _update_user(
    session: Session, user_id: str, actor: Actor, body: UserUpdate, password_hash: str | None
) -> UserPublic:
    user = session.get(User, user_id)
    if user is None:  # deleted since the route looked it up
        raise not_found("user", user_id)
    changes = body.model_dump(exclude_unset=True)
    for name in ("full_name", "roles", "disabled"):
        if name in changes and changes[name] is None:
            raise Problem(422, "invalid-body", "Invalid request", f"{name} cannot be null")
    if "roles" in changes:
        changes["roles"] = list(dict.fromkeys(Role(role).value for role in changes["roles"]))
    _check_references(session, changes.get("organization_id"), changes.get("centre_code"))
    after = {
        "roles": changes.get("roles", user.roles),
        "organization_id": changes.get("organization_id", user.organization_id),
        "centre_code": changes.get("centre_code", user.centre_code),
    }
    _check_affiliation(after["roles"], after["organization_id"], after["centre_code"])
    if user.id == actor.user_id and (
        changes.get("disabled") is True or Role.ADMIN not in after["roles"]
    ):
        raise Problem(
            409,
            "self-lockout",
            "Conflict",
            "you cannot disable your own account or remove your own admin role; ask another admin",
        )

    changes.pop("password", None)
    before: dict[str, Any] = {name: getattr(user, name) for name in changes}
    changed = [name for name, value in changes.items() if before[name] != value]
    for name in changed:
        setattr(user, name, changes[name])
    if password_hash is not None:
        user.password_hash = password_hash
        changed.append("password")
    if "password" in changed or ("disabled" in changed and user.disabled):
        user.token_version += 1  # every token issued before is refused from now on
    if changed:
        user.updated_at = utcnow()
        session.add(user)
        session.flush()
        append_event(
            session,
            chain=ADMIN_CHAIN,
            actor=actor,
            actor_role=Role.ADMIN,
            action="user.update",
            object_type="user",
            object_id=user.id,
            detail={
                "changed": sorted(changed),
                "before": {name: before[name] for name in changed if name != "password"},
                "after": {name: changes[name] for name in changed if name != "password"},
            },
        )
    return _public(user)
