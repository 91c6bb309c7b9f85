"""Webhook targets (server-side request forgery): the host is resolved once, every address
is checked, and the POST goes to a checked address and nowhere else.

Nothing here leaves loopback: a "public" address is what an injected resolver says, and the
injected connector records which address it was asked for and carries the request to a
receiver on 127.0.0.1 (as the network would carry it to that public address)."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.webhook_targets import (
    CONNECTION_FAILED,
    REFUSED_BY_POLICY,
    TLS_FAILED,
    Answer,
    DeliveryFailed,
    IPAddress,
    Pinned,
    deliver_pinned,
    http_connector,
    pin,
    refusal,
)
from activities.webhooks import WebhookActivities
from api.app import create_app
from mutabaqa.settings import Settings
from tests.activities.test_webhooks import (
    Receiver,
    create_webhook,
    deliveries,
    event,
)
from tests.api.helpers import Headers, admin_headers, make_manufacturer
from tests.tls import make_pki

PUBLIC = ipaddress.ip_address("93.184.215.14")  # stands for a public server in these tests
PUBLIC_2 = ipaddress.ip_address("1.1.1.1")
LOOPBACK = ipaddress.ip_address("127.0.0.1")
HOST = "hooks.example.test"


# --- which addresses are public --------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:8.8.8.8",  # IPv4-mapped, even of a public address
        "::ffff:127.0.0.1",
        "::8.8.8.8",  # IPv4-compatible
        "::127.0.0.1",
        "64:ff9b::808:808",  # NAT64 (8.8.8.8)
        "64:ff9b::7f00:1",  # NAT64 (127.0.0.1)
        "64:ff9b:1::a00:1",  # local-use NAT64
        "2002:808:808::1",  # 6to4 (8.8.8.8)
        "2002:7f00:1::1",  # 6to4 (127.0.0.1)
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00::1"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_ports_other_than_80_and_443_need_the_allow_list() -> None:
    def resolve(host: str, port: int) -> list[IPAddress]:
        return [PUBLIC]

    assert pin(f"https://{HOST}/hook", resolve).port == 443
    assert pin(f"http://{HOST}/hook", resolve).port == 80
    for url in (f"https://{HOST}:8443/hook", f"http://{HOST}:22/", f"http://{HOST}:6379/"):
        with pytest.raises(DeliveryFailed) as caught:
            pin(url, resolve)
        assert caught.value.public == REFUSED_BY_POLICY
    allowed = pin(f"https://{HOST}:8443/hook", resolve, allowed_ports=frozenset({80, 443, 8443}))
    assert allowed.addresses == (PUBLIC,)


# --- the activity with an injected resolver and connector ----------------------------------


class Network:
    """The injected resolver and connector. The resolver answers ``answers`` in turn (the
    last one repeated) and counts its calls; the connector records each address it is
    asked to connect to and carries the request to ``receiver`` on loopback, or raises
    ``unreachable`` addresses' connection error."""

    def __init__(self, receiver: Receiver, *answers: list[IPAddress]) -> None:
        self.receiver = receiver
        self.answers = list(answers)
        self.resolved: list[str] = []
        self.asked: list[IPAddress] = []
        self.ports: list[int] = []
        self.unreachable: set[IPAddress] = set()
        self._real = http_connector(5.0)

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.resolved.append(host)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def connect(
        self, pinned: Pinned, address: IPAddress, headers: Mapping[str, str], body: bytes
    ) -> Answer:
        self.asked.append(address)
        self.ports.append(pinned.port)
        assert address in pinned.addresses
        if address in self.unreachable:
            raise DeliveryFailed(CONNECTION_FAILED, f"{address}: unreachable")
        assert refusal(address) is None, f"asked to connect to {address}"
        # The network carries the request to the "public" address: here, the receiver.
        local = replace(pinned, port=int(self.receiver.url.split(":")[2].split("/")[0]))
        return self._real(local, LOOPBACK, headers, body)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def admin(client: TestClient, settings: Settings) -> Headers:
    return admin_headers(client, settings)


def _production_like(
    engine: Engine, settings: Settings, network: Network, **update: Any
) -> WebhookActivities:
    return WebhookActivities(
        engine,
        settings.model_copy(update=update),
        allow_private_targets=False,
        resolver=network.resolve,
        connector=network.connect,
    )


def test_the_checked_address_is_the_one_connected_to(
    client: TestClient, admin: Headers, engine: Engine, settings: Settings
) -> None:
    """DNS rebinding: the name resolves to a public address when checked and to loopback
    right after; the host is resolved once and the POST goes to the checked address."""
    org, _user, maker = make_manufacturer(client, admin)
    create_webhook(client, maker, f"http://{HOST}/hooks/mutabaqa")
    with Receiver() as receiver:
        network = Network(receiver, [PUBLIC], [LOOPBACK])
        activities = _production_like(engine, settings, network)
        result = ActivityEnvironment().run(activities.deliver, event(org["id"]))
    assert result.status_code == 204
    assert network.resolved == [HOST]
    assert network.asked == [PUBLIC]
    [request] = receiver.requests
    assert request.headers["host"].split(":")[0] == HOST  # the URL's host, not the IP
    assert network.ports == [80]
    assert deliveries(client, maker)["items"][0]["status"] == "delivered"


