"""Whether the stored version of an uploaded object is the upload (docs/uploads.md, "What
the recording checks"): its size, then the store's own SHA-256 checksum against the
upload's digests, else every byte read back and hashed."""

from __future__ import annotations

import hashlib
import logging

from minio import Minio
from minio.error import S3Error
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import OBJECT_MISMATCH
from models.request_payloads import FileFacts
from mutabaqa.object_checksums import expected_checksum, stored_sha256_checksum

log = logging.getLogger(__name__)

HASH_CHUNK = 1024 * 1024
#: S3 error codes saying the uploaded object (or its version) is not in the store.
MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchObject", "NoSuchBucket"})


def stored_sha256(store: Minio, bucket: str, key: str, version_id: str | None) -> str:
    """The hex SHA-256 of that version of the object, from every byte read back."""
    digest = hashlib.sha256()
    response = store.get_object(bucket, key, version_id=version_id)
    try:
        for chunk in response.stream(HASH_CHUNK):
            digest.update(chunk)
            if activity.in_activity():
                activity.heartbeat()
    finally:
        response.close()
        response.release_conn()
    return digest.hexdigest()


def verify_stored_object(store: Minio, f: FileFacts) -> None:
    """Check that the stored version of the object is the upload: its size, and its bytes
    against the upload's SHA-256 (docs/uploads.md, "What the recording checks").

    With the parts' digests (``file.part_sha256``), the store's own SHA-256 checksum of
    that version is compared first with what they make: the file's SHA-256 for a single
    PUT, the composite of the parts' for a multipart upload. If they agree, the object
    is the upload. Otherwise (no digests, no checksum held, or a different one) every
    byte is read back and hashed, and only a SHA-256 that differs refuses the object."""
    try:
        stat = store.stat_object(f.bucket, f.key, version_id=f.version_id)
        stored = (
            stored_sha256_checksum(store, f.bucket, f.key, f.version_id) if f.part_sha256 else None
        )
    except S3Error as exc:
        if exc.code not in MISSING_OBJECT_CODES:
            raise  # the store failed, not the upload: retried
        raise ApplicationError(
            f"stored object {f.key} cannot be read: {exc}",
            type=OBJECT_MISMATCH,
            non_retryable=True,
        ) from exc
    # Anything else (the store unreachable, stopped, timing out) is not the upload's
    # fault: it propagates and the activity is retried, instead of refusing a good file.
    if stat.size != f.size:
        raise ApplicationError(
            f"stored object has {stat.size} bytes, upload counted {f.size}",
            type=OBJECT_MISMATCH,
            non_retryable=True,
        )
    if f.part_sha256 and stored is not None:
        try:
            if stored == expected_checksum(f.sha256, f.part_sha256):
                return
        except ValueError:
            pass  # digests that cannot describe the object: the bytes decide
        log.warning(
            "stored checksum of %s/%s differs from the upload's parts: reading it back",
            f.bucket,
            f.key,
        )
    if stored_sha256(store, f.bucket, f.key, f.version_id) != f.sha256:
        raise ApplicationError(
            "stored object's SHA-256 differs from the upload's",
            type=OBJECT_MISMATCH,
            non_retryable=True,
        )
