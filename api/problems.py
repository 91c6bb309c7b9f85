"""RFC 9457 problem details for every error, the framework's own 404/405/422 included."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_BASE = "https://mutabaqa.example/problems/"
MEDIA_TYPE = "application/problem+json"
#: Seconds a client is asked to wait before it repeats a call refused for overload.
RETRY_AFTER_SECONDS = 5

log = logging.getLogger("mutabaqa.api")

_DEFAULT_TYPES = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-body",
    429: "too-many-requests",
    503: "unavailable",
}


class Problem(Exception):
    """An error answered as ``application/problem+json``; ``kind`` names the rule."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem_response(
    status: int,
    kind: str,
    title: str,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_BASE + kind, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status, exc.kind, exc.title, exc.detail, headers=exc.headers, **exc.extra
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _DEFAULT_TYPES.get(exc.status_code, "error")
        title = kind.replace("-", " ").capitalize()
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        return problem_response(
            exc.status_code, kind, title, detail, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type")}
            for err in exc.errors()
        ]
        return problem_response(
            422,
            "invalid-body",
            "Invalid request",
            "the request does not match the schema",
            errors=errors,
        )

    @app.exception_handler(sqlalchemy.exc.TimeoutError)
    async def _pool_exhausted(_request: Request, exc: Exception) -> JSONResponse:
        # Every connection of the pool is in use for longer than the pool timeout.
        log.warning("database pool exhausted: %s", exc)
        return _overloaded("database-busy", "the database is busy")

    @app.exception_handler(sqlalchemy.exc.DBAPIError)
    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        """A database that is down, restarting, recovering or out of connections is a
        passing refusal (503 + Retry-After); a value it refuses because of the client's
        text is the client's (422); anything else is a bug (500)."""
        if _transient(exc):
            log.warning("database unavailable: %s", exc)
            return _overloaded("database-unavailable", "the database did not answer in time")
        if isinstance(exc, sqlalchemy.exc.DataError) and "NUL (0x00)" in str(exc):
            # PostgreSQL refuses a NUL character in text (SQLite stores it).
            return problem_response(
                422,
                "invalid-text",
                "Invalid text",
                "text cannot contain the NUL character (U+0000)",
            )
        return await _unexpected(request, exc)  # a missing table is a bug, not a busy database

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex
        log.error(
            "unexpected error %s on %s %s",
            error_id,
            request.method,
            request.url.path,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        return problem_response(
            500,
            "internal-error",
            "Internal error",
            f"an unexpected error occurred; quote error id {error_id} to the operators",
            error_id=error_id,
        )


#: What a transient database failure says: SQLite's lock not had within the busy timeout,
#: PostgreSQL unreachable, restarting or out of connections.
_TRANSIENT = (
    "database is locked",
    "database is busy",
    "connection refused",
    "could not connect",
    "server closed the connection",
    "connection is closed",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "too many clients",
    "consuming input failed",
    "in recovery mode",
    "not yet accepting connections",
    "connection already closed",
    "could not receive data from server",
    "could not send data to server",
)


#: SQLSTATEs of a server that cannot serve now: class 08 (connection exceptions), too many
#: connections, and the shutdown / crash-restart / still-recovering refusals (57P01-57P03).
_TRANSIENT_STATES = ("08", "53300", "57P01", "57P02", "57P03")


def _transient(exc: Exception) -> bool:
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        state = getattr(exc.orig, "sqlstate", None)
        if isinstance(state, str) and state.startswith(_TRANSIENT_STATES):
            return True
    text = str(exc).lower()
    return any(marker in text for marker in _TRANSIENT)


def _overloaded(kind: str, what: str) -> JSONResponse:
    return problem_response(
        503,
        kind,
        "Try again shortly",
        f"{what}; repeating the call (with the same Idempotency-Key) is safe",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
