"""Organisation webhooks: configured through the API, delivered by the activity through a real
Temporal server to a real HTTP receiver on loopback, signed, retried, and logged for the
organisation (and for it only)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.webhooks import (
    WEBHOOK_FAILED,
    WEBHOOK_RETRY_POLICY,
    WEBHOOK_START_TO_CLOSE,
    WebhookActivities,
    sign,
    verify_signature,
)
from api.app import create_app
from domain.permissions import Role
from models.audit import AuditEvent
from models.webhook_events import WebhookInput, WebhookResult
from models.webhooks import WebhookDelivery, organization_chain
from mutabaqa.clients import connect_temporal
from mutabaqa.settings import Settings
from records.audit import verify_chain
from tests.api.helpers import (
    API,
    Headers,
    admin_headers,
    assert_problem,
    assert_unauthenticated,
    make_manufacturer,
    make_user,
)
from tests.smtp import free_port

WEBHOOK = f"{API}/webhook"
DELIVERIES = f"{API}/webhook/deliveries"

# --- a receiver on loopback ------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # lower-case names
    body: bytes
    answered: int


@dataclass
class Receiver:
    """An HTTP server that records every POST and answers ``fail_status`` to the first
    ``fail_first`` of them, 204 afterwards."""

    fail_first: int = 0
    fail_status: int = 500
    extra_headers: dict[str, str] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    failing = len(receiver.requests) < receiver.fail_first
                    status = receiver.fail_status if failing else 204
                    headers = {name.lower(): value for name, value in self.headers.items()}
                    receiver.requests.append(Received(headers, body, status))
                self.send_response(status)
                answer = b"receiver is down for maintenance" if failing else b""
                for name, value in receiver.extra_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/mutabaqa"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def admin(client: TestClient, settings: Settings) -> Headers:
    return admin_headers(client, settings)


def event(organization_id: str, event_type: str = "certificate.suspended") -> WebhookInput:
    return WebhookInput(
        organization_id=organization_id,
        event_id=f"certificate-MA-CTTH-2026-{uuid.uuid4().hex[:8]}:{uuid.uuid4().hex[:6]}",
        event_type=event_type,
        data={
            "number": "MA-CTTH-2026-000042",
            "issue": 0,
            "status": "suspended",
            "previous_status": "active",
            "reason": "Surveillance non réalisée dans le délai — المراقبة لم تنجز",
        },
    )


def run_deliver(engine: Engine, settings: Settings, params: WebhookInput) -> WebhookResult:
    return ActivityEnvironment().run(WebhookActivities(engine, settings).deliver, params)


def create_webhook(client: TestClient, headers: Headers, url: str) -> str:
    response = client.put(WEBHOOK, json={"url": url}, headers=headers)
    assert response.status_code == 201, response.text
    secret: str = response.json()["secret"]
    return secret


def deliveries(client: TestClient, headers: Headers, **params: Any) -> dict[str, Any]:
    response = client.get(DELIVERIES, headers=headers, params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def signature_parts(header: str) -> tuple[int, str]:
    fields = dict(item.split("=", 1) for item in header.split(","))
    assert set(fields) == {"t", "v1"}, header
    return int(fields["t"]), fields["v1"]


def independent_hmac(secret: str, timestamp: int, body: bytes) -> str:
    """The documented scheme, written out again here rather than calling the code under test."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


# --- through Temporal --------------------------------------------------------------------


@workflow.defn(name="WebhookProbe", sandboxed=False)
class WebhookProbeWorkflow:
    @workflow.run
    async def run(self, params: WebhookInput) -> WebhookResult:
        return await workflow.execute_activity_method(
            WebhookActivities.deliver,
            params,
            start_to_close_timeout=WEBHOOK_START_TO_CLOSE,
            retry_policy=WEBHOOK_RETRY_POLICY,
        )


async def _through_temporal(
    engine: Engine, settings: Settings, task_queue: str, params: WebhookInput
) -> tuple[WebhookResult, list[int]]:
    """Run ``deliver`` in a workflow on the session's Temporal server; the result and the
    attempt number of each started activity task (history keeps the last one)."""
    client = await connect_temporal(settings)
    activities = WebhookActivities(engine, settings)
    with ThreadPoolExecutor(4) as executor:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[WebhookProbeWorkflow],
            activities=[activities.deliver],
            activity_executor=executor,
        ):
            handle = await client.start_workflow(
                WebhookProbeWorkflow.run,
                params,
                id=f"webhook-probe-{uuid.uuid4().hex}",
                task_queue=task_queue,
                execution_timeout=timedelta(seconds=90),
            )
            result = await asyncio.wait_for(handle.result(), timeout=60)
            started = [
                e.activity_task_started_event_attributes.attempt
                async for e in handle.fetch_history_events()
                if e.HasField("activity_task_started_event_attributes")
            ]
    return result, started


