"""The streaming upload engine, through a real HTTP server into the real S3 store.

A tiny FastAPI app with one route calling :func:`api.uploads.receive_upload` runs under
uvicorn in a child process with its own temporary and working directories, so its memory
and its files can be watched; the client streams bodies generated on the fly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import random
import sys
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from minio import Minio
from pydantic import SecretStr

from api.problems import PROBLEM_BASE, Problem, install_problem_handlers
from api.upload_checks import DOCX, XLSX, resolve_media_type, sanitize_filename
from api.uploads import receive_upload
from mutabaqa.devstack import ChildProcess, free_port, spawn, wait_until
from mutabaqa.settings import MiB, Settings

ROOT = Path(__file__).resolve().parents[2]
PART_SIZE = 5 * MiB
DEFAULT_LIMIT = 400 * MiB
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"


# --- The app under test (runs in the child process) ----------------------------------------


def build_app() -> FastAPI:
    """One route calling the engine; settings come from ``MUTABAQA_*`` variables."""
    from mutabaqa.clients import make_object_store

    settings = Settings()
    store = make_object_store(settings)
    # The same store with a wrong secret: it refuses every request (SignatureDoesNotMatch).
    refusing_store = make_object_store(
        settings.model_copy(update={"s3_secret_key": SecretStr("wrong-secret")}), retries=0
    )
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/upload", status_code=201)
    async def upload(
        request: Request,
        prefix: str,
        max_bytes: int = DEFAULT_LIMIT,
        refusing: bool = False,
        required: str = "",
    ) -> dict[str, Any]:
        def check_fields(fields: Mapping[str, str]) -> None:
            if required and not fields.get(required):
                raise Problem(422, "invalid-body", "Invalid request", f"'{required}' is required")

        stored = await receive_upload(
            request,
            store=refusing_store if refusing else store,
            bucket=settings.s3_evidence_bucket,
            key_for=lambda filename: f"{prefix}/{filename}",
            max_bytes=max_bytes,
            part_size=settings.upload_part_size,
            check_fields=check_fields,
        )
        return dataclasses.asdict(stored)

    return app


def serve(port: int, work_dir: str) -> None:
    import uvicorn

    os.chdir(work_dir)
    uvicorn.run(build_app(), host="127.0.0.1", port=port, log_level="warning")


# --- Fixtures and helpers ------------------------------------------------------------------


@dataclasses.dataclass
class Server:
    url: str
    process: ChildProcess
    tmp_dir: Path
    work_dir: Path


@pytest.fixture(scope="module")
def server(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("upload-server")
    tmp_dir, work_dir = base / "tmp", base / "cwd"
    tmp_dir.mkdir()
    work_dir.mkdir()
    port = free_port()
    env = {
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(tmp_dir),
        "MUTABAQA_S3_ENDPOINT": settings.resolved_s3_endpoint,
        "MUTABAQA_S3_ACCESS_KEY": settings.s3_access_key,
        "MUTABAQA_S3_SECRET_KEY": settings.s3_secret_key.get_secret_value(),
        "MUTABAQA_S3_EVIDENCE_BUCKET": settings.s3_evidence_bucket,
        "MUTABAQA_UPLOAD_PART_SIZE": str(PART_SIZE),
    }
    code = f"from tests.api.test_uploads import serve; serve({port}, {str(work_dir)!r})"
    process = spawn("upload-api", [sys.executable, "-c", code], log=base / "api.log", env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(url + "/openapi.json").status_code == 200,
            timeout=30,
            what="upload API",
            proc=process,
        )
        yield Server(url, process, tmp_dir, work_dir)
    finally:
        process.stop()


@pytest.fixture
def prefix() -> str:
    return f"tests/uploads/{uuid.uuid4().hex}"


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _pseudo_random(total: int, *, head: bytes = PDF, seed: int = 7) -> Iterator[bytes]:
    """``total`` bytes starting with ``head``, 1 MiB at a time, never held whole."""
    rng = random.Random(seed)
    pool = rng.randbytes(MiB)
    sent = 0
    first = True
    while sent < total:
        offset = rng.randrange(MiB)
        chunk = pool[offset:] + pool[:offset]
        if first:
            chunk, first = head + chunk[len(head) :], False
        chunk = chunk[: total - sent]
        sent += len(chunk)
        yield chunk


async def _form(
    boundary: str,
    file: AsyncIterator[bytes] | None,
    *,
    filename: str = "report.pdf",
    content_type: str | None = "application/pdf",
    before: Mapping[str, str] | None = None,
    after: Mapping[str, str] | None = None,
    closed: bool = True,
) -> AsyncIterator[bytes]:
    """A ``multipart/form-data`` body: fields, the file (streamed), more fields."""

    def field(name: str, value: str) -> bytes:
        return (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()

    for name, value in (before or {}).items():
        yield field(name, value)
    if file is not None:
        quoted = filename.replace('"', "%22")
        headers = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{quoted}"'
        )
        if content_type is not None:
            headers += f"\r\nContent-Type: {content_type}"
        yield (headers + "\r\n\r\n").encode()
        async for chunk in file:
            yield chunk
        yield b"\r\n"
    for name, value in (after or {}).items():
        yield field(name, value)
    if closed:
        yield f"--{boundary}--\r\n".encode()


async def _post(
    server: Server,
    prefix: str,
    file: bytes | AsyncIterator[bytes] | None,
    *,
    params: Mapping[str, str | int] | None = None,
    content_length: bool = False,
    **form: Any,
) -> httpx.Response:
    """POST a form; streamed (chunked) unless ``content_length`` asks for a sized body."""
    boundary = uuid.uuid4().hex
    stream = _chunks(file) if isinstance(file, bytes) else file
    parts = _form(boundary, stream, **form)
    body: AsyncIterator[bytes] | bytes = parts
    if content_length:
        body = b"".join([chunk async for chunk in parts])
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with httpx.AsyncClient(timeout=120) as client:
        return await client.post(
            f"{server.url}/upload",
            params={"prefix": prefix, **(params or {})},
            content=body,
            headers=headers,
        )


def _problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_BASE + kind, body
    return body


def _stored_under(store: Minio, bucket: str, prefix: str) -> list[str]:
    """Every object version and every unfinished multipart upload under ``prefix``."""
    versions = [
        f"{obj.object_name}@{obj.version_id}"
        for obj in store.list_objects(
            bucket, prefix=prefix + "/", recursive=True, include_version=True
        )
    ]
    pending = store._list_multipart_uploads(bucket, prefix=prefix + "/")
    return versions + [f"unfinished:{upload.object_name}" for upload in pending.uploads]


def _presigned_sha256(store: Minio, bucket: str, key: str, version_id: str | None) -> str:
    url = store.presigned_get_object(bucket, key, version_id=version_id)
    digest = hashlib.sha256()
    with httpx.stream("GET", url, timeout=60) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            digest.update(chunk)
    return digest.hexdigest()


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def _open_files(pid: int) -> set[str]:
    """Paths of the regular files the process holds open."""
    paths = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
            paths.add(target)
    return paths


# --- Happy paths ---------------------------------------------------------------------------


async def test_pdf_is_stored_and_its_digest_matches_the_presigned_download(
    server: Server, store: Minio, settings: Settings, prefix: str
) -> None:
    content = PDF + os.urandom(300_000)
    response = await _post(
        server, prefix, content, before={"kind": "test_report"}, after={"description": "v2"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    bucket = settings.s3_evidence_bucket
    assert body["bucket"] == bucket
    assert body["key"] == f"{prefix}/report.pdf"
    assert body["size"] == len(content)
    assert body["content_type"] == "application/pdf"
    assert body["fields"] == {"kind": "test_report", "description": "v2"}
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    stat = store.stat_object(bucket, body["key"], version_id=body["version_id"])
    assert stat.size == len(content)
    assert stat.content_type == "application/pdf"
    assert _presigned_sha256(store, bucket, body["key"], body["version_id"]) == body["sha256"]


@pytest.mark.parametrize(
    "size",
    [PART_SIZE, PART_SIZE + 1, 2 * PART_SIZE, 2 * PART_SIZE + 12345],
    ids=["one-full-part", "one-byte-more", "two-full-parts", "three-parts"],
)
async def test_multipart_object_digest_matches_the_presigned_download(
    server: Server, store: Minio, settings: Settings, prefix: str, size: int
) -> None:
    digest = hashlib.sha256()

    async def file() -> AsyncIterator[bytes]:
        for chunk in _pseudo_random(size, head=PNG):
            digest.update(chunk)
            yield chunk

    response = await _post(
        server, prefix, file(), filename="photo.png", content_type="application/octet-stream"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["size"] == size
    assert body["content_type"] == "image/png"  # what the bytes show, since none was declared
    assert body["sha256"] == digest.hexdigest()
    stat = store.stat_object(body["bucket"], body["key"], version_id=body["version_id"])
    assert stat.size == size
    assert (
        _presigned_sha256(store, body["bucket"], body["key"], body["version_id"])
        == (body["sha256"])
    )


async def test_large_upload_paused_midway_uses_no_disk_and_no_memory_for_the_file(
    server: Server, store: Minio, settings: Settings, prefix: str
) -> None:
    """300 MB streamed; paused after 160 MB: no temporary file, memory flat, no object yet."""
    total, pause_at = 300_000_000, 160_000_000
    pid = server.process.pid
    # Warm up with a small file (imports, connection pools), then take the baseline.
    warm = await _post(server, prefix, PDF + bytes(100_000), filename="w.pdf")
    assert warm.status_code == 201, warm.text
    baseline_rss, baseline_hwm = _status_kib(pid, "VmRSS"), _status_kib(pid, "VmHWM")
    tmp_before, cwd_before = set(os.listdir(server.tmp_dir)), set(os.listdir(server.work_dir))
    open_before = _open_files(pid)

    paused, resume = asyncio.Event(), asyncio.Event()
    sent = 0
    digest = hashlib.sha256()

    async def file() -> AsyncIterator[bytes]:
        nonlocal sent
        for chunk in _pseudo_random(total):
            if sent >= pause_at and not resume.is_set():
                paused.set()
                await resume.wait()
            digest.update(chunk)
            sent += len(chunk)
            yield chunk

    upload = asyncio.create_task(_post(server, prefix, file(), filename="big.pdf"))
    await asyncio.wait_for(paused.wait(), timeout=60)
    await asyncio.sleep(0.5)  # let the server take in what is in flight
    try:
        assert sent >= pause_at
        assert set(os.listdir(server.tmp_dir)) == tmp_before
        assert set(os.listdir(server.work_dir)) == cwd_before
        assert _open_files(pid) <= open_before
        grown_mib = (_status_kib(pid, "VmRSS") - baseline_rss) / 1024
        peak_grown_mib = (_status_kib(pid, "VmHWM") - baseline_hwm) / 1024
        assert grown_mib < 64, f"RSS grew by {grown_mib:.0f} MiB after {sent / 1e6:.0f} MB"
        assert peak_grown_mib < 64, f"peak RSS grew by {peak_grown_mib:.0f} MiB"
        # The parts already sent are in the store, unfinished; no object exists yet.
        stored = _stored_under(store, settings.s3_evidence_bucket, prefix)
        assert f"unfinished:{prefix}/big.pdf" in stored
        assert not [entry for entry in stored if entry.startswith(f"{prefix}/big.pdf@")]
    finally:
        resume.set()
    response = await asyncio.wait_for(upload, timeout=120)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["size"] == total
    assert body["sha256"] == digest.hexdigest()
    assert store.stat_object(body["bucket"], body["key"], version_id=body["version_id"]).size == (
        total
    )


# --- Refusals leave nothing behind ---------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [PNG + os.urandom(20_000), os.urandom(20_000), b"%PD" + os.urandom(100)],
    ids=["png", "random", "truncated-signature"],
)
async def test_declared_pdf_that_is_not_one_is_refused_with_415(
    server: Server, store: Minio, settings: Settings, prefix: str, content: bytes
) -> None:
    response = await _post(server, prefix, content, content_type="application/pdf")
    body = _problem(response, 415, "unsupported-media-type")
    assert "application/pdf" in body["detail"]
    assert "application/pdf" in body["allowed_types"]
    assert _stored_under(store, settings.s3_evidence_bucket, prefix) == []


async def test_type_outside_the_allow_list_is_refused_with_415(
    server: Server, store: Minio, settings: Settings, prefix: str
) -> None:
    elf = b"\x7fELF\x02\x01\x01" + os.urandom(9000)
    for content_type in ("application/x-executable", "application/octet-stream"):
        response = await _post(server, prefix, elf, filename="tool.pdf", content_type=content_type)
        _problem(response, 415, "unsupported-media-type")
    assert _stored_under(store, settings.s3_evidence_bucket, prefix) == []


async def test_empty_file_is_refused_with_422(
    server: Server, store: Minio, settings: Settings, prefix: str
) -> None:
    response = await _post(server, prefix, b"")
    _problem(response, 422, "empty-file")
    assert _stored_under(store, settings.s3_evidence_bucket, prefix) == []


async def test_file_over_the_limit_while_streaming_gets_413_and_leaves_nothing(
    server: Server, store: Minio, settings: Settings, prefix: str
) -> None:
    """No Content-Length: the limit is found while streaming, after parts were stored."""
    limit = 2 * PART_SIZE + 1000

    async def file() -> AsyncIterator[bytes]:
        for chunk in _pseudo_random(4 * PART_SIZE):
            yield chunk

    response = await _post(server, prefix, file(), params={"max_bytes": limit})
    body = _problem(response, 413, "payload-too-large")
    assert body["max_bytes"] == limit
    assert _stored_under(store, settings.s3_evidence_bucket, prefix) == []


async def test_declared_length_over_the_limit_is_refused_before_reading(
    server: Server, store: Minio, settings: Settings, prefix: str
) -> None:
    response = await _post(
        server, prefix, PDF + bytes(400_000), params={"max_bytes": 100_000}, content_length=True
    )
    _problem(response, 413, "payload-too-large")
    assert _stored_under(store, settings.s3_evidence_bucket, prefix) == []
    # The answer comes without a byte of the body having been sent.
    port = int(server.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"POST /upload?prefix={prefix} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {10**12}\r\n\r\n"
        ).encode()
    )
    status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413 "), status_line


async def test_a_file_exactly_at_the_limit_is_accepted(server: Server, prefix: str) -> None:
    content = PDF + bytes(10_000 - len(PDF))
    response = await _post(server, prefix, content, params={"max_bytes": 10_000})
    assert response.status_code == 201, response.text
    assert response.json()["size"] == 10_000


async def test_body_cut_before_the_closing_boundary_is_422_and_leaves_nothing(
    server: Server, store: Minio, settings: Settings, prefix: str
) -> None:
    async def file() -> AsyncIterator[bytes]:
        for chunk in _pseudo_random(PART_SIZE + MiB):
            yield chunk

    response = await _post(server, prefix, file(), closed=False)
    _problem(response, 422, "malformed-multipart")
    assert _stored_under(store, settings.s3_evidence_bucket, prefix) == []


async def test_client_that_goes_away_midway_leaves_nothing(
    server: Server, store: Minio, settings: Settings, prefix: str
) -> None:
    bucket = settings.s3_evidence_bucket
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="gone.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    port = int(server.url.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"POST /upload?prefix={prefix} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {100 * MiB}\r\n\r\n"
        ).encode()
        + head
    )
    for chunk in _pseudo_random(3 * PART_SIZE):
        writer.write(chunk)
        await writer.drain()
    # Parts are in the store, unfinished, before the client goes away ...
    for _ in range(100):
        if f"unfinished:{prefix}/gone.pdf" in _stored_under(store, bucket, prefix):
            break
        await asyncio.sleep(0.1)
    assert _stored_under(store, bucket, prefix) == [f"unfinished:{prefix}/gone.pdf"]
    writer.close()
    # ... and gone afterwards.
    for _ in range(100):
        if not _stored_under(store, bucket, prefix):
            break
        await asyncio.sleep(0.1)
    assert _stored_under(store, bucket, prefix) == []


async def test_form_errors_are_422_and_leave_nothing(
    server: Server, store: Minio, settings: Settings, prefix: str
) -> None:
    missing = await _post(server, prefix, None, before={"kind": "manual"})
    assert "'file'" in _problem(missing, 422, "invalid-form")["detail"]
    long_field = await _post(server, prefix, PDF, after={"description": "x" * 5000})
    assert "description" in _problem(long_field, 422, "invalid-form")["detail"]
    many = await _post(server, prefix, PDF, before={f"f{i}": "v" for i in range(21)})
    _problem(many, 422, "invalid-form")
    assert _stored_under(store, settings.s3_evidence_bucket, prefix) == []


async def test_fields_refused_by_the_route_leave_nothing(
    server: Server, store: Minio, settings: Settings, prefix: str
) -> None:
    """The route checks the fields once the body is in; the parts already sent are dropped."""

    async def file() -> AsyncIterator[bytes]:
        for chunk in _pseudo_random(2 * PART_SIZE + 1):
            yield chunk

    params = {"required": "kind"}
    refused = await _post(server, prefix, file(), params=params, after={"kind": ""})
    assert "kind" in _problem(refused, 422, "invalid-body")["detail"]
    assert _stored_under(store, settings.s3_evidence_bucket, prefix) == []
    accepted = await _post(server, prefix, PDF, params=params, after={"kind": "manual"})
    assert accepted.status_code == 201, accepted.text


async def test_a_second_file_is_refused(
    server: Server, store: Minio, settings: Settings, prefix: str
) -> None:
    boundary = uuid.uuid4().hex
    part = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
            f"Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + PDF
        + b"\r\n"
    )
    body = part + part + f"--{boundary}--\r\n".encode()
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{server.url}/upload",
            params={"prefix": prefix},
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    _problem(response, 422, "invalid-form")
    assert _stored_under(store, settings.s3_evidence_bucket, prefix) == []


async def test_a_body_that_is_not_multipart_is_415(server: Server, prefix: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{server.url}/upload", params={"prefix": prefix}, json={"file": "x"}
        )
    _problem(response, 415, "unsupported-media-type")


@pytest.mark.parametrize("size", [1000, 2 * PART_SIZE], ids=["single-put", "multipart"])
async def test_store_refusal_is_503(server: Server, prefix: str, size: int) -> None:
    async def file() -> AsyncIterator[bytes]:
        for chunk in _pseudo_random(size):
            yield chunk

    response = await _post(server, prefix, file(), params={"refusing": "true"})
    body = _problem(response, 503, "object-store-unavailable")
    assert response.headers["retry-after"]
    assert "store" in body["detail"]


# --- Names -------------------------------------------------------------------------------


async def test_arabic_filename_is_kept_readable(
    server: Server, store: Minio, settings: Settings, prefix: str
) -> None:
    year = "\u0662\u0660\u0662\u0664"  # 2024 in Arabic-Indic digits
    name = f"تقرير الاختبار \u202e{year}\u202c.pdf"  # with a right-to-left override to drop
    response = await _post(server, prefix, PDF + b"body", filename=name)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["filename"] == f"تقرير الاختبار {year}.pdf"
    assert body["key"] == f"{prefix}/تقرير الاختبار {year}.pdf"
    listed = [obj.object_name for obj in store.list_objects(body["bucket"], prefix=prefix + "/")]
    assert listed == [body["key"]]


async def test_path_traversal_filename_stays_under_the_prefix(
    server: Server, store: Minio, settings: Settings, prefix: str
) -> None:
    response = await _post(
        server, prefix, b"root:x:0:0\n", filename="../../etc/passwd", content_type="text/plain"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["filename"] == "passwd"
    assert body["key"] == f"{prefix}/passwd"
    assert body["content_type"] == "text/plain"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\amina\\Desktop\\dossier.pdf", "dossier.pdf"),
        ("..", "file"),
        ("", "file"),
        (".bashrc", "bashrc"),
        ("  report  final .pdf. ", "report final .pdf"),
        ("a\x00b\r\nc\t.pdf", "abc.pdf"),
        ('what?*:<>|"name.pdf', "what_name.pdf"),
        ("Rapport d'essai (v2) — lot #3.pdf", "Rapport d'essai (v2) _ lot _3.pdf"),
        ("تقرير، نهائي؟.pdf", "تقرير، نهائي؟.pdf"),
        ("e\u0301te\u0301.txt", "été.txt"),  # decomposed accents composed (NFC)
        ("e\u202e\u0301.txt", "é.txt"),  # still composed once the override is dropped
    ],
)
def test_sanitize_filename(raw: str, expected: str) -> None:
    assert sanitize_filename(raw) == expected


def test_sanitized_long_name_keeps_its_extension() -> None:
    name = sanitize_filename("ب" * 400 + ".xlsx")
    assert len(name) == 150
    assert name.endswith("ب.xlsx")
    assert unicodedata.is_normalized("NFC", name)


@pytest.mark.parametrize(
    ("declared", "head", "filename", "expected"),
    [
        ("application/pdf", PDF, "x.pdf", "application/pdf"),
        ("Application/PDF; charset=binary", PDF, "x.pdf", "application/pdf"),
        ("application/octet-stream", PDF, "x.bin", "application/pdf"),
        ("", b"\xff\xd8\xff\xe0\x00\x10JFIF", "x", "image/jpeg"),
        (DOCX, b"PK\x03\x04\x14\x00[Content_Types].xml", "x.docx", DOCX),
        ("application/octet-stream", b"PK\x03\x04\x14\x00xl/workbook.xml", "x", XLSX),
        ("application/octet-stream", b"PK\x03\x04\x14\x00stuff", "x.docx", DOCX),
        ("text/csv", "code;valeur\nA;1,5\nقيمة;2\n".encode(), "x.csv", "text/csv"),
        ("application/octet-stream", b"a,b\n1,2\n", "x.csv", "text/csv"),
        ("application/octet-stream", b"notes\n", "notes", "text/plain"),
    ],
)
def test_media_type_from_declared_type_and_leading_bytes(
    declared: str, head: bytes, filename: str, expected: str
) -> None:
    from api.upload_checks import DEFAULT_ALLOWED_TYPES

    assert resolve_media_type(declared, head, filename, DEFAULT_ALLOWED_TYPES) == expected


@pytest.mark.parametrize(
    ("declared", "head"),
    [
        ("application/pdf", PNG),
        ("text/plain", PDF),  # a PDF is not text, even an ASCII one
        ("text/csv", b"a,b\x00\n"),
        ("text/plain", b"\xff\xfe\x00a"),
        ("image/png", b"\x89PNG"),
        ("application/zip", b"PK\x03\x04"),
        ("application/octet-stream", b"PK\x03\x04\x14\x00stuff"),  # which office file?
        ("application/octet-stream", b"\x7fELF"),
    ],
)
def test_media_type_refusals(declared: str, head: bytes) -> None:
    from api.problems import Problem
    from api.upload_checks import DEFAULT_ALLOWED_TYPES

    with pytest.raises(Problem) as refused:
        resolve_media_type(declared, head, "x", DEFAULT_ALLOWED_TYPES)
    assert refused.value.status == 415
