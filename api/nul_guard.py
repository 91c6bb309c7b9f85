"""No NUL character (U+0000) in the text a route receives: its JSON body, its path and its
query. PostgreSQL's text types cannot hold U+0000 (the driver refuses to send it, a 500
otherwise), so it is refused for every route, on both databases alike, with 422
problem+json naming where it was — before authentication, the database session or a
workflow sees it.

It runs as an application-wide dependency: FastAPI has then read and parsed the route's
JSON body (``Request.json`` keeps the parsed value, so nothing is parsed twice). Form and
upload bodies are not read here (an upload is streamed by its route).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, params
from fastapi.routing import APIRoute

from api.problems import Problem

NUL = "\x00"
MESSAGE = "text may not contain the NUL character (U+0000)"


def nul_location(value: Any) -> list[str | int] | None:
    """Where the first string (a value or an object's key) holding U+0000 is in the parsed
    JSON ``value``; ``None`` if there is none. Iterative: depth does not matter."""
    pending: list[tuple[list[str | int], Any]] = [([], value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                return path
        elif isinstance(item, dict):
            for key, inner in item.items():
                if NUL in key:
                    return [*path, key]
                pending.append(([*path, key], inner))
        elif isinstance(item, list):
            pending.extend(([*path, index], inner) for index, inner in enumerate(item))
    return None


def _json_body_parsed(request: Request) -> bool:
    """FastAPI parsed the body as JSON: the route takes a (non-form) body, the request says
    it is JSON (``application/json`` or ``+json``, as FastAPI checks) and it is not empty."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None:
        return False
    if isinstance(route.body_field.field_info, params.Form):
        return False
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    main, _, sub = media_type.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _refuse(where: str, loc: list[str | int]) -> Problem:
    return Problem(
        422,
        "invalid-body",
        "Invalid request",
        MESSAGE,
        errors=[{"loc": [where, *loc], "msg": MESSAGE, "type": "string_nul"}],
    )


async def refuse_nul(request: Request) -> None:
    """The application-wide dependency (``FastAPI(dependencies=...)``)."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and NUL in value:
            raise _refuse("path", [name])
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            raise _refuse("query", [name])
    if _json_body_parsed(request) and await request.body():
        loc = nul_location(await request.json())
        if loc is not None:
            raise _refuse("body", loc)
