"""What the worker checks before it records an upload, against the real S3 store.

The API sends every part with its SHA-256 as an S3 checksum; the store verifies each part
on receipt, and the worker compares the stored version's checksum with the upload's
digests instead of reading every byte back (docs/uploads.md). These tests show the check
still refuses a stored object whose bytes are not the upload's: the key written again,
one byte of one part changed, a file digest that is not the object's, an object stored
without a checksum (read back, byte by byte).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi.testclient import TestClient
from minio import Minio
from minio.error import S3Error
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.errors import OBJECT_MISMATCH
from activities.requests import RequestActivities
from activities.stored_objects import stored_sha256
from api.app import create_app
from api.streaming_put import _S3, StoredObject, StreamingPut
from domain.permissions import Actor, Role
from models.request_payloads import FileFacts, RecordFileInput
from models.requests import RequestStatus, StoredFile
from mutabaqa.object_checksums import composite, stored_sha256_checksum
from mutabaqa.settings import MiB, Settings
from tests.api.requests_helpers import PDF, Cast, create_request, make_cast, upload
from tests.conftest import RunningWorker

pytestmark = pytest.mark.both_databases

PART = 5 * MiB


def pdf_bytes(size: int, seed: int) -> bytes:
    body = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    return (PDF + body)[:size]


async def _stream(store: Minio, bucket: str, key: str, data: bytes) -> StoredObject:
    put = StreamingPut(store, bucket, key, "application/pdf", PART)
    for start in range(0, len(data), MiB):
        await put.write(memoryview(data)[start : start + MiB])
    put.finish()
    return await put.done


def stream(store: Minio, bucket: str, data: bytes) -> StoredObject:
    """Store ``data`` as the API does (parts of 5 MiB with their checksums)."""
    key = f"tests/recording/{uuid.uuid4().hex}/file.pdf"
    return asyncio.run(_stream(store, bucket, key, data))


def facts(stored: StoredObject, **changes: object) -> FileFacts:
    values: dict[str, object] = {
        "file_id": uuid.uuid4().hex,
        "bucket": stored.bucket,
        "key": stored.key,
        "version_id": stored.version_id,
        "size": stored.size,
        "sha256": stored.sha256,
        "part_sha256": list(stored.part_sha256),
        "content_type": "application/pdf",
        "filename": "file.pdf",
        "kind": "technical_file",
    }
    return FileFacts.model_validate(values | changes)


def record(engine: Engine, store: Minio, settings: Settings, file: FileFacts) -> object:
    data = RecordFileInput(
        request_id=uuid.uuid4().hex,
        key=f"upload:{file.file_id}",
        actor=Actor(user_id="tests", roles=(Role.MANUFACTURER,)),
        acting_role="manufacturer",
        status=RequestStatus.DRAFT,
        purpose="document",
        file=file,
        at=datetime.now(UTC),
    )
    return ActivityEnvironment().run(RequestActivities(engine, store, settings).record_file, data)


def assert_refused(engine: Engine, store: Minio, settings: Settings, file: FileFacts) -> None:
    with pytest.raises(ApplicationError) as refused:
        record(engine, store, settings, file)
    assert refused.value.type == OBJECT_MISMATCH
    assert refused.value.non_retryable
    with Session(engine) as session:
        assert session.get(StoredFile, file.file_id) is None


# --- Through the route -----------------------------------------------------------------


@pytest.fixture
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    # Parts of 5 MiB, so that a file of a few MiB is a multipart upload.
    with TestClient(create_app(settings.model_copy(update={"upload_part_size": PART}))) as c:
        yield c


@pytest.fixture
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


def test_a_multipart_document_is_recorded_with_the_file_sha256_and_the_store_checksum(
    client: TestClient, cast: Cast, store: Minio, engine: Engine
) -> None:
    request = create_request(client, cast)
    content = pdf_bytes(2 * PART + 12_345, seed=1)
    response = upload(client, cast.maker_auth, request["id"], "technical_file", content)
    assert response.status_code == 201, response.text
    document = response.json()
    with Session(engine) as session:
        row = session.get(StoredFile, document["id"])
        assert row is not None
    fetched = httpx.get(
        store.presigned_get_object(row.bucket, row.object_key, version_id=row.version_id),
        timeout=30,
    ).content
    assert fetched == content
    assert document["sha256"] == row.sha256 == hashlib.sha256(content).hexdigest()
    parts = [content[i : i + PART] for i in range(0, len(content), PART)]
    assert stored_sha256_checksum(store, row.bucket, row.object_key, row.version_id) == composite(
        [hashlib.sha256(part).hexdigest() for part in parts]
    )


def test_with_checksums_off_nothing_is_sent_and_the_upload_is_read_back(
    settings: Settings, worker: RunningWorker, store: Minio, engine: Engine
) -> None:
    """``MUTABAQA_UPLOAD_CHECKSUMS=false`` (a store that refuses S3 checksums): the object
    carries no checksum and the worker reads it back before recording it."""
    off = settings.model_copy(update={"upload_part_size": PART, "upload_checksums": False})
    with TestClient(create_app(off)) as plain:
        cast = make_cast(plain, settings)
        request = create_request(plain, cast)
        content = pdf_bytes(PART + 4321, seed=10)
        response = upload(plain, cast.maker_auth, request["id"], "technical_file", content)
    assert response.status_code == 201, response.text
    document = response.json()
    assert document["sha256"] == hashlib.sha256(content).hexdigest()
    with Session(engine) as session:
        row = session.get(StoredFile, document["id"])
        assert row is not None
    assert stored_sha256_checksum(store, row.bucket, row.object_key, row.version_id) is None


# --- The store's side: a part whose bytes differ from its checksum is refused -----------


def test_the_store_refuses_a_part_whose_bytes_differ_from_its_checksum(
    store: Minio, settings: Settings
) -> None:
    bucket, key = settings.s3_evidence_bucket, f"tests/recording/{uuid.uuid4().hex}"
    s3 = _S3(store, bucket, key, "application/pdf")
    upload_id = s3.create()
    try:
        data = pdf_bytes(PART, seed=2)
        hashed = hashlib.sha256(data).digest()
        corrupted = bytearray(data)
        corrupted[PART // 2] ^= 0x01
        with pytest.raises(S3Error) as refused:
            s3.upload_part(upload_id, 1, memoryview(corrupted), hashed)
        assert refused.value.code in ("BadDigest", "XAmzContentChecksumMismatch")
    finally:
        s3.abort(upload_id)


# --- The worker's side: the recording refuses what is not the upload ---------------------


def test_an_intact_upload_passes_the_check_and_a_byte_read_back_agrees(
    store: Minio, settings: Settings
) -> None:
    data = pdf_bytes(PART + 777, seed=3)
    stored = stream(store, settings.s3_evidence_bucket, data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert len(stored.part_sha256) == 2
    assert stored_sha256(store, stored.bucket, stored.key, stored.version_id) == stored.sha256
    assert stored_sha256_checksum(store, stored.bucket, stored.key, stored.version_id) == (
        composite(stored.part_sha256)
    )


def flip_one_byte(data: bytes, at: int) -> bytes:
    changed = bytearray(data)
    changed[at] ^= 0x01
    return bytes(changed)


@pytest.mark.parametrize(
    ("size", "change"),
    [
        (PART // 2, "other bytes"),
        (2 * PART + 1, "other bytes"),
        (2 * PART + 1, "one byte of the second part"),
    ],
    ids=["single-put", "multipart", "multipart-one-byte"],
)
def test_the_key_written_again_with_other_bytes_is_refused(
    engine: Engine, store: Minio, settings: Settings, size: int, change: str
) -> None:
    """Someone with access to the store writes the key again, same size, other bytes, the
    way the API would (checksums and all), before the worker records it: the recorded
    version (or, on a store without versions, the object the key now names) is refused."""
    data = pdf_bytes(size, seed=4)
    original = stream(store, settings.s3_evidence_bucket, data)
    replaced = pdf_bytes(size, seed=5) if change == "other bytes" else flip_one_byte(data, PART + 9)
    other = asyncio.run(_stream(store, original.bucket, original.key, replaced))
    assert other.size == original.size and other.sha256 != original.sha256
    # The upload's facts, pointing at the version that now holds other bytes.
    assert_refused(engine, store, settings, facts(original, version_id=other.version_id))
    # No version at all (a store without versioning): the key's current bytes are checked.
    assert_refused(engine, store, settings, facts(original, version_id=None))


def test_an_object_stored_without_checksums_is_read_back_and_refused_if_it_differs(
    engine: Engine, store: Minio, settings: Settings
) -> None:
    """A plain put (no checksum, e.g. another client writing the key): the store has no
    checksum to compare, so the worker reads every byte back and compares the SHA-256."""
    original = stream(store, settings.s3_evidence_bucket, pdf_bytes(PART + 10, seed=6))
    tampered = pdf_bytes(PART + 10, seed=7)
    written = store.put_object(
        original.bucket, original.key, io.BytesIO(tampered), len(tampered), part_size=PART
    )
    assert stored_sha256_checksum(store, original.bucket, original.key, written.version_id) is None
    assert_refused(engine, store, settings, facts(original, version_id=written.version_id))
    # The same read-back for facts without part digests (payloads from before them).
    assert_refused(
        engine, store, settings, facts(original, version_id=written.version_id, part_sha256=None)
    )


def test_a_file_digest_that_is_not_the_single_puts_is_refused(
    engine: Engine, store: Minio, settings: Settings
) -> None:
    """For a single PUT the store's checksum is the file's own SHA-256: a recorded digest
    that is not it is refused, whatever part digest comes with it (the bytes decide)."""
    single = stream(store, settings.s3_evidence_bucket, pdf_bytes(1000, seed=9))
    assert len(single.part_sha256) == 1
    other = hashlib.sha256(b"not this file").hexdigest()
    assert_refused(engine, store, settings, facts(single, sha256=other, part_sha256=[other]))
    assert_refused(engine, store, settings, facts(single, sha256=other))