def deliver_through_temporal(
    engine: Engine, settings: Settings, task_queue: str, params: WebhookInput
) -> tuple[WebhookResult, list[int]]:
    return asyncio.run(_through_temporal(engine, settings, task_queue, params))


def test_receiver_verifies_the_signature_with_the_secret_it_was_given(
    client: TestClient, admin: Headers, engine: Engine, settings: Settings, task_queue: str
) -> None:
    org, _user, maker = make_manufacturer(client, admin)
    params = event(org["id"])
    with Receiver() as receiver:
        secret = create_webhook(client, maker, receiver.url)
        before = time.time()
        result, started = deliver_through_temporal(engine, settings, task_queue, params)
        after = time.time()

    assert result.delivered is True and result.attempts == 1 and result.status_code == 204
    assert started == [1]
    [request] = receiver.requests
    assert request.headers["content-type"] == "application/json"
    assert request.headers["mutabaqa-event"] == "certificate.suspended"
    assert request.headers["mutabaqa-delivery"] == params.event_id
    body = json.loads(request.body)
    assert body["id"] == params.event_id and body["type"] == "certificate.suspended"
    assert body["data"] == params.data
    assert before - 1 <= datetime.fromisoformat(body["created"]).timestamp() <= after + 1

    header = request.headers["mutabaqa-signature"]
    timestamp, digest = signature_parts(header)
    assert before - 1 <= timestamp <= after + 1, "the timestamp is the sending time"
    assert digest == independent_hmac(secret, timestamp, request.body)
    assert verify_signature(secret, header, request.body)
    # What a receiver must refuse: a changed body, another secret, a replay later on.
    tampered = request.body.replace(b'"suspended"', b'"active"', 1)
    assert tampered != request.body
    assert not verify_signature(secret, header, tampered)
    assert not verify_signature(
        secret[:-1] + ("A" if secret[-1] != "A" else "B"), header, request.body
    )
    assert not verify_signature(secret, header, request.body, now=timestamp + 301)
    assert verify_signature(secret, header, request.body, now=timestamp + 299)


@pytest.mark.timers
def test_a_failing_endpoint_is_retried_and_delivered_exactly_once(
    client: TestClient, admin: Headers, engine: Engine, settings: Settings, task_queue: str
) -> None:
    org, _user, maker = make_manufacturer(client, admin)
    params = event(org["id"], "certificate.withdrawn")
    with Receiver(fail_first=2) as receiver:
        secret = create_webhook(client, maker, receiver.url)
        result, started = deliver_through_temporal(engine, settings, task_queue, params)
        answered = [request.answered for request in receiver.requests]
        # Run again with the same event id (a repeated call): not sent again.
        again = run_deliver(engine, settings, params)
        total = len(receiver.requests)

    assert answered == [500, 500, 204]
    assert total == 3
    assert result.delivered is True and result.attempts == 3
    assert started == [3], "history records the attempt that succeeded"
    assert again.delivered is True and again.attempts == 3
    # Every attempt carries the same event and body, each freshly signed.
    assert {r.headers["mutabaqa-delivery"] for r in receiver.requests} == {params.event_id}
    assert len({r.body for r in receiver.requests}) == 1
    for request in receiver.requests:
        assert verify_signature(secret, request.headers["mutabaqa-signature"], request.body)

    [entry] = deliveries(client, maker)["items"]
    assert entry["event_id"] == params.event_id
    assert entry["event_type"] == "certificate.withdrawn"
    assert entry["status"] == "delivered"
    assert entry["attempts"] == 3
    assert entry["last_status_code"] == 204
    assert entry["last_error"] is None
    assert entry["delivered_at"] is not None
    assert entry["url"] == receiver.url
    assert entry["payload"] == json.loads(receiver.requests[-1].body)

    # Another organisation's manufacturer sees its own (empty) log, not this one.
    _other_org, _other, other_maker = make_manufacturer(client, admin)
    assert deliveries(client, other_maker) == {"items": [], "next_cursor": None}


