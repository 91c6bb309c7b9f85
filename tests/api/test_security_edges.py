"""The API's edges: security headers on every answer, what ``/health`` tells whom, the
client address behind a trusted proxy (and only then), and who may open which kind of
request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.app import create_app
from domain.permissions import Role
from mutabaqa.serve import api_config
from mutabaqa.settings import Settings
from tests.api.helpers import (
    API,
    admin_headers,
    assert_problem,
    make_manufacturer,
    make_user,
)
from tests.api.public_helpers import InsertedCertificate, insert_certificate
from tests.smtp import free_port

JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"


def _assert_common_headers(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


# --- security headers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def active(engine: Engine) -> InsertedCertificate:
    return insert_certificate(engine)


def test_every_answer_carries_the_security_headers(
    settings: Settings, active: InsertedCertificate
) -> None:
    app = create_app(settings)

    @app.get("/boom-for-the-test")
    def boom() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        answers = {
            "json": client.get(f"{API}/directory"),
            "problem": client.get("/no-such-page"),
            "unauthenticated": client.get(f"{API}/requests"),
            "health": client.get("/health"),
            "openapi": client.get("/openapi.json"),
            "metrics": client.get("/metrics"),
            "keys": client.get("/.well-known/mutabaqa-keys.json"),
            "internal error": client.get("/boom-for-the-test"),
        }
        html = client.get(f"/verify/{active.number}", headers={"Accept": "text/html"})
        docs = client.get("/docs")

    assert answers["internal error"].status_code == 500
    assert answers["internal error"].headers["content-type"] == "application/problem+json"
    for name, response in answers.items():
        _assert_common_headers(response)
        assert response.headers["content-security-policy"] == JSON_POLICY, name
        assert "strict-transport-security" not in response.headers, name  # http here

    # The public HTML page has the portal's policy (its style sheet, no inline style), plus
    # the common headers.
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    _assert_common_headers(html)
    policy = html.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy

    # The docs load Swagger UI and its start-up script from this origin only.
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    _assert_common_headers(docs)
    docs_policy = docs.headers["content-security-policy"]
    assert "script-src 'self';" in docs_policy and "frame-ancestors 'none'" in docs_policy


def test_hsts_only_when_the_public_url_is_https(settings: Settings) -> None:
    https = settings.model_copy(update={"public_base_url": "https://certificates.example.ma"})
    with TestClient(create_app(https)) as client:
        for response in (client.get(f"{API}/directory"), client.get("/no-such-page")):
            assert response.headers["strict-transport-security"].startswith("max-age=")
            _assert_common_headers(response)
    with TestClient(create_app(settings)) as client:
        assert "strict-transport-security" not in client.get(f"{API}/directory").headers


# --- /health ---------------------------------------------------------------------------------


def test_health_details_are_for_admins_only(settings: Settings) -> None:
    broken = settings.model_copy(update={"temporal_address": "127.0.0.1:1"})
    with TestClient(create_app(broken)) as client:
        admin = admin_headers(client, broken)
        _org, _user, maker = make_manufacturer(client, admin)
        _officer, officer = make_user(client, admin, [Role.COMPLIANCE_OFFICER])
        expected = {
            "status": "degraded",
            "checks": {"database": "ok", "temporal": "down", "object_store": "ok"},
        }
        for headers in ({}, maker, officer, {"Authorization": "Bearer not-a-token"}):
            response = client.get("/health", headers=headers)
            assert response.status_code == 503
            assert response.json() == expected, headers
            assert "127.0.0.1" not in response.text

        detailed = client.get("/health", headers=admin)
    assert detailed.status_code == 503
    body = detailed.json()
    assert body["checks"] == expected["checks"]
    assert set(body["errors"]) == {"temporal"}
    assert body["errors"]["temporal"]


def test_health_when_all_is_well(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        public = client.get("/health")
        admin = client.get("/health", headers=admin_headers(client, settings))
    checks = {"database": "ok", "temporal": "ok", "object_store": "ok"}
    assert public.status_code == 200
    assert public.json() == {"status": "ok", "checks": checks}
    assert admin.json() == {"status": "ok", "checks": checks, "errors": {}}


# --- the client address behind a proxy -------------------------------------------------------


@contextmanager
def running_api(settings: Settings) -> Iterator[str]:
    """The API served by uvicorn exactly as ``mutabaqa api`` configures it, on loopback."""
    port = free_port()
    server = uvicorn.Server(api_config(settings, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def _from(base: str, forwarded_for: str) -> int:
    response = httpx.get(
        f"{base}{API}/directory", headers={"X-Forwarded-For": forwarded_for}, timeout=10
    )
    return response.status_code


def test_behind_a_trusted_proxy_each_client_has_its_own_bucket(settings: Settings) -> None:
    proxied = settings.model_copy(
        update={
            "forwarded_allow_ips": "127.0.0.1",
            "public_rate_burst": 2,
            "public_rate_per_minute": 1,
        }
    )
    with running_api(proxied) as base:
        assert [_from(base, "203.0.113.1") for _ in range(3)] == [200, 200, 429]
        assert _from(base, "203.0.113.2") == 200  # another client behind the same proxy
        # A client cannot escape its bucket by prepending an address of its choosing: the
        # proxy appends the real one, which is what counts.
        assert _from(base, "198.51.100.77, 203.0.113.1") == 429


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(settings: Settings) -> None:
    direct = settings.model_copy(update={"public_rate_burst": 2, "public_rate_per_minute": 1})
    assert direct.forwarded_allow_ips == ""  # the default: no proxy is trusted
    with running_api(direct) as base:
        # Every request comes from 127.0.0.1, whatever the header claims: one bucket.
        assert [_from(base, f"203.0.113.{n}") for n in (1, 2, 3)] == [200, 200, 429]


# --- who opens which kind of request ---------------------------------------------------------


def test_a_manufacturer_cannot_open_a_surveillance_request(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        admin = admin_headers(client, settings)
        _org, _user, maker = make_manufacturer(client, admin)
        body = {"product_id": "any", "scheme_code": "FFP2", "kind": "surveillance"}
        problem = assert_problem(
            client.post(f"{API}/requests", json=body, headers=maker), 403, "forbidden"
        )
        assert "system" in problem["detail"]
        listed = client.get(f"{API}/requests", headers=maker)
    assert listed.status_code == 200
    assert listed.json()["items"] == []  # nothing was created
