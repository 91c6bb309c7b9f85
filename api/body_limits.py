"""Request bodies bounded while they arrive, before routing, authentication or parsing.

FastAPI reads and parses a route's body before its dependencies run, so without a bound an
anonymous client could make the API hold any amount of JSON in memory before it is told
401. :class:`BodyLimits` is pure ASGI middleware that sits in front of everything else:

- a body is counted as it is received (``receive`` is wrapped) and refused with 413
  problem+json as soon as it passes the route's limit; nothing here buffers it;
- a declared ``Content-Length`` over the limit is refused at once, before a byte is read;
- upload routes get the upload limit (the file's limit plus what a form adds to it), every
  other route the small limit for JSON and form bodies;
- form-only routes (the OAuth2 password form of ``/auth/token``) accept only
  ``application/x-www-form-urlencoded``: a multipart body, which could carry files the form
  parser would spool to disk, is refused with 415 before anything is read;
- an answer given while the client is still sending its body (a refusal, or a 401 before
  an upload was read) closes the connection (``Connection: close``), so the rest of the
  body is not read and discarded.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


class BodyTooLarge(HTTPException):
    """Raised by the counting ``receive`` once a body passes its limit. An HTTPException, so
    that FastAPI lets it through when it reads a route's body (instead of a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds the limit of {limit} bytes")
        self.limit = limit


def too_large_response(limit: int) -> JSONResponse:
    return problem_response(
        413,
        "payload-too-large",
        "Request body too large",
        f"the request body exceeds the limit of {limit} bytes for this route",
        headers={"Connection": "close"},
        max_bytes=limit,
    )


def _media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


class BodyLimits:
    """The middleware; see the module's docstring. ``upload_paths`` match the paths of the
    upload routes (the upload limit), ``form_paths`` are the form-only routes' paths."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        default_limit: int,
        upload_limit: int,
        upload_paths: Sequence[re.Pattern[str]] = (),
        form_paths: Collection[str] = (),
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.upload_limit = upload_limit
        self.upload_paths = tuple(upload_paths)
        self.form_paths = frozenset(form_paths)

    def limit_for(self, path: str) -> int:
        if any(pattern.fullmatch(path) for pattern in self.upload_paths):
            return self.upload_limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path: str = scope["path"]
        if (
            scope["method"] == "POST"
            and path in self.form_paths
            and _media_type(headers) != FORM_MEDIA_TYPE
        ):
            response = problem_response(
                415,
                "unsupported-media-type",
                "Form expected",
                f"send this form as {FORM_MEDIA_TYPE}",
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        limit = self.limit_for(path)
        declared = _declared_length(headers)
        if declared is not None and declared > limit:
            await too_large_response(limit)(scope, receive, send)
            return
        has_body = bool(declared) or "chunked" in headers.get("transfer-encoding", "").lower()
        body_done = not has_body
        received = 0

        async def counting_receive() -> Message:
            nonlocal received, body_done
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                if not message.get("more_body", False):
                    body_done = True
            elif message["type"] == "http.disconnect":
                body_done = True
            return message

        response_started = False

        async def closing_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                if not body_done:  # the rest of the body is not wanted: do not read it
                    message.setdefault("headers", [])
                    MutableHeaders(scope=message)["connection"] = "close"
            await send(message)

        try:
            await self.app(scope, counting_receive, closing_send)
        except BodyTooLarge as exc:  # raised outside a route's exception handling
            if response_started:
                raise
            await too_large_response(exc.limit)(scope, receive, closing_send)


def install_body_limits(
    app: FastAPI,
    *,
    default_limit: int,
    upload_limit: int,
    upload_paths: Sequence[re.Pattern[str]],
    form_paths: Collection[str],
) -> None:
    """Put :class:`BodyLimits` in front of ``app`` and answer :class:`BodyTooLarge` (raised
    while a route reads its body) as the same 413 problem."""

    async def _too_large(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BodyTooLarge)
        return too_large_response(exc.limit)

    app.add_exception_handler(BodyTooLarge, _too_large)
    app.add_middleware(
        BodyLimits,
        default_limit=default_limit,
        upload_limit=upload_limit,
        upload_paths=upload_paths,
        form_paths=form_paths,
    )
