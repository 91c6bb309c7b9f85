"""A dossier document uploaded from the request page.

``POST /requests/{id}/documents`` (multipart: ``csrf``, ``kind``, then ``file``) goes
through :func:`api.routes.files.record_document`, the JSON route's own path: the same
permission, reach and state checks before the body is read, the same streaming into the
object store with its caps (``MUTABAQA_MAX_UPLOAD_BYTES``, uploads at once), the same
Update. The body is never parsed by ``request.form()`` (which would spool the file).

CSRF before any byte is stored, two ways:

- the page's script (``api/static/upload.js``) sends the token as the header
  ``X-CSRF-Token``: it is checked before the body is read at all;
- without the script, the form's first field is ``csrf`` (before ``kind`` and ``file``):
  it is checked when the file's part begins, before any of its bytes is read or stored. A
  form whose file comes before a valid token is refused (403) and nothing is stored.

Answers: 303 back to the request's page; a refusal shows the page again with the reason
next to the kind's field (and the problem's status). The script follows the same answers.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.deps import actor_of, get_context, require
from api.portal.pages import show_request_page
from api.portal.render import render
from api.portal.sessions import (
    UPLOAD_CSRF_KIND,
    upload_session,
)
from api.problems import Problem
from api.routes.files import record_document
from domain.permissions import Permission

router = APIRouter(include_in_schema=False)

#: The portal's upload route (the API's body limits give it the upload limit).
UPLOAD_PATH = "/requests/{request_id}/documents"


@router.post(UPLOAD_PATH)
async def upload_document_page(request_id: str, request: Request) -> Response:
    settings = get_context(request).settings
    portal, check_token = await upload_session(request)
    if portal is None:
        return render(request, settings, "refused.html", status_code=403)
    sent: dict[str, str] = {}

    def before_file(fields: Mapping[str, str]) -> None:
        """The fields before the file are in: kept for the page, then the token checked."""
        sent.update(fields)
        check_token(fields)

    actor = actor_of(portal.user)
    try:
        require(Permission.DOCUMENTS_UPLOAD)(actor)
        await record_document(
            request, get_context(request), actor, request_id, before_file=before_file
        )
    except Problem as problem:
        if problem.kind == UPLOAD_CSRF_KIND:
            return render(request, settings, "refused.html", session=portal, status_code=403)
        kind = sent.get("kind", "")
        return await run_in_threadpool(
            show_request_page,
            request,
            portal,
            request_id,
            status_code=problem.status,
            upload_error=(kind, problem.kind),
        )
    return RedirectResponse(f"/requests/{request_id}#documents", status_code=303)
