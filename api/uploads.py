"""Streaming uploads: a ``multipart/form-data`` body goes straight into the object store.

The body is parsed from ``request.stream()`` with python-multipart's streaming parser
(FastAPI's ``UploadFile`` spools to disk); the file's bytes go to a
:class:`~api.streaming_put.StreamingPut`, whose worker thread uploads them part by part
while the body is still arriving. Memory stays about ``part_size`` times a small constant
and nothing touches the disk. While the bytes flow:

- the size is counted and ``max_bytes`` enforced (413); a declared ``Content-Length``
  that is already too large is refused before the body is read;
- the file's first bytes (``SNIFF_BYTES``) are checked against the allow-list before
  anything is sent to the store: the declared type must be allowed *and* the leading bytes
  must fit it (415); an empty file is refused (422);
- the SHA-256 is computed over exactly the bytes stored, and each part's SHA-256 goes with
  it as an S3 checksum the store verifies on receipt;
- the form's shape is bounded: at most ``MAX_FORM_PARTS`` parts (413), each with at most
  ``MAX_PART_HEADERS`` header lines of ``MAX_PART_HEADER_BYTES`` (python-multipart's own
  limits, set explicitly; 413), small fields of ``MAX_FIELD_BYTES`` (422).

:class:`UploadSlots` bounds how many uploads one process streams at once (503).

The object is only completed once the whole body has been parsed and accepted (the end of
the file is given to the writer after the closing boundary), so any refusal, a broken body
or a client that goes away leaves no object behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from minio import Minio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from api.problems import RETRY_AFTER_SECONDS, Problem
from api.streaming_put import StoreGone, StreamingPut
from api.upload_checks import (
    DEFAULT_ALLOWED_TYPES,
    Sniffer,
    resolve_media_type,
    sanitize_filename,
)

log = logging.getLogger(__name__)

KiB = 1024

#: How many leading bytes of a file are checked against the allow-list.
SNIFF_BYTES = 8 * KiB
#: Limits on the small text fields sent with the file.
MAX_FIELD_BYTES = 4 * KiB
MAX_FIELDS = 20
#: Parts of a form: the file and the fields.
MAX_FORM_PARTS = MAX_FIELDS + 1
#: Header lines of one part (``Content-Disposition``, ``Content-Type``...) and the bytes of
#: each line, enforced by python-multipart's parser.
MAX_PART_HEADERS = 8
MAX_PART_HEADER_BYTES = 4 * KiB
#: What a form may add to the file's bytes: boundaries, part headers and the small fields.
FORM_OVERHEAD = (
    MAX_FORM_PARTS * (MAX_FIELD_BYTES + MAX_PART_HEADERS * (MAX_PART_HEADER_BYTES + 2) + 1 * KiB)
    + 16 * KiB
)
FILE_FIELD = "file"
#: S3 allows at most this many parts in a multipart upload.
MAX_PARTS = 10_000


@dataclass(frozen=True)
class UploadedObject:
    """What the workflow is told about an upload: where it is and what it is, never bytes."""

    bucket: str
    key: str
    version_id: str | None
    size: int
    sha256: str  # hex
    content_type: str
    filename: str  # sanitised
    fields: dict[str, str]  # the other (small) form fields, e.g. kind, item_code
    #: hex SHA-256 of each part as the store verified it on receipt (one for a single PUT;
    #: none when checksums are off)
    part_sha256: tuple[str, ...] = ()


# --- The multipart body --------------------------------------------------------------------

_FILE_END = memoryview(b"")  # marks the end of the file part in the event list


def _malformed(detail: str) -> Problem:
    return Problem(422, "malformed-multipart", "Malformed multipart body", detail)


def _invalid_form(detail: str) -> Problem:
    return Problem(422, "invalid-form", "Invalid form", detail)


def _too_large(max_bytes: int) -> Problem:
    return Problem(
        413,
        "payload-too-large",
        "File too large",
        f"the file exceeds the limit of {max_bytes} bytes",
        max_bytes=max_bytes,
    )


def _form_too_large(kind: str, detail: str) -> Problem:
    return Problem(413, kind, "Form too large", detail)


def _boundary(request: Request) -> bytes:
    media, options = parse_options_header(request.headers.get("content-type", ""))
    if media != b"multipart/form-data":
        raise Problem(
            415,
            "unsupported-media-type",
            "Multipart form expected",
            "send the file as multipart/form-data with a field named 'file'",
        )
    boundary = options.get(b"boundary", b"")
    if not boundary or len(boundary) > 200:
        raise _malformed("the Content-Type header has no usable multipart boundary")
    return boundary


class _Receiver:
    """Parser callbacks and the state of one upload; file data is handled asynchronously."""

    def __init__(
        self,
        *,
        store: Minio,
        bucket: str,
        key_for: Callable[[str], str],
        max_bytes: int,
        part_size: int,
        allowed: Mapping[str, Sniffer],
        before_file: Callable[[Mapping[str, str]], None] | None = None,
        checksums: bool = True,
    ) -> None:
        self.store = store
        self.checksums = checksums
        self.before_file = before_file
        self.bucket = bucket
        self.key_for = key_for
        self.max_bytes = max_bytes
        self.part_size = part_size
        self.allowed = allowed
        self.fields: dict[str, str] = {}
        self.complete = False
        self.events: list[memoryview] = []  # file data, then _FILE_END
        self.writer: StreamingPut | None = None
        self.filename = ""
        self.declared_type = ""
        self.size = 0
        self.head: list[memoryview] = []
        self.head_size = 0
        self.seen_file = False
        self.parts = 0
        # the part being parsed
        self._headers: dict[str, str] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._part: str | None = None  # field name, or None for the file part
        self._value = bytearray()

    def parser(self, boundary: bytes) -> MultipartParser:
        return MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
            max_header_count=MAX_PART_HEADERS,
            max_header_size=MAX_PART_HEADER_BYTES,
        )

    # synchronous parser callbacks

    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_FORM_PARTS:
            raise _form_too_large(
                "too-many-parts", f"a form has at most {MAX_FORM_PARTS} parts (the file and fields)"
            )
        self._headers = {}
        self._part = None
        self._value = bytearray()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        name = self._header_field.decode("latin-1").strip().lower()
        self._headers[name] = self._header_value.decode("latin-1").strip()
        self._header_field = bytearray()
        self._header_value = bytearray()

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get("content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise _malformed("each part needs 'Content-Disposition: form-data; name=...'")
        name = options[b"name"].decode("utf-8", errors="replace")
        if name == FILE_FIELD:
            if self.seen_file:
                raise _invalid_form("send exactly one file, in the field 'file'")
            self.seen_file = True
            if self.before_file is not None:  # e.g. the portal's CSRF field, sent first
                self.before_file(self.fields)
            raw_name = options.get(b"filename", b"").decode("utf-8", errors="replace")
            self.filename = sanitize_filename(raw_name)
            self.declared_type = self._headers.get("content-type", "")
            self._part = None
            return
        if b"filename" in options:
            raise _invalid_form(f"unexpected file in field '{name}'; send the file as 'file'")
        if name in self.fields:
            raise _invalid_form(f"the field '{name}' is sent more than once")
        if len(self.fields) >= MAX_FIELDS:
            raise _invalid_form(f"at most {MAX_FIELDS} fields besides the file")
        self._part = name
        self.fields[name] = ""

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part is None:
            piece = memoryview(data if isinstance(data, bytes) else bytes(data))[start:end]
            self.events.append(piece)
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise _invalid_form(f"the field '{self._part}' is longer than {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self._part is None:
            self.events.append(_FILE_END)
            return
        try:
            self.fields[self._part] = self._value.decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid_form(f"the field '{self._part}' is not UTF-8 text") from None

    def _end(self) -> None:
        self.complete = True

    # asynchronous file handling

    async def handle_events(self) -> None:
        events, self.events = self.events, []
        for piece in events:
            if piece is _FILE_END:
                await self._file_end()
            else:
                await self._file_data(piece)

    async def _file_data(self, piece: memoryview) -> None:
        if not piece:
            return
        self.size += len(piece)
        if self.size > self.max_bytes:
            raise _too_large(self.max_bytes)
        if self.writer is not None:
            await self.writer.write(piece)
            return
        self.head.append(piece)
        self.head_size += len(piece)
        if self.head_size >= SNIFF_BYTES:
            await self._start_writer()

    async def _file_end(self) -> None:
        if self.size == 0:
            raise Problem(422, "empty-file", "Empty file", "the file has no content")
        if self.writer is None:
            await self._start_writer()

    async def _start_writer(self) -> None:
        head = b"".join(self.head)[:SNIFF_BYTES]
        content_type = resolve_media_type(self.declared_type, head, self.filename, self.allowed)
        self.writer = StreamingPut(
            self.store,
            self.bucket,
            self.key_for(self.filename),
            content_type,
            self.part_size,
            checksums=self.checksums,
        )
        pieces, self.head = self.head, []
        for piece in pieces:
            await self.writer.write(piece)


class UploadSlots:
    """How many uploads this process streams at once; used on the event loop only.

    ``take()`` holds a slot for the duration of an upload, or refuses at once with 503 and
    ``Retry-After`` when all are taken (before any byte is read or stored)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    @contextlib.contextmanager
    def take(self) -> Iterator[None]:
        if self.in_use >= self.limit:
            raise Problem(
                503,
                "too-many-uploads",
                "Try again shortly",
                f"{self.limit} uploads are already under way; send the file again later",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                max_concurrent_uploads=self.limit,
            )
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1


