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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from api.deps import get_context
from api.nul_guard import refuse_nul_in_form
from api.problems import Problem
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


async def posted_form(request: Request) -> tuple[PortalSession | None, FormData]:
    """A portal POST's form, and its session if the form's CSRF token is the session's;
    ``None`` otherwise (the caller refuses with 403 before reading or changing anything)."""
    form = await request.form()
    refuse_nul_in_form(form)  # PostgreSQL text cannot hold U+0000: 422
    portal = await portal_session(request)
    settings = get_context(request).settings
    if portal is None or not csrf_ok(portal.csrf(settings), form.get(CSRF_FIELD)):
        return None, form
    return portal, form


#: The header the portal's upload script sends the CSRF token in.
CSRF_HEADER = "X-CSRF-Token"
#: The problem kind an upload's ``before_file`` hook raises for a missing or wrong token.
UPLOAD_CSRF_KIND = "portal-csrf"


async def upload_session(
    request: Request,
) -> tuple[PortalSession | None, Callable[[Mapping[str, str]], None]]:
    """A portal upload's session, and the hook that checks its token before the file.

    With the script, the token is the ``X-CSRF-Token`` header, checked here (a wrong one:
    ``None``, refuse with 403). Without it, the token is the form's first field: the hook,
    called when the file part begins, raises a 403 ``Problem`` of kind
    ``UPLOAD_CSRF_KIND`` then — before any byte of the file is stored."""
    settings = get_context(request).settings
    portal = await portal_session(request)
    expected = portal.csrf(settings) if portal else None
    header = request.headers.get(CSRF_HEADER)

    def before_file(fields: Mapping[str, str]) -> None:
        if header is None and not csrf_ok(expected, fields.get(CSRF_FIELD)):
            raise Problem(
                403, UPLOAD_CSRF_KIND, "Form expired", "the form's token is missing or wrong"
            )

    if portal is None or (header is not None and not csrf_ok(expected, header)):
        return None, before_file
    return portal, before_file


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
