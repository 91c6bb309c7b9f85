"""The request record: every write of a request's rows happens here, one transaction each.

Each activity is idempotent: keyed on the request id plus a business key (the action's
Update id, the file id), so a retried activity finds its earlier work and returns it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from minio import Minio
from minio.retention import Retention
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import (
    REQUEST_MISSING,
    invariant,
    key_reused,
    present,
)
from activities.lab import freeze_report
from activities.stored_objects import verify_stored_object
from models.accounts import Product
from models.audit import request_chain
from models.lab import Appeal
from models.reference import TechnicalCentre
from models.request_payloads import (
    CreateRequestInput,
    IntakeInput,
    IntakeResult,
    RecordFileInput,
    RecordFileResult,
    RequestRef,
    Transition,
)
from models.requests import (
    ActionRecord,
    CertificationRequest,
    FilePurpose,
    NumberCounter,
    Sample,
    SampleStatus,
    StoredFile,
)
from models.types import stable_id
from mutabaqa.db import session_scope
from mutabaqa.settings import Settings
from records.actions import find_action
from records.audit import append_event
from records.outbox import add_effects, ids_of

log = logging.getLogger(__name__)


#: Actions whose related rows name the person who took them.
HUMAN_ACTIONS = frozenset(
    {"verify_results", "appeal", "uphold", "overturn", "receive_sample", "reject_sample"}
)


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def next_number(session: Session, series: str) -> int:
    """Take the next number of ``series`` inside the caller's transaction (gap-free)."""
    session.execute(
        _insert(session)(NumberCounter)
        .values(series=series, value=0)
        .on_conflict_do_nothing(index_elements=["series"])
    )
    value = session.execute(
        sa.update(NumberCounter)
        .where(col(NumberCounter.series) == series)
        .values(value=col(NumberCounter.value) + 1)
        .returning(col(NumberCounter.value))
    ).scalar_one()
    return int(value)


def write_transition(session: Session, t: Transition) -> RequestRef:
    """Write a state change, its audit event, related rows and outbox rows in the caller's
    transaction; a repeat of the same key finds it done."""
    row = session.exec(
        select(CertificationRequest)
        .where(CertificationRequest.id == t.request_id)
        .with_for_update()
    ).first()
    if row is None:
        raise ApplicationError(
            f"request {t.request_id} is not recorded",
            type=REQUEST_MISSING,
            non_retryable=True,
        )
    done = find_action(session, t.request_id, t.key)
    if done is not None:  # a retry of an activity that already committed
        if t.body_hash and done.body_hash and done.body_hash != t.body_hash:
            raise key_reused(t.key)
        return RequestRef(
            request_id=row.id, number=row.number, status=row.status, outbox_ids=ids_of(t.effects)
        )
    if t.to_status is not None:
        row.status = t.to_status
    for name, value in t.change.columns().items():
        setattr(row, name, value)
    row.updated_at = t.at
    session.add(row)
    _related_rows(session, t, row)
    detail = t.detail
    if t.change.confirm_gtin:
        detail = detail | {"gtin_confirmed": _confirm_gtin(session, t, row)}
    session.add(
        ActionRecord(
            request_id=t.request_id,
            idempotency_key=t.key,
            action=t.action,
            body_hash=t.body_hash or "",
            actor_id=t.actor.user_id if t.actor else "system",
            at=t.at,
        )
    )
    append_event(
        session,
        chain=request_chain(t.request_id),
        actor=t.actor,
        actor_role=t.acting_role,
        action=t.action,
        object_type="request",
        object_id=t.request_id,
        from_status=t.from_status.value if t.from_status else None,
        to_status=t.to_status.value if t.to_status else None,
        detail=detail,
        at=t.at,
    )
    outbox_ids = add_effects(session, t.effects, t.at)
    return RequestRef(
        request_id=row.id, number=row.number, status=row.status, outbox_ids=outbox_ids
    )


def _confirm_gtin(session: Session, t: Transition, row: CertificationRequest) -> str:
    """An officer confirmed the product's GTIN at ``accept``: record who and when (the
    first confirmation stands; a later one only adds its audit event). The GTIN, for the
    audit event. (The API refused ``confirm_gtin`` for a product without one; a product's
    GTIN never changes.)"""
    product = present(session.get(Product, row.product_id), f"product {row.product_id}")
    invariant(product.gtin is not None, "confirm_gtin for a product without a GTIN")
    invariant(t.actor is not None, "a GTIN is confirmed by a person")
    if product.gtin_confirmed_at is None:
        product.gtin_confirmed_at = t.at
        product.gtin_confirmed_by = t.actor.user_id if t.actor else None
        session.add(product)
    return str(product.gtin)


