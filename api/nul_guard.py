"""No NUL character (U+0000) in the text a route receives: its JSON or form body, its path
and its query. PostgreSQL's text types cannot hold U+0000 (the driver refuses to send it, a
500 otherwise), so it is refused for every route, on both databases alike, with 422
problem+json naming where it was — before authentication, the database session or a
workflow sees it.

It runs as an application-wide dependency: FastAPI has then read and parsed the route's
body (``Request.json`` and ``Request.form`` keep the parsed value, so nothing is parsed
twice). Bodies FastAPI does not parse are not read here: uploads are streamed by their
routes, and the portal's routes read their forms themselves and call
:func:`refuse_nul_in_form` (``api/portal/sessions.py``, the login in ``api/portal/pages.py``).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, params
from fastapi.routing import APIRoute
from starlette.datastructures import FormData

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


def _parsed_body(request: Request) -> str | None:
    """``"json"`` or ``"form"`` if FastAPI parsed the body: the route takes a body, and for
    JSON the request says it is JSON (``application/json`` or ``+json``, as FastAPI checks)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None:
        return None
    if isinstance(route.body_field.field_info, params.Form):
        return "form"
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    main, _, sub = media_type.partition("/")
    return "json" if main == "application" and (sub == "json" or sub.endswith("+json")) else None


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
    kind = _parsed_body(request)
    if kind == "json" and await request.body():
        loc = nul_location(await request.json())
        if loc is not None:
            raise _refuse("body", loc)
    elif kind == "form":
        refuse_nul_in_form(await request.form())


def refuse_nul_in_form(form: FormData) -> None:
    """Raise the 422 problem if a field's name or text value holds U+0000 (files are not
    text); for routes that read their form themselves (the portal's)."""
    for name, field in form.multi_items():
        if NUL in name or (isinstance(field, str) and NUL in field):
            raise _refuse("body", [name])
