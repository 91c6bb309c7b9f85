"""Security headers on every response the API sends, errors and ``/metrics`` included.

- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and
  ``X-Frame-Options: DENY`` everywhere;
- ``Content-Security-Policy``: JSON and every other answer get ``default-src 'none';
  frame-ancestors 'none'`` (nothing may load or frame them). A route that sets its own
  policy keeps it: the public HTML pages allow their inline style, the portal's pages
  their own origin's style sheet (``api/portal``), ``/docs`` its own origin's scripts
  (``api/docs.py``);
- ``Strict-Transport-Security`` only when ``MUTABAQA_PUBLIC_BASE_URL`` is ``https``: a
  deployment reached over plain HTTP must not tell browsers to insist on HTTPS.

It wraps the whole application (outside Starlette's error middleware), so an unexpected
500 carries the headers too.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000"

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecurityHeaders:
    """Pure ASGI middleware (it never buffers a body: streamed downloads stay streamed)."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = JSON_POLICY

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
