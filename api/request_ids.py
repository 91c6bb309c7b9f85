"""The request id of each HTTP call (``mutabaqa/request_ids.py``): the caller's
``X-Request-ID`` when sane, else a new one; set for the call and echoed in the response."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mutabaqa.request_ids import HTTP_HEADER, REQUEST_ID, new_request_id, sane


class RequestIds:
    """Pure ASGI middleware; it wraps the whole application, so every log line of the call
    (an unexpected error's included) carries the id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = sane(Headers(scope=scope).get(HTTP_HEADER)) or new_request_id()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[HTTP_HEADER] = request_id
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