def _related_rows(session: Session, t: Transition, row: CertificationRequest) -> None:
    invariant(t.actor is not None or t.action not in HUMAN_ACTIONS, f"{t.action!r} needs an actor")
    actor_id = t.actor.user_id if t.actor is not None else "system"
    if t.action == "verify_results":
        report = freeze_report(session, row, actor_id, t.at)
        t.detail["test_report"] = {"version": report.version, "digest": report.digest}
    elif t.action == "appeal":
        refused_by = present(row.refused_by, f"the refusal appealed on request {row.id}")
        session.add(
            Appeal(
                id=stable_id(t.request_id, t.key),
                request_id=t.request_id,
                refusal_key=f"round-{row.round}:{refused_by}:{row.appeal_until}",
                refused_by=refused_by,
                reason=str(t.body.get("reason", "")),
                filed_by=actor_id,
                filed_at=t.at,
            )
        )
    elif t.action in ("uphold", "overturn"):
        appeal = session.exec(
            select(Appeal)
            .where(Appeal.request_id == t.request_id, col(Appeal.decision).is_(None))
            .order_by(col(Appeal.filed_at).desc())
        ).first()
        if appeal is not None:
            appeal.decision = "upheld" if t.action == "uphold" else "overturned"
            appeal.decided_by = actor_id
            appeal.decided_at = t.at
            appeal.decision_reason = str(t.body.get("reason", ""))
            session.add(appeal)
    if t.action in ("receive_sample", "reject_sample"):
        received = t.action == "receive_sample"
        session.add(
            Sample(
                id=stable_id(t.request_id, t.key),
                request_id=t.request_id,
                round=row.round,
                status=SampleStatus.RECEIVED if received else SampleStatus.REJECTED,
                reference=t.body.get("sample_ref"),
                condition=t.body.get("condition"),
                reason=t.body.get("reason"),
                actor_id=actor_id,
                at=t.at,
            )
        )


