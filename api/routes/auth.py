"""``POST /auth/token``: exchange an e-mail and password for a bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import OAuth2PasswordRequestForm
from sqlmodel import select

from api.deps import ReadSessionDep, SettingsDep, unauthenticated
from api.security import create_access_token, verify_password
from models.accounts import AccessToken, User

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/token",
    response_model=AccessToken,
    responses={401: {"description": "wrong e-mail or password, or a disabled account"}},
)
def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: ReadSessionDep,
    settings: SettingsDep,
    response: Response,
) -> AccessToken:
    """OAuth2 password grant: ``username`` is the e-mail address."""
    email = form.username.strip().lower()
    user = session.exec(select(User).where(User.email == email)).first()
    # Unknown accounts are checked against a dummy hash: the answer takes as long.
    if not verify_password(form.password, user.password_hash if user else None) or user is None:
        raise unauthenticated("wrong e-mail or password")
    if user.disabled:
        raise unauthenticated("this account is disabled")
    response.headers["Cache-Control"] = "no-store"
    return AccessToken(
        access_token=create_access_token(user, settings),
        expires_in=settings.access_token_minutes * 60,
    )