def test_without_an_active_webhook_nothing_is_sent(
    client: TestClient, admin: Headers, engine: Engine, settings: Settings
) -> None:
    org, _user, maker = make_manufacturer(client, admin)
    result = run_deliver(engine, settings, event(org["id"]))
    assert result == WebhookResult(delivered=False)

    with Receiver() as receiver:
        create_webhook(client, maker, receiver.url)
        assert client.delete(WEBHOOK, headers=maker).json()["active"] is False
        result = run_deliver(engine, settings, event(org["id"]))
    assert result.delivered is False
    assert receiver.requests == []
    assert deliveries(client, maker)["items"] == []


def test_an_unknown_organisation_is_not_an_error(engine: Engine, settings: Settings) -> None:
    assert run_deliver(engine, settings, event(uuid.uuid4().hex)).delivered is False


# --- failures, one attempt at a time -------------------------------------------------------


def test_a_server_error_is_logged_and_retryable_and_deactivation_cancels(
    client: TestClient, admin: Headers, engine: Engine, settings: Settings
) -> None:
    org, _user, maker = make_manufacturer(client, admin)
    params = event(org["id"])
    with Receiver(fail_first=100, fail_status=503) as receiver:
        create_webhook(client, maker, receiver.url)
        with pytest.raises(ApplicationError) as caught:
            run_deliver(engine, settings, params)
        assert client.delete(WEBHOOK, headers=maker).status_code == 200
        after_deactivation = run_deliver(engine, settings, params)
        sent = len(receiver.requests)

    assert caught.value.type == WEBHOOK_FAILED
    assert caught.value.non_retryable is False
    assert "503" in str(caught.value)
    assert after_deactivation.delivered is False
    assert sent == 1
    [entry] = deliveries(client, maker)["items"]
    assert entry["status"] == "cancelled"
    assert entry["attempts"] == 1
    assert entry["last_status_code"] == 503
    assert entry["delivered_at"] is None


def test_an_unreachable_endpoint_is_logged_and_retryable(
    client: TestClient, admin: Headers, engine: Engine, settings: Settings
) -> None:
    org, _user, maker = make_manufacturer(client, admin)
    create_webhook(client, maker, f"http://127.0.0.1:{free_port()}/hook")
    with pytest.raises(ApplicationError) as caught:
        run_deliver(engine, settings, event(org["id"]))
    assert caught.value.non_retryable is False
    [entry] = deliveries(client, maker)["items"]
    assert entry["status"] == "pending"
    assert entry["attempts"] == 1
    assert entry["last_status_code"] is None
    assert entry["last_error"] == "connection failed"  # no address: that is for the log
    assert "ConnectError" in str(caught.value)  # the operators' detail


@pytest.mark.parametrize(
    ("status", "headers", "logged"),
    [
        (404, {}, "HTTP 404"),
        (410, {}, "HTTP 410"),
        (
            302,
            {"Location": "https://elsewhere.example/hook"},
            "HTTP 302 (redirects are not followed)",
        ),
    ],
)
def test_client_errors_and_redirects_are_retried(
    client: TestClient,
    admin: Headers,
    engine: Engine,
    settings: Settings,
    status: int,
    headers: dict[str, str],
    logged: str,
) -> None:
    org, _user, maker = make_manufacturer(client, admin)
    with Receiver(fail_first=100, fail_status=status, extra_headers=headers) as receiver:
        create_webhook(client, maker, receiver.url)
        with pytest.raises(ApplicationError) as caught:
            run_deliver(engine, settings, event(org["id"]))
        assert len(receiver.requests) == 1
    assert caught.value.non_retryable is False
    [entry] = deliveries(client, maker)["items"]
    assert entry["last_status_code"] == status
    # The organisation's log says what happened, never what the receiver answered; the
    # operators' detail (the failure, the worker's log) has the answer.
    assert entry["last_error"] == logged
    assert "maintenance" not in entry["last_error"]
    assert "maintenance" in str(caught.value) or status == 302
    assert entry["status"] == "pending"


