"""The whole OpenAPI document fuzzed with schemathesis, once per role, against the real app.

Each operation is called with cases schemathesis generates from the document (valid and
invalid: the ``examples``, ``coverage`` and ``fuzzing`` phases), as each role — a
manufacturer, a laboratory technician, a compliance officer, an admin, each with a real
token made through the API, and an anonymous caller — and every answer must hold:

- ``not_a_server_error``: no 5xx;
- ``status_code_conformance``: the status is one the operation documents;
- ``content_type_conformance`` and ``response_schema_conformance``: the body is what the
  document says for that status;
- ``problem_details`` (ours): every error is RFC 9457 ``application/problem+json`` with
  ``type``, ``title`` and its own ``status`` — unless the operation documents another body
  for that status (``/health``'s 503 is a health report, ``/verify/{number}``'s 404 a page
  for browsers).

A stateful run per role then chains calls along the links schemathesis infers from the
document (an id a POST answered, used by the GETs and actions that take it).

The fuzzer works in a world of its own — its own PostgreSQL database (migrated, seeded),
its own worker and task queue, its own buckets — so what it creates (organisations,
schemes, users) cannot change what other tests see. Its settings raise the public rate
limit and login throttling so that they do not hide the API behind 429s. The accounts it
acts as cannot lock themselves out: a case that would change one of them (``PATCH
/users/{id}`` of the fuzz users) is sent to an id that does not exist instead, and after a
``logout`` the role logs in again. Webhook URLs are rewritten to a loopback sink, so no
delivery ever leaves the machine.

Bounded for CI (``MAX_EXAMPLES``, ``STATEFUL_EXAMPLES``; ``derandomize``: the same cases
each run). Run it alone with ``pytest -m fuzz`` (docs/testing.md).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit, urlunsplit

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import Case
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from domain.permissions import Role
from mutabaqa.settings import Settings
from tests.api.helpers import API, PASSWORD, login, make_org, make_product, make_user
from tests.conftest import start_worker
from tests.databases import own_deployment, prepare, private_pg_database

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(600)]

ROLES = ("anonymous", "manufacturer", "lab_technician", "compliance_officer", "admin")
#: Generated cases per operation and role in the fuzzing phase (the examples and coverage
#: phases add their own, fixed, cases).
MAX_EXAMPLES = 10
#: Call sequences per role in the stateful run, and their longest.
STATEFUL_EXAMPLES = 8
STATEFUL_MAX_STEPS = 8
#: Where a case addressing one of the fuzz accounts is sent instead (no user has this id).
NO_SUCH_USER = "no-such-user"

#: The document the cases are generated from: the app's own.
DOCUMENT = create_app(Settings(database_url="sqlite://")).openapi()


@schemathesis.check
def problem_details(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Every error answer is RFC 9457 problem+json whose ``status`` is the answer's, unless
    the operation documents another body for that status."""
    if response.status_code < 400:
        return None
    media_type = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    # (The coverage phase also sends methods the path does not have: 405.)
    operation = DOCUMENT["paths"][case.operation.path].get(case.method.lower(), {})
    answers = operation.get("responses", {})
    documented = answers.get(str(response.status_code), {}).get("content", {})
    if media_type != "application/problem+json":
        assert media_type in documented, (
            f"a {response.status_code} answered {media_type!r}, not application/problem+json"
        )
        return None
    body = response.json()
    assert isinstance(body, dict), "a problem is a JSON object"
    assert isinstance(body.get("type"), str), body
    assert isinstance(body.get("title"), str), body
    assert body.get("status") == response.status_code, body
    return None


#: What every answer is checked for. schemathesis's other checks are not run yet:
#: positive_data_acceptance refuses the lists' opaque cursors and the cross-field rules of
#: POST /schemes and /users; negative_data_rejection trips on our own webhook URL rewrite
#: (docs/testing.md, "Fuzzing the API").
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    problem_details,
]

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            # Valid and invalid cases: invalid ones must be refused with a documented 4xx.
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            # The Authorization header is the role's real token, never a generated one.
            "with-security-parameters": False,
            "database": "none",
        },
        "phases": {"stateful": {"max-steps": STATEFUL_MAX_STEPS}},
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)

FUZZ_SETTINGS = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


