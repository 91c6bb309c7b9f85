"""Rendering portal pages: the language, the page's headers and its policy."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from api.portal.sessions import LANGUAGES, PortalSession, language_of, remember_language
from mutabaqa.i18n import portal_environment
from mutabaqa.settings import Settings

#: Body fields the portal's forms do not offer (API only): ``accept``'s ``confirm_gtin``
#: (GS1 Digital Link, docs/credentials.md) until the review page shows the product's GTIN.
API_ONLY_FIELDS = frozenset({"confirm_gtin"})

#: Pages load their style sheet and scripts (``defer``, never inline) from this origin and
#: nothing else; forms post here only, and so do the scripts.
PORTAL_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
    "img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
LANGUAGE_NAMES = {"ar": "العربية", "fr": "Français", "en": "English"}


def page_path(request: Request, here: str | None = None) -> str:
    """The path of the page shown: the request's for a GET; for a page answering a POST
    (a refused form, a failed login) the page's own GET path ``here``, else ``/`` (a
    link to the POST's path would answer 405)."""
    if request.method in ("GET", "HEAD"):
        return request.url.path
    return here or "/"


def switch_url(request: Request, language: str, here: str | None = None) -> str:
    """This page in ``language``: its path and query (a search, a page...) with ``lang``;
    for a page answering a POST, ``here`` (or ``/``) without the POST's query."""
    kept = [(name, value) for name, value in request.query_params.multi_items() if name != "lang"]
    if request.method not in ("GET", "HEAD"):
        kept = []
    return f"{page_path(request, here)}?{urlencode([*kept, ('lang', language)])}"


def render(
    request: Request,
    settings: Settings,
    template: str,
    *,
    session: PortalSession | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    here: str | None = None,
    **values: Any,
) -> HTMLResponse:
    """``template`` in the reader's language; ``here`` is the page's GET path, used for
    the language links and the header's current page when the page answers a POST."""
    language, chosen = language_of(request)
    page = portal_environment(language).get_template(template)
    html = page.render(
        lang=language,
        dir="rtl" if language == "ar" else "ltr",
        languages=[
            (code, LANGUAGE_NAMES[code], switch_url(request, code, here)) for code in LANGUAGES
        ],
        path=page_path(request, here),
        session=session,
        csrf=session.csrf(settings) if session else None,
        timezone=settings.timezone,
        **values,
    )
    response = HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Content-Security-Policy": PORTAL_POLICY,
            "Cache-Control": "no-store",
            "Vary": "Cookie, Accept-Language",
        }
        | (headers or {}),
    )
    if chosen:
        remember_language(response, language, settings)
    return response
