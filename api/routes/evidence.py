"""Stored files (documents, test evidence): content through a short-lived presigned URL."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse
from sqlmodel import Session

from api.context import AppContext
from api.deps import SessionDep, get_context, not_found, require
from api.request_views import reach_facts
from domain.permissions import Actor, Permission
from domain.request_rules import can_see
from models.requests import CertificationRequest, StoredFile

router = APIRouter(prefix="/evidence", tags=["evidence"])

PRESIGNED_FOR = timedelta(minutes=5)

ReaderActor = Annotated[Actor, Depends(require(Permission.EVIDENCE_READ))]


@router.get(
    "/{file_id}/content",
    status_code=307,
    response_class=RedirectResponse,
    responses={307: {"description": "redirect to a presigned URL valid for five minutes"}},
)
def file_content(
    file_id: str,
    actor: ReaderActor,
    session: SessionDep,
    ctx: Annotated[AppContext, Depends(get_context)],
) -> RedirectResponse:
    """Redirect to the stored object's exact version, for callers who may read the request."""
    url = presigned_file_url(session, ctx, file_id, actor)
    return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})


def presigned_file_url(session: Session, ctx: AppContext, file_id: str, actor: Actor) -> str:
    """A short-lived presigned URL of a stored file, for a caller who may read its request
    (404 otherwise): the JSON route's and the portal's one way to a file's content."""
    stored = session.get(StoredFile, file_id)
    request = session.get(CertificationRequest, stored.request_id) if stored else None
    if stored is None or request is None or not can_see(reach_facts(request), actor):
        raise not_found("file", file_id)
    return ctx.presigner.presigned_get_object(
        stored.bucket,
        stored.object_key,
        expires=PRESIGNED_FOR,
        version_id=stored.version_id,
        response_headers={
            "response-content-type": stored.content_type,
            "response-content-disposition": "attachment; filename*=UTF-8''"
            + quote(stored.filename, safe=""),
        },
    )
