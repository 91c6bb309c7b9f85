"""The orphan sweeper: what keeps the buckets free of bytes nobody refers to.

An object can be left in the evidence or certificates bucket with no row naming it: an
upload handed to a workflow that answered 503 (the API keeps the object in case the
Update landed) whose Update never did, a process killed between a put and its record,
the store stopped mid-upload. A multipart upload can be left unfinished the same way.
Neither is ever served (the record decides what exists), but both take space and would
confuse an audit of the store.

``sweep`` removes, in both buckets, every object version that no ``stored_file`` row and
no certificate's PDF names (audit checkpoints aside), and aborts every unfinished
multipart upload, when older than a grace period. The grace period is what makes it safe:
an upload handed to a workflow is recorded within seconds to minutes, so one not recorded
after ``MUTABAQA_ORPHAN_GRACE_SECONDS`` (default a day) is abandoned. The record is read
after the listing, so an object recorded meanwhile is kept. Objects are never locked
before they are recorded (retention is applied per object by the recording activity), so
orphans can be removed.

The worker runs it every ``MUTABAQA_ORPHAN_SWEEP_INTERVAL_SECONDS`` (0: never), and
``mutabaqa storage sweep`` runs it once (``--older-than`` to choose the grace).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from minio import Minio
from minio.datatypes import Upload
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.lab import Certificate
from models.requests import StoredFile
from mutabaqa.anchoring import PREFIX as CHECKPOINT_PREFIX
from mutabaqa.anchoring import STORE_ERRORS
from mutabaqa.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    removed: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)


def _referenced(engine: Engine, settings: Settings) -> set[tuple[str, str, str | None]]:
    with Session(engine) as session:
        files = session.exec(
            select(StoredFile.bucket, StoredFile.object_key, StoredFile.version_id)
        ).all()
        pdfs = session.exec(
            select(Certificate.pdf_key, Certificate.pdf_version_id).where(
                col(Certificate.pdf_key).is_not(None)
            )
        ).all()
    refs = {(bucket, key, version) for bucket, key, version in files}
    refs |= {(settings.s3_certificates_bucket, str(key), version) for key, version in pdfs}
    return refs


def _is_referenced(
    refs: set[tuple[str, str, str | None]], bucket: str, key: str, version: str | None
) -> bool:
    # A row without a version id (a store without versioning) names every version.
    return (bucket, key, version) in refs or (bucket, key, None) in refs


def sweep(
    settings: Settings,
    engine: Engine,
    store: Minio,
    older_than: timedelta,
    now: datetime | None = None,
    prefix: str = "",
) -> SweepResult:
    """Remove the orphaned object versions and abort the unfinished multipart uploads
    older than ``older_than`` (under ``prefix`` only, when given)."""
    cutoff = (now or datetime.now(UTC)) - older_than
    result = SweepResult()
    buckets = (settings.s3_evidence_bucket, settings.s3_certificates_bucket)
    candidates: list[tuple[str, str, str | None]] = []
    for bucket in buckets:
        listing = store.list_objects(bucket, prefix=prefix, recursive=True, include_version=True)
        for item in listing:
            key = str(item.object_name)
            if item.is_delete_marker or key.startswith(CHECKPOINT_PREFIX):
                continue
            if item.last_modified is not None and item.last_modified > cutoff:
                continue
            candidates.append((bucket, key, item.version_id))
    refs = _referenced(engine, settings)  # after the listing: a row written since counts
    for bucket, key, version in candidates:
        if _is_referenced(refs, bucket, key, version):
            continue
        store.remove_object(bucket, key, version_id=version)
        result.removed.append(f"{bucket}/{key}" + (f" ({version})" if version else ""))
    for bucket in buckets:
        for upload in _unfinished_uploads(store, bucket, prefix):
            initiated = upload.initiated_time
            if initiated is not None and initiated > cutoff:
                continue
            store._abort_multipart_upload(bucket, str(upload.object_name), str(upload.upload_id))
            result.aborted.append(f"{bucket}/{upload.object_name} ({upload.upload_id})")
    return result


def _unfinished_uploads(
    store: Minio, bucket: str, prefix: str = "", pages: int = 100
) -> list[Upload]:
    """The bucket's unfinished multipart uploads (minio's client has no public call to
    list or abort them). Paged by key; an upload an interrupted page skips is found by
    the next sweep."""
    found: list[Upload] = []
    marker: str | None = None
    for _ in range(pages):
        listed = store._list_multipart_uploads(bucket, prefix=prefix or None, key_marker=marker)
        found += listed.uploads
        if not listed.is_truncated or not listed.next_key_marker:
            break
        marker = listed.next_key_marker
    return found


async def sweep_periodically(
    settings: Settings, engine: Engine, store: Minio, stop: asyncio.Event
) -> None:
    """The worker's sweeps: one per interval, until ``stop``. Failures are logged and
    tried again at the next interval; they never stop the worker."""
    interval = settings.orphan_sweep_interval_seconds
    if interval <= 0:
        return
    grace = timedelta(seconds=settings.orphan_grace_seconds)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
            return
        except TimeoutError:
            pass
        try:
            done = await asyncio.to_thread(sweep, settings, engine, store, grace)
            if done.removed or done.aborted:
                log.warning(
                    "orphan sweep: %d objects removed, %d multipart uploads aborted",
                    len(done.removed),
                    len(done.aborted),
                )
        except STORE_ERRORS as exc:
            log.warning("orphan sweep not done: %s", exc)
        except Exception:
            log.exception("orphan sweep not done")