async def receive_upload(
    request: Request,
    *,
    store: Minio,
    bucket: str,
    key_for: Callable[[str], str],
    max_bytes: int,
    part_size: int,
    allowed_types: Mapping[str, Sniffer] | None = None,
    check_fields: Callable[[Mapping[str, str]], None] | None = None,
    before_file: Callable[[Mapping[str, str]], None] | None = None,
    checksums: bool = True,
) -> UploadedObject:
    """Stream the multipart body's ``file`` into ``bucket`` at ``key_for(filename)``.

    ``allowed_types`` maps each accepted media type to a check of the file's leading bytes
    (default :data:`DEFAULT_ALLOWED_TYPES`). ``check_fields`` sees the other form fields
    once the whole body is in, before the object is completed; ``before_file`` sees the
    fields sent before the file, when the file part begins and before any of its bytes is
    stored. A :class:`Problem` either raises refuses the upload. ``checksums``: send each
    part's SHA-256 as an S3 checksum (``part_sha256`` of the result; empty when off).
    Raises :class:`Problem`:
    413 too large, 415 not multipart or type not allowed, 422 empty file, missing file or
    malformed form, 503 the store failed. On any error no object is left in the bucket.
    """
    if max_bytes > part_size * MAX_PARTS:
        raise ValueError(f"a part size of {part_size} bytes cannot store {max_bytes} bytes")
    boundary = _boundary(request)
    declared_length = request.headers.get("content-length")
    if (
        declared_length
        and declared_length.isdigit()
        and (int(declared_length) > max_bytes + FORM_OVERHEAD)
    ):
        raise _too_large(max_bytes)
    receiver = _Receiver(
        store=store,
        bucket=bucket,
        key_for=key_for,
        max_bytes=max_bytes,
        part_size=part_size,
        allowed=DEFAULT_ALLOWED_TYPES if allowed_types is None else allowed_types,
        before_file=before_file,
        checksums=checksums,
    )
    parser = receiver.parser(boundary)
    try:
        try:
            async for chunk in request.stream():
                parser.write(chunk)
                await receiver.handle_events()
        except ClientDisconnect:
            raise Problem(
                400, "upload-interrupted", "Upload interrupted", "the client went away"
            ) from None
        except MultipartParseError as exc:
            if str(exc).startswith("Maximum header"):  # the parser's limits above
                raise _form_too_large(
                    "part-headers-too-large",
                    f"a part has at most {MAX_PART_HEADERS} header lines"
                    f" of at most {MAX_PART_HEADER_BYTES} bytes each",
                ) from None
            raise _malformed(f"the multipart body cannot be parsed: {exc}") from None
        except StoreGone:
            raise await _store_failed(receiver.writer) from None
        if not receiver.complete:
            raise _malformed("the body ended before the closing multipart boundary")
        writer = receiver.writer
        if writer is None:
            raise _invalid_form("the form has no file: send it in the field 'file'")
        if check_fields is not None:
            check_fields(receiver.fields)
        writer.finish()
        try:
            stored = await asyncio.shield(writer.done)
        except Exception:
            raise await _store_failed(writer) from None
        if stored.size != receiver.size:  # pragma: no cover - a bug, not a user error
            raise RuntimeError(f"stored {stored.size} of {receiver.size} bytes")
    except BaseException as exc:
        await _clean_up(receiver.writer, exc)
        raise
    return UploadedObject(
        bucket=stored.bucket,
        key=stored.key,
        version_id=stored.version_id,
        size=stored.size,
        sha256=stored.sha256,
        content_type=writer.content_type,
        filename=receiver.filename,
        fields=receiver.fields,
        part_sha256=stored.part_sha256,
    )


async def _clean_up(writer: StreamingPut | None, exc: BaseException) -> None:
    if writer is None:
        return
    writer.abandon()
    if isinstance(exc, asyncio.CancelledError):
        return  # the worker finishes (and aborts the multipart upload) on its own
    await writer.settled()


async def _store_failed(writer: StreamingPut | None) -> Problem:
    """The store refused or failed: log its error (once the worker has stopped) and say so."""
    error: BaseException | None = None
    if writer is not None:
        await writer.settled()
        if writer.done.done() and not writer.done.cancelled():
            error = writer.done.exception()
    log.error("upload to the object store failed: %r", error)
    return Problem(
        503,
        "object-store-unavailable",
        "File could not be stored",
        "the object store did not accept the file; try again later",
        headers={"Retry-After": "5"},
    )
