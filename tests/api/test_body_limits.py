"""Request bodies are bounded while they are read, before authentication.

The API runs under uvicorn (as ``mutabaqa api`` runs it) in a thread of the test process,
on a free port; clients stream bodies from generators that count what they yielded, so a
test sees that the server answered before a body was sent whole. Setup (people, requests)
goes through an in-process client on the same database and Temporal.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from api.app import create_app
from api.body_limits import BodyLimits
from api.uploads import MAX_FORM_PARTS, MAX_PART_HEADER_BYTES, MAX_PART_HEADERS
from mutabaqa.devstack import free_port
from mutabaqa.settings import MiB, Settings
from tests.api.helpers import API, assert_problem, login
from tests.api.requests_helpers import PDF, Cast, create_request, get, make_cast
from tests.conftest import RunningWorker

BIG = 50 * 1000 * 1000  # the anonymous body: 50 MB
CHUNK = 64 * 1024
MAX_UPLOAD = 8 * MiB
CONCURRENT_UPLOADS = 2
BOUNDARY = "mutabaqa-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


@dataclass
class Live:
    url: str
    app: FastAPI
    settings: Settings


@pytest.fixture(scope="module")
def live(settings: Settings, worker: RunningWorker) -> Iterator[Live]:
    limited = settings.model_copy(
        update={"max_upload_bytes": MAX_UPLOAD, "max_concurrent_uploads": CONCURRENT_UPLOADS}
    )
    app = create_app(limited)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield Live(f"http://127.0.0.1:{port}", app, limited)
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def cast(live: Live) -> Cast:
    with TestClient(create_app(live.settings)) as client:
        return make_cast(client, live.settings)


@pytest.fixture
def draft(live: Live, cast: Cast) -> dict[str, Any]:
    with TestClient(create_app(live.settings)) as client:
        return create_request(client, cast)


class Counted:
    """A body from a generator, counting the bytes it handed to the client."""

    def __init__(self, size: int, *, head: bytes = b"", tail: bytes = b"") -> None:
        self.size = size
        self.head = head
        self.tail = tail
        self.yielded = 0

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._pieces():
            self.yielded += len(piece)
            yield piece

    def _pieces(self) -> Iterator[bytes]:
        if self.head:
            yield self.head
        sent = 0
        while sent < self.size:
            piece = b"7" * min(CHUNK, self.size - sent)
            sent += len(piece)
            yield piece
        if self.tail:
            yield self.tail

    @property
    def total(self) -> int:
        return len(self.head) + self.size + len(self.tail)


def _post(live: Live, path: str, content: Any, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=live.url, timeout=60) as client:
        return client.post(path, content=content, headers=headers)


def _part(name: str, value: bytes, *, extra: str = "", filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{extra}\r\n"
    return head.encode() + value + b"\r\n"


def _form(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _file_part(content: bytes = PDF, extra: str = "Content-Type: application/pdf\r\n") -> bytes:
    return _part("file", content, extra=extra, filename="dossier.pdf")


def _documents(live: Live, cast: Cast, request_id: str) -> list[str]:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        return sorted(d["kind"] for d in get(client, cast.maker_auth, request_id)["documents"])  # type: ignore[arg-type]


# --- JSON and form bodies: 413 before 401 --------------------------------------------------


def test_anonymous_50_mb_json_with_its_length_declared_is_refused_before_it_is_sent(
    live: Live,
) -> None:
    body = Counted(BIG - 2, head=b'"', tail=b'"')
    response = _post(
        live,
        f"{API}/requests/{uuid.uuid4().hex}/actions/submit",
        body,
        {"Content-Type": "application/json", "Content-Length": str(body.total)},
    )
    problem = assert_problem(response, 413, "payload-too-large")
    assert problem["max_bytes"] == live.settings.max_json_bytes == MiB
    assert response.headers["connection"] == "close"
    assert body.yielded < 10 * MiB, f"{body.yielded} bytes were sent before the answer"
    # The answer needs no byte of the body: headers alone get it.
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST {API}/requests/x/actions/submit HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {BIG}\r\n\r\n".encode()
        )
        assert sock.recv(64).startswith(b"HTTP/1.1 413 ")


def test_anonymous_chunked_json_is_refused_once_it_passes_the_limit(live: Live) -> None:
    body = Counted(BIG - 2, head=b'"', tail=b'"')
    response = _post(
        live,
        f"{API}/requests/{uuid.uuid4().hex}/actions/submit",
        body,  # no Content-Length: sent chunked
        {"Content-Type": "application/json"},
    )
    problem = assert_problem(response, 413, "payload-too-large")
    assert problem["max_bytes"] == MiB
    assert response.headers["connection"] == "close"
    assert MiB < body.yielded < 10 * MiB, f"{body.yielded} bytes were sent before the answer"


def test_a_body_at_the_limit_is_read_and_one_byte_more_is_not(live: Live) -> None:
    path = f"{API}/requests/{uuid.uuid4().hex}/actions/submit"
    at_limit = b'{"reason": "' + b"x" * (MiB - 14) + b'"}'
    assert len(at_limit) == MiB
    headers = {"Content-Type": "application/json"}
    # Anonymous and within the limit: the body is read and the caller is told 401.
    response = _post(live, path, at_limit, headers)
    assert_problem(response, 401, "unauthenticated")
    assert_problem(_post(live, path, iter([at_limit]), headers), 401, "unauthenticated")
    over = at_limit[:-2] + b'x"}'
    assert_problem(_post(live, path, over, headers), 413, "payload-too-large")
    assert_problem(_post(live, path, iter([over]), headers), 413, "payload-too-large")


def test_json_actions_and_logins_still_work(live: Live, cast: Cast, draft: dict[str, Any]) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        auth = login(client, cast.maker["email"], "correct horse battery staple")  # type: ignore[arg-type]
        # submit is refused on the rules (documents missing), not on the body.
        response = client.post(
            f"{API}/requests/{draft['id']}/actions/submit", json={}, headers=auth
        )
        assert_problem(response, 409)
        assert response.headers.get("connection") != "close"
        created = client.post(
            f"{API}/requests",
            json={"product_id": cast.product["id"], "scheme_code": "FFP2-NM-EN-149",
                  "kind": "certification"},
            headers=auth,
        )  # fmt: skip
        assert created.status_code == 201, created.text


# --- /auth/token takes only the urlencoded form --------------------------------------------


def test_token_with_a_file_part_is_refused_before_the_file_is_read(live: Live) -> None:
    body = Counted(
        20 * MiB,
        head=_part("username", b"admin@mutabaqa.local")
        + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="password"; '
        f'filename="p.bin"\r\n\r\n'.encode(),
        tail=f"\r\n--{BOUNDARY}--\r\n".encode(),
    )
    response = _post(
        live,
        f"{API}/auth/token",
        body,
        {"Content-Type": MULTIPART, "Content-Length": str(body.total)},
    )
    problem = assert_problem(response, 415, "unsupported-media-type")
    assert "application/x-www-form-urlencoded" in problem["detail"]
    assert body.yielded < 10 * MiB
    # Even a small multipart login with the right password is refused; the form works.
    small = _form(
        _part("username", live.settings.admin_email.encode()),
        _part("password", live.settings.admin_password.get_secret_value().encode()),
    )
    assert_problem(_post(live, f"{API}/auth/token", small, {"Content-Type": MULTIPART}), 415)
    with httpx.Client(base_url=live.url, timeout=30) as client:
        login(client, live.settings.admin_email, live.settings.admin_password.get_secret_value())  # type: ignore[arg-type]


# --- uploads: their own limit, a bounded form, a bounded number at once --------------------


def test_uploads_get_the_upload_limit_and_it_comes_before_401(
    live: Live, cast: Cast, draft: dict[str, Any]
) -> None:
    path = f"{API}/requests/{draft['id']}/documents"
    headers = {"Content-Type": MULTIPART}
    # Larger than the JSON limit, within the upload limit: stored.
    big_pdf = PDF + bytes(3 * MiB)
    body = _form(_part("kind", b"technical_file"), _file_part(big_pdf))
    response = _post(live, path, body, headers | cast.maker_auth)
    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(big_pdf)
    # Anonymous and declared over the upload limit: 413 before anything else.
    huge = Counted(BIG, head=_part("kind", b"user_instructions") + _file_part(PDF)[:-2])
    response = _post(live, path, huge, headers | {"Content-Length": str(huge.total)})
    assert_problem(response, 413, "payload-too-large")
    assert huge.yielded < 10 * MiB
    # Anonymous within the limit: 401, and the body is not read to its end.
    small = Counted(5 * MiB, head=_part("kind", b"user_instructions") + _file_part(PDF)[:-2])
    response = _post(live, path, small, headers)
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["connection"] == "close"
    assert _documents(live, cast, draft["id"]) == ["technical_file"]


def test_oversized_part_headers_are_refused_and_nothing_is_stored(
    live: Live, cast: Cast, draft: dict[str, Any]
) -> None:
    path = f"{API}/requests/{draft['id']}/documents"
    headers = {"Content-Type": MULTIPART} | cast.maker_auth
    long_header = f"X-Padding: {'p' * MAX_PART_HEADER_BYTES}\r\nContent-Type: application/pdf\r\n"
    body = _form(_part("kind", b"technical_file"), _file_part(extra=long_header))
    problem = assert_problem(_post(live, path, body, headers), 413, "part-headers-too-large")
    assert str(MAX_PART_HEADER_BYTES) in problem["detail"]
    many = "".join(f"X-H{i}: v\r\n" for i in range(MAX_PART_HEADERS + 1))
    body = _form(_part("kind", b"technical_file"), _file_part(extra=many))
    assert_problem(_post(live, path, body, headers), 413, "part-headers-too-large")
    # A header that never ends, streamed: refused without reading the rest.
    endless = Counted(BIG, head=f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="'.encode())
    assert_problem(_post(live, path, endless, headers), 413, "part-headers-too-large")
    assert endless.yielded < 10 * MiB
    assert _documents(live, cast, draft["id"]) == []


def test_too_many_parts_are_refused_and_nothing_is_stored(
    live: Live, cast: Cast, draft: dict[str, Any]
) -> None:
    path = f"{API}/requests/{draft['id']}/documents"
    headers = {"Content-Type": MULTIPART} | cast.maker_auth
    fields = [_part(f"f{i}", b"") for i in range(MAX_FORM_PARTS)]
    body = _form(_part("kind", b"technical_file"), _file_part(), *fields)
    problem = assert_problem(_post(live, path, body, headers), 413, "too-many-parts")
    assert str(MAX_FORM_PARTS) in problem["detail"]
    assert _documents(live, cast, draft["id"]) == []


@pytest.mark.concurrency
def test_uploads_past_the_cap_get_503_and_the_held_ones_succeed(
    live: Live, cast: Cast, draft: dict[str, Any]
) -> None:
    path = f"{API}/requests/{draft['id']}/documents"
    headers = {"Content-Type": MULTIPART} | cast.maker_auth
    kinds = ["technical_file", "declaration_of_conformity"][:CONCURRENT_UPLOADS]
    release = threading.Event()
    slots = live.app.state.ctx.upload_slots

    def held(kind: str) -> Iterator[bytes]:
        yield _part("kind", kind.encode()) + _file_part(PDF + bytes(64 * 1024))[:-2]
        assert release.wait(60)
        yield bytes(MiB) + b"\r\n" + f"--{BOUNDARY}--\r\n".encode()

    with ThreadPoolExecutor(CONCURRENT_UPLOADS) as pool:
        futures = [pool.submit(_post, live, path, held(kind), headers) for kind in kinds]
        try:
            deadline = time.monotonic() + 30
            while slots.in_use < CONCURRENT_UPLOADS:  # every held upload is streaming
                assert time.monotonic() < deadline, "the held uploads did not start"
                time.sleep(0.05)
            extra = _form(_part("kind", b"user_instructions"), _file_part())
            refused = _post(live, path, extra, headers)
            problem = assert_problem(refused, 503, "too-many-uploads")
            assert refused.headers["retry-after"] == "5"
            assert problem["max_concurrent_uploads"] == CONCURRENT_UPLOADS
        finally:
            release.set()
        answers = [future.result(timeout=60) for future in futures]
    for answer in answers:
        assert answer.status_code == 201, answer.text
        assert answer.json()["size"] == len(PDF) + 64 * 1024 + MiB
    assert _documents(live, cast, draft["id"]) == sorted(kinds)
    # The slots are free again: the refused upload goes through when repeated.
    again = _post(live, path, extra, headers)
    assert again.status_code == 201, again.text
    assert _documents(live, cast, draft["id"]) == sorted([*kinds, "user_instructions"])


# --- the middleware alone, around an application that reads bodies itself -----------------


async def test_a_body_read_outside_fastapi_is_refused_by_the_middleware_itself() -> None:
    """An application without FastAPI's exception handling (a mounted app, say) still gets
    the 413 problem, and is never handed more than the limit."""
    handed: list[int] = []

    async def echo_size(scope: Scope, receive: Receive, send: Send) -> None:
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            handed.append(size)
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})

    app = BodyLimits(echo_size, default_limit=1000, upload_limit=10_000)
    sent = 0

    async def chunks(count: int) -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(count):
            sent += 300
            yield b"x" * 300

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        fits = await client.post("/anything", content=chunks(3))
        assert fits.status_code == 200 and fits.text == "900"
        sent, handed[:] = 0, []
        refused = await client.post("/anything", content=chunks(100))
    problem = assert_problem(refused, 413, "payload-too-large")
    assert problem["max_bytes"] == 1000
    assert max(handed) <= 1000 and sent <= 1200
