"""Uploads of a request: dossier documents (manufacturer) and test evidence (laboratory).

Both take the same path: refused on permission or state before the body is read, then
(within the process's cap on uploads at once, else 503) streamed into the object store,
then handed to the workflow, which verifies the object and records it. A refused upload's
object is removed; a recorded one gets its retention lock.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from minio import Minio
from sqlmodel import Session

from api.context import AppContext
from api.deps import get_context, not_found, require
from api.problems import Problem
from api.request_views import facts_of, reach_facts
from api.uploads import UploadedObject, receive_upload
from api.workflow_calls import send_action
from domain.permissions import Actor, Permission
from domain.request_rules import (
    UPLOAD_DOCUMENT,
    UPLOAD_EVIDENCE,
    RequestFacts,
    allowed_actions,
    can_see,
    can_test,
    can_upload_document,
    evidence_conflict,
)
from models.accounts import User
from models.request_api import FilePublic
from models.request_payloads import ActionInput, FileFacts
from models.requests import CertificationRequest, StoredFile

router = APIRouter(prefix="/requests", tags=["requests"])

ContextDep = Annotated[AppContext, Depends(get_context)]
DocumentActor = Annotated[Actor, Depends(require(Permission.DOCUMENTS_UPLOAD))]
EvidenceActor = Annotated[Actor, Depends(require(Permission.EVIDENCE_UPLOAD))]


def _multipart(fields: dict[str, dict[str, str]], required: list[str]) -> dict[str, Any]:
    properties: dict[str, Any] = {"file": {"type": "string", "format": "binary"}} | fields
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": required, "properties": properties}
                }
            },
        }
    }


#: What an upload can be refused with besides the errors every route documents.
_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "Files of this kind cannot be uploaded in the request's state."},
    413: {"description": "The file or the form is larger than allowed (`max_bytes`)."},
    415: {"description": "A file type this upload does not take (`allowed_types`)."},
    422: {"description": "A malformed multipart body, a missing or invalid field, an empty file."},
    503: {"description": "Too many uploads at once, or the store failed: repeat later."},
}


def _remove(store: Minio, bucket: str, key: str, version_id: str | None) -> None:
    store.remove_object(bucket, key, version_id=version_id)


async def _stream_and_record(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    request_id: str,
    action: str,
    permitted: Callable[[RequestFacts, Actor], bool],
    facts_for: Callable[[UploadedObject, RequestFacts], FileFacts],
    before_file: Callable[[Mapping[str, str]], None] | None = None,
) -> FilePublic:
    facts, workflow_id = await ctx.read(_upload_target, request_id, actor, action, permitted)
    file_id = uuid.uuid4().hex
    bucket = ctx.settings.s3_evidence_bucket
    folder = "documents" if action == UPLOAD_DOCUMENT else "evidence"
    with ctx.upload_slots.take():  # 503 past MUTABAQA_MAX_CONCURRENT_UPLOADS
        uploaded = await receive_upload(
            request,
            store=ctx.store,
            bucket=bucket,
            key_for=lambda name: f"requests/{request_id}/{folder}/{file_id}/{name}",
            max_bytes=ctx.settings.max_upload_bytes,
            part_size=ctx.settings.upload_part_size,
            checksums=ctx.settings.upload_checksums,
            before_file=before_file,
        )
    try:
        file = facts_for(uploaded, facts).model_copy(update={"file_id": file_id})
        command = ActionInput(
            action=action, actor=actor, key=f"upload:{file_id}",
            body={"kind": file.kind, "item_code": file.item_code}, body_hash=uploaded.sha256,
            file=file,
        )  # fmt: skip
        client = await ctx.temporal()
        await send_action(
            client.get_workflow_handle(workflow_id), action, command,
            ctx.settings.workflow_answer_seconds,
        )  # fmt: skip
    except Problem as problem:
        if problem.status != 503:  # refused: nothing was recorded, the object can go
            await asyncio.to_thread(_remove, ctx.store, bucket, uploaded.key, uploaded.version_id)
        raise
    return await ctx.read(_stored_view, file_id, actor)


def _upload_target(
    session: Session,
    request_id: str,
    actor: Actor,
    action: str,
    permitted: Callable[[RequestFacts, Actor], bool],
) -> tuple[RequestFacts, str]:
    """Read before the body streams (no connection is held meanwhile): the request's facts
    and workflow id, or the refusal."""
    row = session.get(CertificationRequest, request_id)
    if row is None or not can_see(reach_facts(row), actor):
        raise not_found("request", request_id)
    facts = facts_of(session, row)
    conflict = evidence_conflict(facts, actor) if action == UPLOAD_EVIDENCE else None
    if conflict is not None:
        raise Problem(
            conflict.status, conflict.kind, "Not allowed", conflict.detail,
            request_status=row.status.value, allowed_actions=allowed_actions(facts, actor),
        )  # fmt: skip
    if not permitted(facts, actor):
        raise Problem(
            409, "invalid-transition", "Not allowed now",
            f"files of this kind cannot be uploaded while {row.status.value}",
            request_status=row.status.value, allowed_actions=allowed_actions(facts, actor),
        )  # fmt: skip
    return facts, row.workflow_id


def _stored_view(session: Session, file_id: str, actor: Actor) -> FilePublic:
    stored = session.get(StoredFile, file_id)
    if stored is None:
        raise not_found("file", file_id)
    uploader = session.get(User, actor.user_id)
    name = uploader.full_name if uploader is not None else actor.user_id
    return FilePublic.model_validate(stored.model_dump() | {"uploaded_by": name})


def _file(uploaded: UploadedObject, **extra: str | None) -> FileFacts:
    return FileFacts(
        file_id="",
        bucket=uploaded.bucket,
        key=uploaded.key,
        version_id=uploaded.version_id,
        size=uploaded.size,
        sha256=uploaded.sha256,
        content_type=uploaded.content_type,
        filename=uploaded.filename,
        part_sha256=list(uploaded.part_sha256) or None,
        **extra,
    )


def _field(uploaded: UploadedObject, name: str, limit: int) -> str | None:
    value = (uploaded.fields.get(name) or "").strip()
    if len(value) > limit:
        raise Problem(422, "invalid-body", "Invalid request", f"field {name!r} is too long")
    return value or None


@router.post(
    "/{request_id}/documents",
    response_model=FilePublic,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_multipart({"kind": {"type": "string"}}, ["kind", "file"]),
    responses=_UPLOAD_ERRORS,
)
async def upload_document(
    request_id: str, request: Request, actor: DocumentActor, ctx: ContextDep
) -> FilePublic:
    """A dossier document (multipart: ``kind`` and ``file``); a new upload of the same kind
    supersedes the previous one, which is kept."""
    return await record_document(request, ctx, actor, request_id)


async def record_document(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    request_id: str,
    *,
    before_file: Callable[[Mapping[str, str]], None] | None = None,
) -> FilePublic:
    """Stream a dossier document from ``request``'s multipart body and record it (the JSON
    route and the portal's form; ``actor`` holds ``documents:upload``). ``before_file``
    may refuse once the fields sent before the file are in, before any byte is stored."""

    def facts_for(uploaded: UploadedObject, facts: RequestFacts) -> FileFacts:
        kind = _field(uploaded, "kind", 64)
        if kind is None:
            raise Problem(422, "invalid-body", "Invalid request", "field 'kind' is required")
        return _file(uploaded, kind=kind)

    return await _stream_and_record(
        request, ctx, actor, request_id, UPLOAD_DOCUMENT, can_upload_document, facts_for,
        before_file,
    )  # fmt: skip


@router.post(
    "/{request_id}/evidence",
    response_model=FilePublic,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_multipart(
        {"item_code": {"type": "string"}, "description": {"type": "string"}}, ["file"]
    ),
    responses=_UPLOAD_ERRORS,
)
async def upload_evidence(
    request_id: str, request: Request, actor: EvidenceActor, ctx: ContextDep
) -> FilePublic:
    """Test evidence (raw data, photos, lab reports), optionally linked to a test item."""
    return await store_evidence(request, ctx, actor, request_id)


def _evidence_facts(uploaded: UploadedObject, facts: RequestFacts) -> FileFacts:
    item = _field(uploaded, "item_code", 64)
    if item is not None and item not in facts.plan:
        raise Problem(404, "not-found", "Not found", f"item {item!r} is not in the plan")
    return _file(uploaded, item_code=item, description=_field(uploaded, "description", 1000))


async def store_evidence(
    request: Request,
    ctx: AppContext,
    actor: Actor,
    request_id: str,
    before_file: Callable[[Mapping[str, str]], None] | None = None,
) -> FilePublic:
    """Stream and record test evidence (the JSON route and the portal's upload form, whose
    ``before_file`` checks its CSRF field before any byte is stored). The caller has checked
    ``Permission.EVIDENCE_UPLOAD``."""
    return await _stream_and_record(
        request, ctx, actor, request_id, UPLOAD_EVIDENCE, can_test, _evidence_facts, before_file
    )


#: The routes whose bodies are uploads (the API's body limits give them the upload limit).
UPLOAD_ENDPOINTS = (upload_document, upload_evidence)
