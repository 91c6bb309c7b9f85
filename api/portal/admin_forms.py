"""What the admin and webhook pages share: the signed-in caller, the CSRF check, the
permission check (the JSON API's own ``require``), form fields and validation errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from api.deps import actor_of, get_context, require
from api.portal.refusals import refused
from api.portal.render import render
from api.portal.sessions import PortalSession, current_session
from api.problems import Problem
from domain.permissions import Actor, Permission
from mutabaqa.db import write_session

T = TypeVar("T")


class NotSignedIn(Exception):
    """No valid portal session: the route answers with the login page."""


def signed_in(request: Request) -> PortalSession:
    portal = current_session(request, get_context(request).settings)
    if portal is None:
        raise NotSignedIn
    return portal


def allowed(portal: PortalSession, permission: Permission) -> Actor:
    """The caller as an Actor, if their roles allow ``permission`` (the API's 403 otherwise)."""
    actor = actor_of(portal.user)
    require(permission)(actor)
    return actor


def login_redirect() -> RedirectResponse:
    return RedirectResponse("/", status_code=303)


def csrf_refused(request: Request) -> Response:
    return render(request, get_context(request).settings, "refused.html", status_code=403)


def refusal_page(request: Request, portal: PortalSession, problem: Problem) -> Response:
    return render(
        request,
        get_context(request).settings,
        "admin_refused.html",
        session=portal,
        status_code=problem.status,
        refusal=refused(problem),
    )


def text(form: FormData, name: str) -> str:
    return str(form.get(name, "")).strip()


def optional(form: FormData, name: str) -> str | None:
    return text(form, name) or None


def field_errors(error: ValidationError) -> dict[str, str]:
    """The first message for each field a body's validation refused (a model-wide error
    is put on the field it names, or on ``_``)."""
    found: dict[str, str] = {}
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "_"
        message = str(item["msg"])
        if name == "_" or not item["loc"]:
            head, _, rest = message.removeprefix("Value error, ").partition(":")
            name, message = (head, rest.strip()) if rest else ("_", message)
        found.setdefault(name, message)
    return found


async def in_write_session(ctx_request: Request, fn: Callable[[Session], T]) -> T:
    """Run ``fn`` in the thread pool with a write session of its own (as the API's
    synchronous routes get one for a POST), closed before this returns."""
    engine = get_context(ctx_request).engine

    def call() -> T:
        with write_session(engine) as session:
            return fn(session)

    return await run_in_threadpool(call)