@pytest.mark.parametrize(
    "answer",
    [
        [PUBLIC, LOOPBACK],  # one public address first does not make the others safe
        [ipaddress.ip_address("2002:7f00:1::1")],  # 6to4 wrapping 127.0.0.1
        [ipaddress.ip_address("64:ff9b::a9fe:a9fe")],  # NAT64 of 169.254.169.254
        [ipaddress.ip_address("::ffff:10.0.0.1")],
    ],
)
def test_one_non_public_address_refuses_the_attempt(
    client: TestClient, admin: Headers, engine: Engine, settings: Settings, answer: list[IPAddress]
) -> None:
    org, _user, maker = make_manufacturer(client, admin)
    create_webhook(client, maker, f"http://{HOST}/hooks/mutabaqa")
    with Receiver() as receiver:
        network = Network(receiver, answer)
        activities = _production_like(engine, settings, network)
        with pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(activities.deliver, event(org["id"]))
        assert receiver.requests == []
    assert network.asked == []  # no connection was even tried
    assert caught.value.non_retryable is False
    [entry] = deliveries(client, maker)["items"]
    assert entry["last_error"] == REFUSED_BY_POLICY
    for address in answer:  # the log never names an address
        assert str(address) not in entry["last_error"]


def test_a_port_outside_the_allow_list_is_refused_before_resolving(
    client: TestClient, admin: Headers, engine: Engine, settings: Settings
) -> None:
    org, _user, maker = make_manufacturer(client, admin)
    create_webhook(client, maker, f"http://{HOST}:8443/hooks/mutabaqa")
    with Receiver() as receiver:
        network = Network(receiver, [PUBLIC])
        with pytest.raises(ApplicationError):
            ActivityEnvironment().run(
                _production_like(engine, settings, network).deliver, event(org["id"])
            )
        assert network.resolved == [] and network.asked == []
        assert deliveries(client, maker)["items"][0]["last_error"] == REFUSED_BY_POLICY

        allowed = _production_like(engine, settings, network, webhook_allowed_ports=[8443])
        result = ActivityEnvironment().run(allowed.deliver, event(org["id"]))
    assert result.status_code == 204
    assert network.asked == [PUBLIC] and network.ports == [8443]


def test_an_unreachable_address_falls_back_to_the_next_checked_one(
    client: TestClient, admin: Headers, engine: Engine, settings: Settings
) -> None:
    org, _user, maker = make_manufacturer(client, admin)
    create_webhook(client, maker, f"http://{HOST}/hooks/mutabaqa")
    with Receiver() as receiver:
        network = Network(receiver, [PUBLIC, PUBLIC_2])
        network.unreachable = {PUBLIC}
        result = ActivityEnvironment().run(
            _production_like(engine, settings, network).deliver, event(org["id"])
        )
    assert result.status_code == 204
    assert network.asked == [PUBLIC, PUBLIC_2]
    assert len(receiver.requests) == 1


# --- the real connector: the IP on the wire, the name in Host, SNI and the certificate -----


class TlsReceiver:
    """An https server on 127.0.0.1 that records the SNI name and ``Host`` of each POST."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.server_names: list[str | None] = []
        self.hosts: list[str] = []
        receiver = self

        def remember(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            receiver.server_names.append(name)

        context.sni_callback = remember

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.hosts.append(self.headers.get("Host", ""))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TlsReceiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _to_loopback(host: str, port: int) -> list[IPAddress]:
    return [LOOPBACK]


def test_tls_is_checked_for_the_host_name_while_connecting_to_the_ip(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "good", [HOST])
    with TlsReceiver(pki.server_context()) as receiver:
        pinned = pin(f"https://{HOST}:{receiver.port}/hook", _to_loopback, allow_private=True)
        connector = http_connector(5.0, verify=pki.client_context())
        answer = deliver_pinned(pinned, connector, {"Content-Type": "application/json"}, b"{}")
    assert answer.status_code == 204
    assert receiver.server_names == [HOST]
    assert receiver.hosts == [f"{HOST}:{receiver.port}"]


def test_a_certificate_for_another_name_fails_the_attempt(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "other", ["other.example.test"], ("127.0.0.1",))
    with TlsReceiver(pki.server_context()) as receiver:
        pinned = pin(f"https://{HOST}:{receiver.port}/hook", _to_loopback, allow_private=True)
        connector = http_connector(5.0, verify=pki.client_context())
        with pytest.raises(DeliveryFailed) as caught:
            deliver_pinned(pinned, connector, {}, b"{}")
    # Valid for the IP connected to, but not for the URL's name: refused.
    assert caught.value.public == TLS_FAILED
    assert receiver.hosts == []
