"""The public directory page: ``/directory?q=``, no login, the same query and rate limit
as ``GET /api/v1/directory`` (``api.routes.public.directory_entries``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from api.deps import get_context
from api.pagination import PageParams
from api.portal.public import PUBLIC_HEADERS
from api.portal.render import render
from api.problems import Problem
from api.ratelimit import public_rate_limit
from api.routes.public import directory_entries

router = APIRouter(include_in_schema=False, dependencies=[Depends(public_rate_limit)])
#: Certificates per page of the directory.
DIRECTORY_LIMIT = 50
_MAX_QUERY = 100
_MAX_CURSOR = 512


@router.get("/directory")
def directory_page(request: Request, q: str = "", cursor: str = "") -> HTMLResponse:
    settings = get_context(request).settings
    q = q.strip()[:_MAX_QUERY]
    params = PageParams(limit=DIRECTORY_LIMIT, cursor=cursor[:_MAX_CURSOR] or None)
    error = None
    with get_context(request).session() as session:
        try:
            page = directory_entries(session, settings, params, q or None)
        except Problem as problem:  # a cursor that is not ours: the first page
            error = problem.kind
            page = directory_entries(
                session, settings, PageParams(limit=DIRECTORY_LIMIT), q or None
            )
    return render(
        request,
        settings,
        "public_directory.html",
        headers=PUBLIC_HEADERS,
        status_code=422 if error else 200,
        q=q,
        entries=page.items,
        next_cursor=page.next_cursor,
        error=error,
    )