def test_private_targets_are_refused_outside_development(
    client: TestClient, admin: Headers, engine: Engine, settings: Settings
) -> None:
    org, _user, maker = make_manufacturer(client, admin)
    with Receiver() as receiver:
        port = int(receiver.url.split(":")[2].split("/")[0])
        allowed = settings.model_copy(update={"webhook_allowed_ports": [port]})
        production_like = WebhookActivities(engine, allowed, allow_private_targets=False)
        create_webhook(client, maker, receiver.url)
        with pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(production_like.deliver, event(org["id"]))
        assert receiver.requests == []
    assert "not a public address" in str(caught.value)  # the operators' detail
    [entry] = deliveries(client, maker)["items"]
    assert entry["last_error"] == "connection refused by policy"
    assert "127.0.0.1" not in entry["last_error"]


# --- the API -----------------------------------------------------------------------------


def test_rotating_the_secret_shows_a_new_one_that_signs_from_then_on(
    client: TestClient, admin: Headers, engine: Engine, settings: Settings
) -> None:
    org, _user, maker = make_manufacturer(client, admin)
    with Receiver() as receiver:
        first = create_webhook(client, maker, receiver.url)
        assert len(first) == 43  # 32 bytes, base64url without padding

        unchanged = client.put(WEBHOOK, json={"url": receiver.url}, headers=maker)
        assert unchanged.status_code == 200, unchanged.text
        assert "secret" not in unchanged.json()

        rotated = client.put(
            WEBHOOK, json={"url": receiver.url, "rotate_secret": True}, headers=maker
        )
        assert rotated.status_code == 200, rotated.text
        second = rotated.json()["secret"]
        assert second != first and len(second) == 43

        run_deliver(engine, settings, event(org["id"]))
    [request] = receiver.requests
    header = request.headers["mutabaqa-signature"]
    assert verify_signature(second, header, request.body)
    assert not verify_signature(first, header, request.body)


def test_get_never_shows_the_secret(client: TestClient, admin: Headers) -> None:
    _org, _user, maker = make_manufacturer(client, admin)
    assert_problem(client.get(WEBHOOK, headers=maker), 404, "not-found")
    url = "https://erp.example.ma/hooks/mutabaqa?source=mutabaqa"
    created = client.put(WEBHOOK, json={"url": url}, headers=maker)
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert created.json()["url"] == url and created.json()["active"] is True

    shown = client.get(WEBHOOK, headers=maker)
    assert shown.status_code == 200
    assert set(shown.json()) == {"url", "active", "created_at", "updated_at"}
    assert shown.json()["url"] == url
    assert secret not in shown.text

    deactivated = client.delete(WEBHOOK, headers=maker)
    assert deactivated.status_code == 200 and secret not in deactivated.text
    assert client.get(WEBHOOK, headers=maker).json()["active"] is False
    again = client.put(WEBHOOK, json={"url": url}, headers=maker)
    assert again.status_code == 200 and again.json()["active"] is True
    assert "secret" not in again.json()
    assert secret not in client.get(WEBHOOK, headers=maker).text


def test_only_manufacturers_manage_webhooks(client: TestClient, admin: Headers) -> None:
    _tech, tech = make_user(client, admin, [Role.LAB_TECHNICIAN], centre_code="CTTH")
    _officer, officer = make_user(client, admin, [Role.COMPLIANCE_OFFICER])
    body = {"url": "https://erp.example.ma/hook"}
    for headers in (tech, officer, admin):
        assert_problem(client.put(WEBHOOK, json=body, headers=headers), 403, "forbidden")
        assert_problem(client.get(WEBHOOK, headers=headers), 403, "forbidden")
        assert_problem(client.delete(WEBHOOK, headers=headers), 403, "forbidden")
        assert_problem(client.get(DELIVERIES, headers=headers), 403, "forbidden")
    assert_unauthenticated(client.put(WEBHOOK, json=body))
    assert_unauthenticated(client.get(DELIVERIES))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://erp.example.ma/hook",
        "javascript:alert(1)",
        "erp.example.ma/hook",
        "https://user:password@erp.example.ma/hook",
        "https://token@erp.example.ma/hook",
        "https:///hook",
        "https://erp.example.ma:99999/hook",
        "https://erp example.ma/hook",
        "https://erp.example.ma/hook#part",
        "https://bad_host.example/hook",
        "https://erp.example.ma/" + "x" * 500,
        "",
    ],
)
def test_bad_urls_are_refused(client: TestClient, admin: Headers, url: str) -> None:
    _org, _user, maker = make_manufacturer(client, admin)
    assert_problem(client.put(WEBHOOK, json={"url": url}, headers=maker), 422, "invalid-body")
    assert_problem(client.get(WEBHOOK, headers=maker), 404)  # nothing was stored


