"""Walks FFP2 requests through the HTTP API of a running server, creation to certificate.

For concurrency tests, the crash test and ``bench/pipeline.py``: everything goes through
the real HTTP API (``httpx.AsyncClient``), as a client program would drive it::

    async with httpx.AsyncClient(base_url="http://127.0.0.1:8000") as client:
        people = await make_people(client, "admin@mutabaqa.local", "...")
        result = await walk(client, people, timeout=120)
        assert result.ok, result.errors
        results = await run_walks(client, people, 30, concurrency=10, total_timeout=600)

One walk: create (``Idempotency-Key``), upload the four FFP2 documents, submit, wait for
``application_review``, accept (officer), receive the sample (technician), record every
result, submit them, verify them (a second technician), grant (officer), then wait until
the public ``/verify/{number}`` shows the certificate ``active`` and its PDF downloads.

The walker is built to survive a server killed and restarted mid-walk:

- every step has its own fixed ``Idempotency-Key`` (the walk's uuid and the step's name),
  and a call answered 503 or any other 5xx, or that fails to connect or times out, is sent
  again with the same key after a short back-off, until the walk's deadline;
- before each step the walker reads the request (``GET /api/v1/requests/{id}`` as the
  person who acts next) and skips the step when the request shows it done (its status is
  past the step, the document or this round's result is there); otherwise it waits, polling
  every ``POLL_SECONDS``, until the action is in ``allowed_actions`` and sends it at once.

A 409 is never retried silently: each one is recorded in ``WalkResult.conflicts`` with what
the walker had read (status, ``allowed_actions``, ``updated_at``, when) and the request's
timeline fetched right after the 409, so that a test can check that some other event came
between the read and the action (``Conflict.intervening_events()``). After a 409 the walker
reads the request again and carries on from what it shows.

Uploads and results have no ``Idempotency-Key`` of their own in the API (each upload is a
new file, each result a new revision); the walker sends the header anyway and, before a
retry, re-reads the request and skips the call when the document or result is recorded.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from domain.permissions import Role
from tests.api.helpers import PASSWORD, unique_ice
from tests.api.lab_helpers import FFP2_PASSING
from tests.api.requests_helpers import FFP2, FFP2_DOCUMENTS, PDF, PNG

API = "/api/v1"
Headers = dict[str, str]
Json = dict[str, Any]

#: How often a waiting step re-reads the request.
POLL_SECONDS = 0.075
#: Back-off after a 5xx or a connection error: doubles from the first value up to the last.
BACKOFF_SECONDS = (0.1, 1.0)
#: Upper bound of one HTTP call (the API itself answers 503 after 15 s by default).
CALL_TIMEOUT_SECONDS = 30.0
#: Longest wait honoured from a 429's ``Retry-After``.
MAX_RETRY_AFTER_SECONDS = 5.0

#: The request statuses of a certification walk, in order.
STATUS_ORDER = (
    "draft",
    "submitted",
    "application_review",
    "awaiting_sample",
    "testing",
    "results_submitted",
    "evaluated",
    "certified",
)
#: Where each action leads (the step is done once the request is at or past it).
ACTION_TARGET = {
    "submit": "submitted",
    "accept": "awaiting_sample",
    "receive_sample": "testing",
    "submit_results": "results_submitted",
    "verify_results": "evaluated",
    "grant": "certified",
}
SAMPLE = {"sample_ref": "CTTH-BENCH-0001", "condition": "Sealed box of 20"}


class WalkError(Exception):
    """The walk cannot go on (deadline passed, or an answer it cannot handle)."""


@dataclass(frozen=True)
class People:
    """Everyone a walk needs, each logged in (``*_auth`` is the bearer header)."""

    admin_auth: Headers
    org: Json
    maker: Json
    maker_auth: Headers
    product: Json
    tech: Json
    tech_auth: Headers
    verifier: Json
    verifier_auth: Headers
    officer: Json
    officer_auth: Headers


@dataclass
class Conflict:
    """One 409 the walker got, with what it had read before acting and the timeline after."""

    step: str
    action: str
    #: The problem body of the 409.
    problem: Any
    #: What the read before the action showed (``None``: the action was sent without one).
    seen_status: str | None
    seen_allowed_actions: list[str]
    seen_updated_at: datetime | None
    #: Wall-clock (UTC) times: the read was sent, the action was sent, the 409 came back.
    read_at: datetime | None
    sent_at: datetime
    answered_at: datetime
    #: ``GET /api/v1/requests/{id}/timeline`` items right after the 409 (may be empty if
    #: the timeline could not be read before the deadline).
    timeline: list[Json] = field(default_factory=list)

    def intervening_events(self) -> list[Json]:
        """Timeline events the read before the action did not reflect: a status change
        later than the read's ``updated_at``, or any event at or after the read was sent."""
        found = []
        for item in self.timeline:
            at = parse_time(item["at"])
            transition = item.get("to_status") is not None
            if (self.read_at is not None and at >= self.read_at) or (
                transition and (self.seen_updated_at is None or at > self.seen_updated_at)
            ):
                found.append(item)
        return found


