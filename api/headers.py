"""Security headers on every response the API sends, errors and ``/metrics`` included.

- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and
  ``X-Frame-Options: DENY`` everywhere;
- ``Content-Security-Policy``: JSON and every other answer get ``default-src 'none';
  frame-ancestors 'none'`` (nothing may load or frame them). A route that sets its own
  policy keeps it (the public HTML pages allow their inline style). The interactive API
  docs (``/docs``, ``/redoc``) load Swagger UI / ReDoc and their inline start-up script
  from a CDN, so they only get ``frame-ancestors 'none'``;
- ``Strict-Transport-Security`` only when ``MUTABAQA_PUBLIC_BASE_URL`` is ``https``: a
  deployment reached over plain HTTP must not tell browsers to insist on HTTPS.

It wraps the whole application (outside Starlette's error middleware), so an unexpected
500 carries the headers too.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"
DOCS_POLICY = "frame-ancestors 'none'"
HSTS = "max-age=31536000"

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecurityHeaders:
    """Pure ASGI middleware (it never buffers a body: streamed downloads stay streamed)."""

    def __init__(self, app: ASGIApp, *, https: bool, docs_paths: Iterable[str | None] = ()) -> None:
        self.app = app
        self.https = https
        self.docs_paths = frozenset(path for path in docs_paths if path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_POLICY if scope["path"] in self.docs_paths else JSON_POLICY

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", policy)
                if self.https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)