class _Sink(BaseHTTPRequestHandler):
    """A loopback webhook endpoint: answers 204 to every POST and keeps its path."""

    received: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).received.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class World:
    """The fuzzer's app, its accounts (bearer header per role) and its webhook sink."""

    app: FastAPI
    sink_netloc: str
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)
    protected_user_ids: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def fuzz_settings(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """The session's services with a database, task queue and buckets of the fuzzer's
    own; throttling raised so that it does not hide the API."""
    with private_pg_database("fuzz") as url:
        result = own_deployment(
            settings,
            url,
            "fuzz",
            data_dir=tmp_path_factory.mktemp("data-fuzz"),
            public_rate_per_minute=1_000_000,
            public_rate_burst=1_000_000,
            login_free_failures=1_000_000,
            login_address_failures_per_minute=1_000_000,
        )
        yield prepare(result)


@pytest.fixture(scope="module")
def world(fuzz_settings: Settings) -> Iterator[World]:
    """A worker, the app, one account per role (the admin is a second admin, not the
    first), a product for the manufacturer, and the webhook sink."""
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, name="webhook-sink", daemon=True).start()
    worker = start_worker(fuzz_settings)
    app = create_app(fuzz_settings)
    result = World(app, f"127.0.0.1:{sink.server_address[1]}")
    # The accounts are made with a TestClient of their own, closed before the fuzzing
    # starts: schemathesis runs the app's lifespan itself.
    with TestClient(app) as client:
        first_admin = login(
            client, fuzz_settings.admin_email, fuzz_settings.admin_password.get_secret_value()
        )
        org = make_org(client, first_admin)
        accounts = {
            "admin": make_user(client, first_admin, [Role.ADMIN]),
            "manufacturer": make_user(
                client, first_admin, [Role.MANUFACTURER], organization_id=org["id"]
            ),
            "lab_technician": make_user(
                client, first_admin, [Role.LAB_TECHNICIAN], centre_code="CTTH"
            ),
            "compliance_officer": make_user(client, first_admin, [Role.COMPLIANCE_OFFICER]),
        }
        make_product(client, accounts["manufacturer"][1])
    for role, (user, headers) in accounts.items():
        result.headers[role] = headers
        result.emails[role] = user["email"]
        result.protected_user_ids.add(user["id"])
    result.headers["anonymous"] = {}
    try:
        yield result
    finally:
        schemathesis_asgi.shutdown_lifespans()
        worker.stop()
        sink.shutdown()


def before_call(case: Case[Any], world: World) -> None:
    """Keep the fuzz accounts usable and webhooks on the loopback sink."""
    if (
        case.method == "PATCH"
        and case.operation.path == API + "/users/{user_id}"
        and (case.path_parameters or {}).get("user_id") in world.protected_user_ids
    ):
        assert case.path_parameters is not None
        case.path_parameters["user_id"] = NO_SUCH_USER
    if case.method == "PUT" and case.operation.path == API + "/webhook":
        body = case.body
        url = body.get("url") if isinstance(body, dict) else None
        if isinstance(body, dict) and isinstance(url, str):
            try:
                parts = urlsplit(url)
            except ValueError:
                return  # not a URL: refused with 422, nothing to deliver
            if parts.scheme.lower() in ("http", "https") and parts.netloc:
                body["url"] = urlunsplit(parts._replace(scheme="http", netloc=world.sink_netloc))


def after_call(case: Case[Any], response: Response, world: World, role: str) -> None:
    """A logout revoked the role's tokens: log in again."""
    if case.operation.path != API + "/auth/logout" or response.status_code != 204:
        return
    with schemathesis_asgi.get_client(cast(Any, world.app)) as client:
        answer = client.post(
            API + "/auth/token", data={"username": world.emails[role], "password": PASSWORD}
        )
    assert answer.status_code == 200, answer.text
    world.headers[role] = {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_as_each_role(case: Case[Any], world: World, role: str) -> None:
    before_call(case, world)
    headers = dict(world.headers[role])
    response = case.call(headers=headers, app=world.app)
    case.validate_response(response, checks=CHECKS, headers=headers)
    after_call(case, response, world, role)


@pytest.mark.parametrize("role", ROLES)
def test_call_sequences_as_each_role(world: World, role: str) -> None:
    class Sequences(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Case[Any]) -> None:
            before_call(case, world)

        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"headers": dict(world.headers[role]), "app": world.app}

        def validate_response(
            self, response: Response, case: Case[Any], additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(response, checks=CHECKS, headers=kwargs.get("headers"))
            after_call(case, response, world, role)

    Sequences.run(
        settings=hypothesis_settings(
            FUZZ_SETTINGS, max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_MAX_STEPS
        )
    )
