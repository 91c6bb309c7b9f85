"""Portal sessions, CSRF tokens and the reader's language.

- **The session** is a cookie holding a signed token (PyJWT, the API's key) whose audience
  is the portal's: it names the user and their ``token_version``, so a logout, a password
  change or a disablement ends every session as it revokes every bearer token. HttpOnly,
  ``SameSite=Lax``, ``Secure`` (and ``__Host-`` named) when the public URL is https, and
  as long-lived as a bearer token (``MUTABAQA_ACCESS_TOKEN_MINUTES``).
- **CSRF**: every portal form carries a token, an HMAC of the session's id (``jti``) under
  the API's key; a POST whose token is missing or wrong is refused (403) before anything
  is read or changed. Before login there is no session: the login form's token is bound
  to a random cookie of its own (signed double submit).
- **Language**: ``?lang=`` (remembered in a cookie), then the cookie, then
  ``Accept-Language``, then French.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from api.deps import get_context
from api.security import create_access_token, decode_access_token
from models.accounts import User
from mutabaqa.settings import Settings

LANGUAGES = ("ar", "fr", "en")
DEFAULT_LANGUAGE = "fr"
LANGUAGE_COOKIE = "mutabaqa_lang"
CSRF_FIELD = "csrf"


def session_cookie_name(settings: Settings) -> str:
    return "__Host-mutabaqa_session" if settings.public_https else "mutabaqa_session"


def login_cookie_name(settings: Settings) -> str:
    return "__Host-mutabaqa_login" if settings.public_https else "mutabaqa_login"


def _cookie_options(settings: Settings) -> dict[str, Any]:
    return {"httponly": True, "samesite": "lax", "secure": settings.public_https, "path": "/"}


# --- sessions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortalSession:
    user: User
    session_id: str  # the token's jti

    def csrf(self, settings: Settings) -> str:
        return csrf_token(settings, "session", self.session_id)


def start_session(response: Response, user: User, settings: Settings) -> None:
    response.set_cookie(
        session_cookie_name(settings),
        create_access_token(user, settings, portal=True),
        max_age=settings.access_token_minutes * 60,
        **_cookie_options(settings),
    )
    response.delete_cookie(login_cookie_name(settings), **_cookie_options(settings))


def end_session(response: Response, settings: Settings) -> None:
    response.delete_cookie(session_cookie_name(settings), **_cookie_options(settings))


def current_session(request: Request, settings: Settings) -> PortalSession | None:
    """The portal session of this request, if its cookie is valid and its user still
    enabled at the same token version (read from the database, in a session of its own)."""
    token = request.cookies.get(session_cookie_name(settings))
    if not token:
        return None
    try:
        claims = decode_access_token(token, settings, portal=True)
    except jwt.InvalidTokenError:
        return None
    session_id = claims.get("jti")
    if not isinstance(session_id, str) or not session_id:
        return None
    with get_context(request).session() as db:
        user = db.get(User, claims["sub"])
    if user is None or user.disabled or claims["ver"] != user.token_version:
        return None
    return PortalSession(user, session_id)


async def portal_session(request: Request) -> PortalSession | None:
    """:func:`current_session` for an async route: in the thread pool (it reads the user
    from the database), so the event loop never blocks on the database."""
    return await run_in_threadpool(current_session, request, get_context(request).settings)


# --- CSRF --------------------------------------------------------------------------------------


def csrf_token(settings: Settings, purpose: str, binding: str) -> str:
    key = hashlib.sha256(b"mutabaqa-portal-csrf:" + settings.jwt_secret.get_secret_value().encode())
    return hmac.new(key.digest(), f"{purpose}:{binding}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(expected: str | None, given: object) -> bool:
    return (
        expected is not None
        and isinstance(given, str)
        and hmac.compare_digest(expected.encode(), given.encode())
    )


def login_binding(request: Request, settings: Settings) -> str | None:
    binding = request.cookies.get(login_cookie_name(settings))
    return binding if binding and len(binding) <= 64 else None


def new_login_binding(response: Response, settings: Settings) -> str:
    """A fresh random binding for the login form's token, set as a cookie."""
    binding = secrets.token_urlsafe(24)
    response.set_cookie(login_cookie_name(settings), binding, **_cookie_options(settings))
    return binding


# --- language ----------------------------------------------------------------------------------


def _accepted(header: str) -> list[str]:
    """The languages of an ``Accept-Language`` header, most wanted first (q=0 dropped)."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and quality > 0:
            weighted.append((-quality, index, tag.strip().lower().split("-")[0]))
    return [tag for _, _, tag in sorted(weighted)]


def language_of(request: Request) -> tuple[str, bool]:
    """The page's language and whether ``?lang=`` chose it (then it is remembered)."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked, True
    cookie = request.cookies.get(LANGUAGE_COOKIE)
    if cookie in LANGUAGES:
        return cookie, False
    for tag in _accepted(request.headers.get("accept-language", "")):
        if tag in LANGUAGES:
            return tag, False
    return DEFAULT_LANGUAGE, False


def remember_language(response: Response, language: str, settings: Settings) -> None:
    response.set_cookie(
        LANGUAGE_COOKIE,
        language,
        max_age=365 * 24 * 3600,
        samesite="lax",
        secure=settings.public_https,
        path="/",
    )