def test_unknown_fields_are_refused(client: TestClient, admin: Headers) -> None:
    _org, _user, maker = make_manufacturer(client, admin)
    body = {"url": "https://erp.example.ma/hook", "secret": "mine"}
    assert_problem(client.put(WEBHOOK, json=body, headers=maker), 422, "invalid-body")


def test_changes_are_audited_on_the_organisation_chain_without_the_secret(
    client: TestClient, admin: Headers, engine: Engine
) -> None:
    org, user, maker = make_manufacturer(client, admin)
    secret = create_webhook(client, maker, "https://erp.example.ma/a")
    client.put(WEBHOOK, json={"url": "https://erp.example.ma/a"}, headers=maker)  # no change
    client.put(WEBHOOK, json={"url": "https://erp.example.ma/b"}, headers=maker)
    rotated = client.put(
        WEBHOOK, json={"url": "https://erp.example.ma/b", "rotate_secret": True}, headers=maker
    ).json()["secret"]
    client.delete(WEBHOOK, headers=maker)

    chain = organization_chain(org["id"])
    with Session(engine) as session:
        events = session.exec(
            select(AuditEvent).where(AuditEvent.chain == chain).order_by(col(AuditEvent.seq))
        ).all()
        assert verify_chain(session, chain) is None
    assert [e.action for e in events] == [
        "webhook.create",
        "webhook.update",
        "webhook.update",
        "webhook.deactivate",
    ]
    assert all(e.actor_id == user["id"] and e.actor_role == "manufacturer" for e in events)
    assert events[1].detail["before"]["url"] == "https://erp.example.ma/a"
    assert events[1].detail["after"]["url"] == "https://erp.example.ma/b"
    assert events[2].detail["secret_rotated"] is True
    for e in events:
        assert secret not in e.canonical and rotated not in e.canonical


def test_the_delivery_log_is_paginated_newest_first(
    client: TestClient, admin: Headers, engine: Engine, settings: Settings
) -> None:
    org, _user, maker = make_manufacturer(client, admin)
    with Receiver() as receiver:
        create_webhook(client, maker, receiver.url)
        sent = [event(org["id"]) for _ in range(3)]
        for params in sent:
            run_deliver(engine, settings, params)
    first = deliveries(client, maker, limit=2)
    assert [e["event_id"] for e in first["items"]] == [sent[2].event_id, sent[1].event_id]
    assert first["next_cursor"]
    second = deliveries(client, maker, limit=2, cursor=first["next_cursor"])
    assert [e["event_id"] for e in second["items"]] == [sent[0].event_id]
    assert second["next_cursor"] is None
    with Session(engine) as session:
        rows = session.exec(
            select(WebhookDelivery).where(WebhookDelivery.organization_id == org["id"])
        ).all()
    assert sorted(row.event_id for row in rows) == sorted(p.event_id for p in sent)


# --- the signature scheme ------------------------------------------------------------------


def test_signature_matches_the_documented_scheme() -> None:
    secret, timestamp, body = "s3cr3t", 1_767_225_600, b'{"id":"e1","type":"certificate.expired"}'
    assert sign(secret, timestamp, body) == independent_hmac(secret, timestamp, body)
    assert sign(secret, timestamp, body) != sign(secret, timestamp + 1, body)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "t=1767225600",
        "v1={sig}",
        "t=abc,v1={sig}",
        "t=1767225600,t=1767225600,v1={sig}",
        "t=1767225600,v0={sig}",
        "t=1767225600,v1={sig}0",
    ],
)
def test_malformed_signature_headers_fail(header: str) -> None:
    secret, timestamp, body = "s3cr3t", 1_767_225_600, b"{}"
    good = sign(secret, timestamp, body)
    assert verify_signature(secret, f"t={timestamp},v1={good}", body, now=timestamp)
    assert not verify_signature(secret, header.format(sig=good), body, now=timestamp)


def test_any_matching_v1_is_accepted() -> None:
    secret, timestamp, body = "s3cr3t", 1_767_225_600, b"{}"
    header = f"t={timestamp},v1={'0' * 64},v1={sign(secret, timestamp, body)}"
    assert verify_signature(secret, header, body, now=timestamp + 10)