@dataclass
class WalkResult:
    walk_id: str
    request_id: str | None = None
    certificate_number: str | None = None
    ok: bool = False
    #: Seconds per step, from the end of the previous step (waiting included) to success.
    steps: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    started_at: float = 0.0  # time.monotonic()
    unavailable: int = 0  # 503 answers
    server_errors: int = 0  # other 5xx answers
    connection_errors: int = 0  # no answer: refused, reset, timed out
    conflicts: list[Conflict] = field(default_factory=list)
    #: Every answer that was retried (5xx, 429, no answer): what was called, what came back.
    retried: list[str] = field(default_factory=list)
    throttled: int = 0  # 429 answers of the public routes
    #: Steps found already done when the walker came to them (after a retry or restart).
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def conflict_count(self) -> int:
        return len(self.conflicts)


def now_utc() -> datetime:
    return datetime.now(UTC)


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class _Caller:
    """Sends HTTP calls, retrying 5xx and connection errors until a deadline; counts them."""

    def __init__(self, client: httpx.AsyncClient, deadline: float, result: WalkResult) -> None:
        self.client = client
        self.deadline = deadline
        self.result = result

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    async def pause(self, seconds: float) -> None:
        if self.remaining() <= 0:
            raise WalkError("deadline passed")
        await asyncio.sleep(max(0.0, min(seconds, self.remaining())))

    async def call(
        self,
        method: str,
        url: str,
        what: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        once: bool = False,
    ) -> httpx.Response | None:
        """One logical call: the same request again after 5xx, 429 or no answer (with a
        short back-off); returns the first other answer. With ``once``, returns ``None``
        after the back-off instead of sending again (the caller re-reads first). Raises
        ``WalkError`` at the deadline."""
        delay = BACKOFF_SECONDS[0]
        last = "no attempt"
        while True:
            remaining = self.remaining()
            if remaining <= 0:
                raise WalkError(f"{what}: deadline passed (last: {last})")
            wait = delay
            try:
                response = await self.client.request(
                    method,
                    url,
                    headers=headers,
                    json=json,
                    data=data,
                    files=files,
                    timeout=min(CALL_TIMEOUT_SECONDS, max(remaining, 0.1)),
                )
            except httpx.TransportError as exc:
                self.result.connection_errors += 1
                last = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status < 500 and status != 429:
                    return response
                last = f"{status} {response.text[:200]}"
                if status == 503:
                    self.result.unavailable += 1
                elif status == 429:
                    self.result.throttled += 1
                    wait = _retry_after(response, delay)
                else:
                    self.result.server_errors += 1
            self.result.retried.append(f"{what}: {last}")
            await self.pause(wait * random.uniform(0.8, 1.2))
            if once:
                return None
            delay = min(delay * 2, BACKOFF_SECONDS[1])

    async def send(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        """``call`` that always returns an answer (never ``once``)."""
        response = await self.call(method, url, what, **kwargs)
        assert response is not None
        return response


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return min(float(response.headers.get("retry-after", default)), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        return default


def _expect(response: httpx.Response, what: str, *statuses: int) -> Json:
    if response.status_code not in statuses:
        raise WalkError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    body: Json = response.json()
    return body


# --- people --------------------------------------------------------------------------------


async def _login(caller: _Caller, email: str, password: str) -> Headers:
    response = await caller.send(
        "POST", f"{API}/auth/token", "login", data={"username": email, "password": password}
    )
    token = _expect(response, f"login {email}", 200)["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def _make_user(
    caller: _Caller,
    admin: Headers,
    roles: list[Role],
    *,
    organization_id: str | None = None,
    centre_code: str | None = None,
) -> tuple[Json, Headers]:
    body = {
        "email": f"walker-{uuid.uuid4().hex[:12]}@example.ma",
        "full_name": f"Walker {uuid.uuid4().hex[:6]}",
        "password": PASSWORD,
        "roles": [str(role) for role in roles],
        "organization_id": organization_id,
        "centre_code": centre_code,
    }
    response = await caller.send("POST", f"{API}/users", "create user", json=body, headers=admin)
    user = _expect(response, "create user", 201)
    return user, await _login(caller, user["email"], PASSWORD)


async def make_people(
    client: httpx.AsyncClient,
    admin_email: str,
    admin_password: str,
    *,
    timeout: float = 120.0,  # noqa: ASYNC109 (a deadline for the retries, not a cancel)
) -> People:
    """Log in as the admin and make an organisation with a manufacturer and a product, two
    CTTH technicians (one records, the other verifies) and a compliance officer."""
    caller = _Caller(client, time.monotonic() + timeout, WalkResult(walk_id="people"))
    admin = await _login(caller, admin_email, admin_password)
    org_body = {
        "name": f"Fabricant {uuid.uuid4().hex[:8]}",
        "name_ar": "مصنع تجريبي",
        "registration_id": unique_ice(),
        "address": "Zone industrielle, Casablanca",
        "country": "MA",
    }
    response = await caller.send(
        "POST", f"{API}/organizations", "create organisation", json=org_body, headers=admin
    )
    org = _expect(response, "create organisation", 201)
    maker, maker_auth = await _make_user(
        caller, admin, [Role.MANUFACTURER], organization_id=org["id"]
    )
    product_body = {
        "name": "Demi-masque filtrant FFP2",
        "name_ar": "نصف قناع ترشيحي",
        "brand": "Atlas",
        "model": f"AT-{uuid.uuid4().hex[:6].upper()}",
        "description": "Demi-masque filtrant pliable, sans soupape.",
        "hs_code": "630790",
    }
    response = await caller.send(
        "POST", f"{API}/products", "create product", json=product_body, headers=maker_auth
    )
    product = _expect(response, "create product", 201)
    tech, tech_auth = await _make_user(caller, admin, [Role.LAB_TECHNICIAN], centre_code="CTTH")
    verifier, verifier_auth = await _make_user(
        caller, admin, [Role.LAB_TECHNICIAN], centre_code="CTTH"
    )
    officer, officer_auth = await _make_user(caller, admin, [Role.COMPLIANCE_OFFICER])
    return People(
        admin_auth=admin,
        org=org,
        maker=maker,
        maker_auth=maker_auth,
        product=product,
        tech=tech,
        tech_auth=tech_auth,
        verifier=verifier,
        verifier_auth=verifier_auth,
        officer=officer,
        officer_auth=officer_auth,
    )


# --- one walk ------------------------------------------------------------------------------


def _at_or_past(request: Json, status: str) -> bool:
    current = request["status"]
    return current in STATUS_ORDER and STATUS_ORDER.index(current) >= STATUS_ORDER.index(status)


def _has_document(kind: str) -> Callable[[Json], bool]:
    def done(request: Json) -> bool:
        return _at_or_past(request, "submitted") or any(
            d.get("kind") == kind and d.get("superseded_at") is None for d in request["documents"]
        )

    return done


def _has_result(item: str) -> Callable[[Json], bool]:
    def done(request: Json) -> bool:
        return _at_or_past(request, "results_submitted") or any(
            r["item_code"] == item and r["round"] == request["round"] for r in request["results"]
        )

    return done


@dataclass
class _Seen:
    """The last read of the request by one person, and when it was sent."""

    request: Json
    read_at: datetime


class _Walk:
    def __init__(self, client: httpx.AsyncClient, people: People, timeout: float) -> None:
        self.people = people
        self.result = WalkResult(walk_id=uuid.uuid4().hex, started_at=time.monotonic())
        self.caller = _Caller(client, self.result.started_at + timeout, self.result)
        self.mark = self.result.started_at
        self.request_id = ""

    def key(self, step: str) -> str:
        return f"walk-{self.result.walk_id}:{step}"

    def done_step(self, step: str) -> None:
        now = time.monotonic()
        self.result.steps[step] = now - self.mark
        self.mark = now

    async def read(self, auth: Headers) -> _Seen:
        read_at = now_utc()
        response = await self.caller.send(
            "GET", f"{API}/requests/{self.request_id}", "read request", headers=auth
        )
        return _Seen(_expect(response, "read request", 200), read_at)

    async def timeline(self, auth: Headers) -> list[Json]:
        try:
            response = await self.caller.send(
                "GET", f"{API}/requests/{self.request_id}/timeline", "timeline", headers=auth
            )
        except WalkError:
            return []
        if response.status_code != 200:
            return []
        items: list[Json] = response.json()["items"]
        return items

    async def step(
        self,
        name: str,
        action: str,
        auth: Headers,
        done: Callable[[Json], bool],
        send: Callable[[], Awaitable[httpx.Response | None]],
        ok: tuple[int, ...] = (200,),
        seen: _Seen | None = None,
    ) -> Json:
        """Wait until ``action`` is allowed (or ``done`` shows the step done), send it once
        allowed, record any 409 with the timeline; returns the answer (or the request as
        read when the step was found done)."""
        sent_before = False
        while True:
            if seen is None:
                seen = await self.read(auth)
            request = seen.request
            if done(request):
                if not sent_before:
                    self.result.skipped.append(name)
                self.done_step(name)
                return request
            if action not in request["allowed_actions"]:
                if request["status"] not in STATUS_ORDER:
                    raise WalkError(f"{name}: the request is {request['status']!r}")
                await self.caller.pause(POLL_SECONDS)
                seen = None
                continue
            sent_at = now_utc()
            sent_before = True
            response = await send()
            if response is None:  # 5xx or no answer: read again before another try
                seen = None
                continue
            if response.status_code in ok:
                self.done_step(name)
                answer: Json = response.json()
                return answer
            if response.status_code != 409:
                _expect(response, name, *ok)  # raises with the body
            self.result.conflicts.append(
                Conflict(
                    step=name,
                    action=action,
                    problem=_problem(response),
                    seen_status=request["status"],
                    seen_allowed_actions=list(request["allowed_actions"]),
                    seen_updated_at=parse_time(request["updated_at"]),
                    read_at=seen.read_at,
                    sent_at=sent_at,
                    answered_at=now_utc(),
                    timeline=await self.timeline(self.people.officer_auth),
                )
            )
            seen = None

    def action(
        self, action: str, auth: Headers, body: Json | None = None
    ) -> Callable[[], Awaitable[httpx.Response | None]]:
        async def send() -> httpx.Response | None:
            return await self.caller.send(
                "POST",
                f"{API}/requests/{self.request_id}/actions/{action}",
                action,
                json=body or {},
                headers=auth | {"Idempotency-Key": self.key(action)},
            )

        return send

    async def transition(
        self, action: str, auth: Headers, body: Json | None = None, seen: _Seen | None = None
    ) -> Json:
        target = ACTION_TARGET[action]
        return await self.step(
            action,
            action,
            auth,
            lambda request: _at_or_past(request, target),
            self.action(action, auth, body),
            seen=seen,
        )

    async def create(self) -> None:
        people = self.people
        response = await self.caller.send(
            "POST",
            f"{API}/requests",
            "create",
            json={"product_id": people.product["id"], "scheme_code": FFP2, "kind": "certification"},
            headers=people.maker_auth | {"Idempotency-Key": self.key("create")},
        )
        created = _expect(response, "create", 200, 201)
        self.request_id = self.result.request_id = created["id"]
        self.done_step("create")

    async def upload(self, kind: str) -> None:
        auth = self.people.maker_auth
        if kind == "product_photos":
            file = ("photo.png", PNG, "image/png")
        else:
            file = (f"{kind}.pdf", PDF, "application/pdf")

        async def send() -> httpx.Response | None:
            return await self.caller.call(
                "POST",
                f"{API}/requests/{self.request_id}/documents",
                f"upload {kind}",
                data={"kind": kind},
                files={"file": file},
                headers=auth | {"Idempotency-Key": self.key(f"upload:{kind}")},
                once=True,
            )

        await self.step(
            f"upload:{kind}", "upload_document", auth, _has_document(kind), send, (201,)
        )

    async def record(self, item: str, body: Json, seen: _Seen | None = None) -> None:
        auth = self.people.tech_auth

        async def send() -> httpx.Response | None:
            return await self.caller.call(
                "PUT",
                f"{API}/requests/{self.request_id}/results/{item}",
                f"result {item}",
                json=body,
                headers=auth | {"Idempotency-Key": self.key(f"result:{item}")},
                once=True,
            )

        await self.step(
            f"result:{item}", "record_result", auth, _has_result(item), send, (200, 201), seen
        )

    async def certificate(self, number: str) -> None:
        """Until ``/verify/{number}`` shows the certificate active and its PDF downloads."""
        last = "no answer yet"
        try:
            while True:
                response = await self.caller.send(
                    "GET", f"/verify/{number}", "verify", headers={"Accept": "application/json"}
                )
                if response.status_code == 200 and response.json()["status"] == "active":
                    break
                if response.status_code not in (200, 404):
                    _expect(response, "verify", 200)
                last = f"{response.status_code} {response.text[:100]}"
                await self.caller.pause(POLL_SECONDS)
            self.done_step("verify")
            last = "no answer yet"
            while True:
                response = await self.caller.send(
                    "GET",
                    f"{API}/certificates/{number}/pdf",
                    "pdf link",
                    headers=self.people.maker_auth,
                )
                if response.status_code == 307:
                    # The presigned URL carries its own signature: no Authorization header.
                    pdf = await self.caller.send("GET", response.headers["location"], "pdf")
                    if pdf.status_code == 200 and pdf.content.startswith(b"%PDF"):
                        break
                    raise WalkError(f"pdf: HTTP {pdf.status_code}: {pdf.content[:200]!r}")
                if response.status_code != 404:
                    _expect(response, "pdf link", 307)
                last = f"{response.status_code} {response.text[:100]}"
                # Being rendered: come back when the server says, as a considerate client.
                await self.caller.pause(_retry_after(response, POLL_SECONDS))
        except WalkError as exc:
            step = "pdf" if "verify" in self.result.steps else "verify"
            raise WalkError(f"{step} of {number}: {exc} (last answer: {last})") from None
        self.done_step("pdf")

    async def run(self) -> None:
        people = self.people
        await self.create()
        for kind in FFP2_DOCUMENTS:
            await self.upload(kind)
        await self.transition("submit", people.maker_auth)
        await self.transition("accept", people.officer_auth)
        received = await self.transition("receive_sample", people.tech_auth, SAMPLE)
        # The answer is the request as the technician sees it: no need to read it again.
        seen: _Seen | None = _Seen(received, now_utc()) if "id" in received else None
        for item, body in FFP2_PASSING.items():
            await self.record(item, body, seen)
            seen = None
        await self.transition("submit_results", people.tech_auth)
        await self.transition("verify_results", people.verifier_auth)
        granted = await self.transition("grant", people.officer_auth)
        number = granted.get("certificate_number")
        if not number:
            raise WalkError(f"grant: no certificate number in {granted}")
        self.result.certificate_number = number
        await self.certificate(number)


def _problem(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


async def walk(
    client: httpx.AsyncClient,
    people: People,
    *,
    timeout: float,  # noqa: ASYNC109 (the walk's deadline: retries stop there, nothing is cut)
) -> WalkResult:
    """One FFP2 request from creation to an active certificate with its PDF. Never raises
    for the walk's own failures: they are in ``errors`` and ``ok`` is false."""
    one = _Walk(client, people, timeout)
    try:
        await one.run()
        one.result.ok = True
    except WalkError as exc:
        one.result.errors.append(str(exc))
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        one.result.errors.append(f"{type(exc).__name__}: {exc}")
    one.result.total_seconds = time.monotonic() - one.result.started_at
    return one.result


async def run_walks(
    client: httpx.AsyncClient,
    people: People,
    count: int,
    *,
    concurrency: int,
    total_timeout: float,
    walk_timeout: float | None = None,
) -> list[WalkResult]:
    """``count`` walks, at most ``concurrency`` at a time, all within ``total_timeout``
    seconds: a walk gets the smaller of ``walk_timeout`` and the time left, and walks not
    started by the end are reported as failed without a call. Results in start order."""
    if count < 0 or concurrency < 1 or total_timeout <= 0:
        raise ValueError("count >= 0, concurrency >= 1 and total_timeout > 0 are required")
    deadline = time.monotonic() + total_timeout
    gate = asyncio.Semaphore(concurrency)

    async def one() -> WalkResult:
        async with gate:
            left = deadline - time.monotonic()
            if left <= 0:
                return WalkResult(walk_id=uuid.uuid4().hex, errors=["not started: time is up"])
            return await walk(client, people, timeout=min(left, walk_timeout or left))

    return list(await asyncio.gather(*(one() for _ in range(count))))
