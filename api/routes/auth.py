"""``POST /auth/token``: exchange an e-mail and password for a bearer token;
``POST /auth/logout``: revoke every token of the caller.

A login is judged before its password is hashed (``domain/logins.py``): an account or a
client address with too many recent failures gets 429 with ``Retry-After`` at the cost of
one short database write, no hash. The hash runs within the process's bound
(``api/passwords.py``: 503 when it is full) and no database connection is held meanwhile.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from sqlmodel import Session, col, select, update

from api.context import AppContext
from api.deps import ContextDep, CurrentUser, SessionDep, SettingsDep, unauthenticated
from api.passwords import HasherBusy
from api.problems import Problem
from api.security import create_access_token
from domain.logins import LoginPolicy, Scope
from models.accounts import AccessToken, User
from models.types import utcnow
from mutabaqa.settings import Settings
from records import logins

router = APIRouter(prefix="/auth", tags=["auth"])


def login_policy(settings: Settings) -> LoginPolicy:
    return LoginPolicy(
        free_failures=settings.login_free_failures,
        quiet_seconds=settings.login_quiet_seconds,
        max_delay_seconds=settings.login_max_delay_seconds,
        address_failures_per_minute=settings.login_address_failures_per_minute,
    )


def _find_user(session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == email)).first()


def _throttled(refusal: logins.Refusal) -> Problem:
    whom = "this account" if refusal.scope is Scope.ACCOUNT else "your address"
    return Problem(
        429,
        "too-many-requests",
        "Too many login attempts",
        f"too many failed logins for {whom}; retry in {refusal.retry_after} s",
        headers={"Retry-After": str(refusal.retry_after)},
    )


async def authenticate(
    ctx: AppContext, settings: Settings, email: str, password: str, address: str
) -> User:
    """The user whose e-mail and password these are, judged as every login is (throttled
    before hashing, the hash within the process's bound); raises the problem otherwise
    (401, 429 with ``Retry-After``, 503). ``/auth/token`` and the portal's login use it."""
    email = email.strip().lower()
    policy = login_policy(settings)
    refusal = await ctx.write(logins.admit, email, address, utcnow(), policy)
    if refusal is not None:
        raise _throttled(refusal)
    user = await ctx.read(_find_user, email)
    try:
        # Unknown accounts are checked against a dummy hash: the answer takes as long.
        right = await ctx.passwords.verify(password, user.password_hash if user else None)
    except HasherBusy:
        await ctx.write(logins.not_judged, email, address, policy)
        raise
    if not right or user is None:
        await ctx.write(logins.failed, email, utcnow(), policy)
        raise unauthenticated("wrong e-mail or password")
    await ctx.write(logins.succeeded, email, address, policy)
    if user.disabled:
        raise unauthenticated("this account is disabled")
    return user


def revoke_tokens(session: Session, user_id: str) -> None:
    """Increment the user's token version: every token and portal session issued before is
    refused from now on (committed by the caller)."""
    session.execute(
        update(User)
        .where(col(User.id) == user_id)
        .values(token_version=col(User.token_version) + 1)
    )


@router.post(
    "/token",
    response_model=AccessToken,
    responses={
        401: {"description": "wrong e-mail or password, or a disabled account"},
        415: {"description": "the body is not `application/x-www-form-urlencoded`"},
        429: {"description": "too many failed logins for the account or the client address"},
        503: {"description": "too many passwords being checked at once; retry"},
    },
)
async def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    ctx: ContextDep,
    settings: SettingsDep,
    response: Response,
) -> AccessToken:
    """OAuth2 password grant: ``username`` is the e-mail address."""
    address = request.client.host if request.client else "unknown"
    user = await authenticate(ctx, settings, form.username, form.password, address)
    response.headers["Cache-Control"] = "no-store"
    return AccessToken(
        access_token=create_access_token(user, settings),
        expires_in=settings.access_token_minutes * 60,
    )


@router.post("/logout", status_code=204, response_class=Response)
def logout(user: CurrentUser, session: SessionDep) -> Response:
    """Revoke every token of the caller (this one included): each later use is 401."""
    revoke_tokens(session, user.id)
    session.commit()
    return Response(status_code=204)
