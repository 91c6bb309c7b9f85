"""Bytes produced on the event loop, put into one S3 object by a worker thread, in bounded memory.

The event loop writes chunks into a :class:`StreamingPut`; its thread copies them into part
buffers and uploads the parts (``parallel`` at a time) while the next part fills. Memory is
``(parallel + 1) * part_size`` reused buffers plus a small queue between the two sides, and
the event loop waits when the queue is full, so backpressure reaches the client.

A file that fits in one part is stored with a single PUT. Nothing is completed before
:meth:`StreamingPut.finish`: :meth:`StreamingPut.abandon` before that leaves no object (the
multipart upload is aborted once its in-flight parts have settled, so no part lands after
the abort), and after it removes the stored version.

minio's ``put_object`` is not used: it copies every part three times and does not wait for
its in-flight parts before aborting. Its lower-level S3 calls are, through :class:`_S3`.

Every part goes with its SHA-256 as an S3 checksum (``x-amz-checksum-sha256``), which the
store verifies on receipt; :class:`StoredObject` lists the parts' digests so that the worker
can check the stored object's checksum against them (docs/uploads.md).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast
from xml.etree import ElementTree as ET

from minio import Minio
from minio.error import S3Error

from mutabaqa.object_checksums import ALGORITHM_HEADER, CHECKSUM_HEADER, b64

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: Parts uploaded at once; each holds one buffer of ``part_size``.
PARALLEL_PARTS = 2
#: Bytes queued between the event loop and the worker thread.
QUEUE_BYTES = 2 * MiB
S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


class UploadAborted(Exception):
    """The request side gave up; the object must not be completed."""


class StoreGone(Exception):
    """The worker stopped (the store failed); nothing more can be written."""


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    version_id: str | None
    size: int
    sha256: str  # hex, of exactly the bytes stored
    #: hex SHA-256 of each part as sent with it (and verified by the store); one part for a
    #: single PUT (then equal to ``sha256``)
    part_sha256: tuple[str, ...]


def _bytes(view: memoryview) -> bytes:
    """minio types part data as ``bytes``; any bytes-like object works (it is hashed and sent
    as is), and a view of a reused buffer saves a copy of every part."""
    return cast(bytes, view)


class _S3:
    """The S3 calls a streaming put needs, on minio's lower-level methods (one place to adapt).

    Every part (and a single PUT) carries its SHA-256 as an S3 checksum, which the store
    verifies on receipt (``mutabaqa.object_checksums``), unless ``checksums`` is off."""

    def __init__(
        self, store: Minio, bucket: str, key: str, content_type: str, *, checksums: bool = True
    ) -> None:
        self._store = store
        self._bucket = bucket
        self._key = key
        self._content_type = content_type
        self.checksums = checksums

    def _checksum(self, sha256: bytes | None) -> dict[str, str | list[str] | tuple[str]]:
        return {CHECKSUM_HEADER: b64(sha256)} if self.checksums and sha256 else {}

    def put(self, data: memoryview, sha256: bytes | None) -> str | None:
        headers = {"Content-Type": self._content_type, **self._checksum(sha256)}
        result = self._store._put_object(self._bucket, self._key, _bytes(data), headers=headers)
        return result.version_id

    def create(self) -> str:
        headers: dict[str, str | list[str] | tuple[str]] = {"Content-Type": self._content_type}
        if self.checksums:
            headers[ALGORITHM_HEADER] = "SHA256"
        return self._store._create_multipart_upload(self._bucket, self._key, headers)

    def upload_part(
        self, upload_id: str, number: int, data: memoryview, sha256: bytes | None
    ) -> str:
        return self._store._upload_part(
            self._bucket, self._key, _bytes(data), self._checksum(sha256), upload_id, number
        )

    def complete(self, upload_id: str, parts: list[tuple[str, bytes | None]]) -> str | None:
        """Complete with each part's ETag and SHA-256 (minio's own call sends no checksums)."""
        root = ET.Element("CompleteMultipartUpload", xmlns=S3_XMLNS)
        for number, (etag, sha256) in enumerate(parts, start=1):
            part = ET.SubElement(root, "Part")
            ET.SubElement(part, "PartNumber").text = str(number)
            ET.SubElement(part, "ETag").text = etag
            if self.checksums and sha256:
                ET.SubElement(part, "ChecksumSHA256").text = b64(sha256)
        body = ET.tostring(root, encoding="utf-8")
        response = self._store._execute(
            "POST",
            self._bucket,
            self._key,
            body=body,
            headers={
                "Content-Type": "application/xml",
                "Content-MD5": base64.b64encode(
                    hashlib.md5(body, usedforsecurity=False).digest()
                ).decode(),
            },
            query_params={"uploadId": upload_id},
        )
        # S3 may answer 200 with an error document once the completion has begun.
        answer = ET.fromstring(response.data)
        if answer.tag.rsplit("}", 1)[-1] == "Error":
            raise S3Error.fromxml(response)
        version_id = response.headers.get("x-amz-version-id")
        return str(version_id) if version_id else None

    def abort(self, upload_id: str) -> None:
        self._store._abort_multipart_upload(self._bucket, self._key, upload_id)

    def remove(self, version_id: str | None) -> None:
        self._store.remove_object(self._bucket, self._key, version_id=version_id)


class StreamingPut:
    """One object written from the event loop: ``await write(...)``, ``finish()``, ``await done``.

    ``write`` waits while more than ``QUEUE_BYTES`` are queued; it raises :class:`StoreGone`
    once the worker has stopped (``done`` then holds the store's error).
    """

    def __init__(
        self,
        store: Minio,
        bucket: str,
        key: str,
        content_type: str,
        part_size: int,
        *,
        parallel: int = PARALLEL_PARTS,
        checksums: bool = True,
    ) -> None:
        self.bucket = bucket
        self.key = key
        self.content_type = content_type
        self._s3 = _S3(store, bucket, key, content_type, checksums=checksums)
        self._part_size = part_size
        self._parallel = parallel
        self._loop = asyncio.get_running_loop()
        self.done: asyncio.Future[StoredObject] = self._loop.create_future()
        self._lock = threading.Lock()
        self._readable = threading.Condition(self._lock)
        self._chunks: deque[memoryview] = deque()
        self._queued = 0
        self._eof = False
        self._aborted = False
        self._worker_gone = False
        self._space: asyncio.Future[None] | None = None
        self._stored: StoredObject | None = None
        self._thread = threading.Thread(target=self._run, name=f"put:{key}", daemon=True)
        self._thread.start()

    # --- event loop side

    async def write(self, data: memoryview) -> None:
        while True:
            with self._lock:
                if self._worker_gone:
                    raise StoreGone
                if self._queued < QUEUE_BYTES:
                    self._chunks.append(data)
                    self._queued += len(data)
                    self._readable.notify()
                    return
                space = self._space = self._loop.create_future()
            await space

    def finish(self) -> None:
        """No more bytes: the worker completes the object (``done`` tells when)."""
        with self._lock:
            self._eof = True
            self._readable.notify()

    def abandon(self) -> None:
        """Give up: no object must remain (it is removed if it was already complete)."""
        with self._lock:
            self._aborted = True
            self._chunks.clear()
            self._queued = 0
            self._readable.notify()
            stored = self._stored
        if stored is not None:
            threading.Thread(target=self._remove, args=(stored,), daemon=True).start()

    async def settled(self) -> None:
        """Wait until the worker has stopped (an aborted multipart upload is then gone)."""
        with contextlib.suppress(Exception):
            await asyncio.shield(self.done)

    # --- worker side

    def _take(self, buffer: bytearray, size: int) -> int:
        """Copy queued bytes into ``buffer`` until it holds ``size`` or the input ends."""
        filled = 0
        while filled < size:
            with self._lock:
                while not self._chunks and not self._eof and not self._aborted:
                    self._readable.wait()
                if self._aborted:
                    raise UploadAborted("the upload was refused or interrupted")
                if not self._chunks:
                    break
                chunk = self._chunks.popleft()
                if len(chunk) > size - filled:
                    self._chunks.appendleft(chunk[size - filled :])
                    chunk = chunk[: size - filled]
                self._queued -= len(chunk)
                space, self._space = self._space, None
            if space is not None:
                self._wake(space)
            if filled == len(buffer):
                buffer += chunk
            else:
                buffer[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        return filled

    def _at_end(self) -> bool:
        """Wait until more bytes or the end come; True at the end."""
        with self._lock:
            while not self._chunks and not self._eof and not self._aborted:
                self._readable.wait()
            if self._aborted:
                raise UploadAborted("the upload was refused or interrupted")
            return not self._chunks

    def _wake(self, future: asyncio.Future[None]) -> None:
        def wake() -> None:
            if not future.done():
                future.set_result(None)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(wake)

    def _run(self) -> None:
        outcome: StoredObject | None = None
        error: BaseException | None = None
        try:
            outcome = self._put()
            with self._lock:
                self._stored = outcome
                aborted = self._aborted
            if aborted:  # given up after the last byte: do not leave it
                self._remove(outcome)
                outcome, error = None, UploadAborted("the upload was abandoned")
        except BaseException as exc:
            error = exc
        finally:
            with self._lock:
                self._worker_gone = True
                space, self._space = self._space, None
            if space is not None:
                self._wake(space)
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._settle, outcome, error)

    def _settle(self, outcome: StoredObject | None, error: BaseException | None) -> None:
        if self.done.done():
            return
        if outcome is None:
            self.done.set_exception(error or UploadAborted("no outcome"))
        else:
            self.done.set_result(outcome)

    def _remove(self, stored: StoredObject) -> None:
        try:
            self._s3.remove(stored.version_id)
        except Exception:
            log.exception("could not remove the abandoned upload %s/%s", self.bucket, self.key)

    def _put(self) -> StoredObject:
        digest = hashlib.sha256()
        first = bytearray()
        size = self._take(first, self._part_size)
        digest.update(first)
        if size < self._part_size or self._at_end():
            whole = digest.digest()
            version_id = self._s3.put(memoryview(first)[:size], whole)
            single = (whole.hex(),) if self._s3.checksums else ()
            return StoredObject(self.bucket, self.key, version_id, size, whole.hex(), single)
        upload_id = self._s3.create()
        try:
            parts, size = self._put_parts(upload_id, first, digest)
            version_id = self._s3.complete(upload_id, parts)
        except BaseException:
            with contextlib.suppress(Exception):
                self._s3.abort(upload_id)
            raise
        return StoredObject(
            self.bucket,
            self.key,
            version_id,
            size,
            digest.hexdigest(),
            tuple(sha256.hex() for _etag, sha256 in parts if sha256 is not None),
        )

    def _put_parts(
        self, upload_id: str, first: bytearray, digest: Any
    ) -> tuple[list[tuple[str, bytes | None]], int]:
        """Upload ``first`` and the parts that follow; wait for all of them, even on error.

        Each part's SHA-256 is computed by the thread that sends it, from the buffer it
        sends, while this thread goes on with the file's digest and the next part. Returns
        each part's ETag and SHA-256, and the size."""
        free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        uploads: list[Future[tuple[str, bytes | None]]] = []
        buffers = 1
        total = len(first)

        def upload(number: int, buffer: bytearray, length: int) -> tuple[str, bytes | None]:
            try:
                data = memoryview(buffer)[:length]
                sha256 = hashlib.sha256(data).digest() if self._s3.checksums else None
                return self._s3.upload_part(upload_id, number, data, sha256), sha256
            finally:
                free.put(buffer)

        with ThreadPoolExecutor(self._parallel, thread_name_prefix="put-part") as pool:
            try:
                uploads.append(pool.submit(upload, 1, first, len(first)))
                while not self._at_end():
                    for failed in (u for u in uploads if u.done() and u.exception()):
                        failed.result()
                    if buffers <= self._parallel and free.empty():
                        buffer, buffers = bytearray(self._part_size), buffers + 1
                    else:
                        buffer = free.get()
                    length = self._take(buffer, self._part_size)
                    digest.update(memoryview(buffer)[:length])
                    total += length
                    uploads.append(pool.submit(upload, len(uploads) + 1, buffer, length))
            except BaseException:
                for pending in uploads:
                    pending.cancel()
                raise
            # leaving the pool waits for the parts in flight
        return [u.result() for u in uploads], total
