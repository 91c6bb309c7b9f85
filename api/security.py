"""Passwords (Argon2id via pwdlib) and bearer tokens (JWT, HS256 only, via PyJWT).

A token names the user (``sub``) and nothing about their roles: the user is read from the
database on every request, so a role change or a disabled account takes effect at once. It
also carries the user's token version (``ver``): a password change, a disablement or a
logout increments ``User.token_version``, and every token issued before is refused.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import jwt
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

from models.accounts import User
from mutabaqa.settings import Settings

#: The only signing algorithm issued and accepted (never taken from the token's header).
JWT_ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("exp", "iat", "sub", "iss", "aud", "ver")

_password_hash = PasswordHash((Argon2Hasher(),))


def hash_password(password: str) -> str:
    """An Argon2id hash (with its parameters and salt) to store in ``User.password_hash``."""
    return _password_hash.hash(password)


@cache
def _dummy_hash() -> str:
    return _password_hash.hash("no-such-user-" + uuid.uuid4().hex)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Check ``password`` against a stored hash.

    Pass ``None`` when the account does not exist: the password is then checked against a
    dummy hash, so that answering takes as long as for a real account and response times do
    not reveal which e-mail addresses are registered.
    """
    if password_hash is None:
        _password_hash.verify(password, _dummy_hash())
        return False
    try:
        return _password_hash.verify(password, password_hash)
    except UnknownHashError:
        _password_hash.verify(password, _dummy_hash())
        return False


#: The audience suffix of a portal session (``api/portal/sessions.py``): a session cookie is
#: not a bearer token, and a bearer token is not a session.
PORTAL_AUDIENCE_SUFFIX = ":portal"


def audience_of(settings: Settings, *, portal: bool = False) -> str:
    return settings.jwt_audience + (PORTAL_AUDIENCE_SUFFIX if portal else "")


def create_access_token(user: User, settings: Settings, *, portal: bool = False) -> str:
    """A signed bearer token for ``user`` (or, ``portal``, the value of a portal session
    cookie), valid ``settings.access_token_minutes``."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": user.id,
        "iss": settings.jwt_issuer,
        "aud": audience_of(settings, portal=portal),
        "iat": now,
        "exp": now + timedelta(minutes=settings.access_token_minutes),
        "jti": uuid.uuid4().hex,
        "ver": user.token_version,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=JWT_ALGORITHM)


def decode_access_token(token: str, settings: Settings, *, portal: bool = False) -> dict[str, Any]:
    """The claims of a valid token.

    Raises ``jwt.InvalidTokenError`` (or a subclass) when the token is malformed, signed
    with another key or another algorithm (``none`` included), expired, issued for another
    audience or by another issuer, or lacks one of ``exp``, ``iat``, ``sub``, ``iss``,
    ``aud``, ``ver``. (Whether ``ver`` is still the user's is checked against the user.)
    """
    claims: dict[str, Any] = jwt.decode(
        token,
        settings.jwt_secret.get_secret_value(),
        algorithms=[JWT_ALGORITHM],
        audience=audience_of(settings, portal=portal),
        issuer=settings.jwt_issuer,
        options={"require": list(REQUIRED_CLAIMS)},
    )
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise jwt.InvalidTokenError("the sub claim must name a user")
    if not isinstance(claims.get("ver"), int) or isinstance(claims["ver"], bool):
        raise jwt.InvalidTokenError("the ver claim must be a number")
    return claims