class RequestActivities:
    def __init__(self, engine: Engine, store: Minio, settings: Settings) -> None:
        self._engine = engine
        self._store = store
        self._settings = settings

    # --- creation --------------------------------------------------------------------------

    @activity.defn(name="create_request")
    def create_request(self, data: CreateRequestInput) -> RequestRef:
        p = data.params
        with session_scope(self._engine) as session:
            existing = session.get(CertificationRequest, p.request_id)
            if existing is None and p.idempotency_key is not None:
                existing = session.exec(
                    select(CertificationRequest).where(
                        CertificationRequest.organization_id == p.organization_id,
                        CertificationRequest.idempotency_key == p.idempotency_key,
                    )
                ).first()
            if existing is not None:
                return RequestRef(
                    request_id=existing.id, number=existing.number, status=existing.status
                )
            now = datetime.now(UTC)
            year = now.astimezone(ZoneInfo(self._settings.timezone)).year
            number = f"REQ-{year}-{next_number(session, f'REQ-{year}'):06d}"
            row = CertificationRequest(
                id=p.request_id,
                number=number,
                organization_id=p.organization_id,
                product_id=p.product_id,
                scheme_id=p.scheme.id,
                scheme_code=p.scheme.code,
                scheme_version=p.scheme.version,
                kind=p.kind,
                scope=p.scope,
                status=p.initial_status,
                centre_code=p.centre_code,
                workflow_id=data.workflow_id,
                idempotency_key=p.idempotency_key,
                idempotency_hash=p.idempotency_hash,
                created_by=p.actor.user_id,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            surveillance = p.certificate_number is not None
            append_event(
                session,
                chain=request_chain(p.request_id),
                actor=None if surveillance else p.actor,
                actor_role="system" if surveillance else "manufacturer",
                action="create",
                object_type="request",
                object_id=p.request_id,
                to_status=p.initial_status.value,
                detail={
                    "number": number,
                    "scheme": f"{p.scheme.code} v{p.scheme.version}",
                    "kind": p.kind.value,
                    "scope": p.scope,
                    "certificate_number": p.certificate_number,
                },
                at=now,
            )
            return RequestRef(request_id=row.id, number=number, status=row.status)

    # --- intake ----------------------------------------------------------------------------

    @activity.defn(name="intake_checks")
    def intake_checks(self, data: IntakeInput) -> IntakeResult:
        """Automated completeness checks and routing (scheme sector → centre)."""
        problems: list[str] = []
        with Session(self._engine) as session:
            centres = session.exec(
                select(TechnicalCentre).where(col(TechnicalCentre.active).is_(True))
            ).all()
            candidates = sorted(c.code for c in centres if data.sector in (c.sectors or []))
            documents = session.exec(
                select(StoredFile).where(
                    StoredFile.request_id == data.request_id,
                    StoredFile.purpose == FilePurpose.DOCUMENT,
                    col(StoredFile.superseded_at).is_(None),
                )
            ).all()
        present = {d.kind for d in documents}
        problems += [f"missing document: {k}" for k in data.required_documents if k not in present]
        for document in documents:
            try:
                stat = self._store.stat_object(
                    document.bucket, document.object_key, version_id=document.version_id
                )
                if stat.size != document.size:
                    problems.append(f"document {document.kind}: stored size differs")
            except Exception as exc:
                problems.append(f"document {document.kind}: not readable ({type(exc).__name__})")
        if not candidates:
            problems.append(f"no technical centre serves sector {data.sector!r}")
        elif len(candidates) > 1:
            problems.append("several centres serve this sector: the officer chooses")
        return IntakeResult(
            proposed_centre_code=candidates[0] if len(candidates) == 1 else None,
            candidate_centres=candidates,
            problems=problems,
        )

    # --- transitions -----------------------------------------------------------------------

    @activity.defn(name="apply_transition")
    def apply_transition(self, t: Transition) -> RequestRef:
        """Write a state change, its audit event, related rows and its outbox rows in one
        transaction."""
        with session_scope(self._engine) as session:
            return write_transition(session, t)

    # --- files -----------------------------------------------------------------------------

    @activity.defn(name="record_file")
    def record_file(self, data: RecordFileInput) -> RecordFileResult:
        """Verify the stored object against the upload, record it, then lock it (retention)."""
        f = data.file
        with Session(self._engine) as session:
            existing = session.get(StoredFile, f.file_id)
        if existing is None:
            verify_stored_object(self._store, data.file)
        superseded: list[str] = []
        with session_scope(self._engine) as session:
            if session.get(StoredFile, f.file_id) is None:
                if data.purpose == FilePurpose.DOCUMENT.value:
                    previous = session.exec(
                        select(StoredFile).where(
                            StoredFile.request_id == data.request_id,
                            StoredFile.purpose == FilePurpose.DOCUMENT,
                            StoredFile.kind == f.kind,
                            col(StoredFile.superseded_at).is_(None),
                        )
                    ).all()
                    for old in previous:
                        old.superseded_at = data.at
                        old.superseded_by = f.file_id
                        session.add(old)
                        superseded.append(old.id)
                retention = data.at + timedelta(days=self._settings.retention_days)
                session.add(
                    StoredFile(
                        id=f.file_id,
                        request_id=data.request_id,
                        purpose=FilePurpose(data.purpose),
                        kind=f.kind,
                        item_code=f.item_code,
                        description=f.description,
                        round=data.round,
                        filename=f.filename,
                        content_type=f.content_type,
                        size=f.size,
                        sha256=f.sha256,
                        bucket=f.bucket,
                        object_key=f.key,
                        version_id=f.version_id,
                        uploaded_by=data.actor.user_id,
                        uploaded_at=data.at,
                        retention_until=retention,
                    )
                )
                session.flush()
                append_event(
                    session,
                    chain=request_chain(data.request_id),
                    actor=data.actor,
                    actor_role=data.acting_role,
                    action="upload_document"
                    if data.purpose == FilePurpose.DOCUMENT.value
                    else "upload_evidence",
                    object_type="file",
                    object_id=f.file_id,
                    from_status=data.status.value,
                    to_status=data.status.value,
                    detail={
                        "kind": f.kind,
                        "item_code": f.item_code,
                        "filename": f.filename,
                        "size": f.size,
                        "sha256": f.sha256,
                        "superseded": superseded,
                    },
                    at=data.at,
                )
        self._apply_retention(f.bucket, f.key, f.version_id, data.at)
        return RecordFileResult(file_id=f.file_id, superseded=superseded)

    def _apply_retention(self, bucket: str, key: str, version_id: str | None, at: datetime) -> None:
        until = at + timedelta(days=self._settings.retention_days)
        self._store.set_object_retention(
            bucket,
            key,
            Retention(self._settings.resolved_object_lock_mode, until),
            version_id=version_id,
        )

    # --- system events ---------------------------------------------------------------------

    @activity.defn(name="record_event")
    def record_event(self, t: Transition) -> list[str]:
        """An event without a state change (reminder, escalation), once per key, with its
        outbox rows; returns their ids."""
        with session_scope(self._engine) as session:
            done = find_action(session, t.request_id, t.key)
            if done is not None:
                return ids_of(t.effects)
            session.add(
                ActionRecord(
                    request_id=t.request_id,
                    idempotency_key=t.key,
                    action=t.action,
                    body_hash="",
                    actor_id="system",
                    at=t.at,
                )
            )
            append_event(
                session,
                chain=request_chain(t.request_id),
                actor=None,
                actor_role="system",
                action=t.action,
                object_type="request",
                object_id=t.request_id,
                from_status=t.from_status.value if t.from_status else None,
                to_status=t.to_status.value if t.to_status else None,
                detail=t.detail,
                at=t.at,
            )
            return add_effects(session, t.effects, t.at)
