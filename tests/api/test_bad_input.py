"""Bad input the fuzzer may not reach, on the JSON routes that write: malformed JSON, a
wrong or missing content type, bytes that are not UTF-8, the NUL character in a string
(PostgreSQL text cannot hold it), JSON nested 10,000 deep and an array of 100,000 items.

Each is a clear 4xx answered as problem+json (never a 500), and nothing is stored: the
rows the route would have written are counted before and after."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.engine import Engine

from api.app import create_app
from mutabaqa.settings import Settings
from tests.api.helpers import API, Headers, unique_ice
from tests.api.lab_helpers import FFP2_PASSING, to_testing
from tests.api.requests_helpers import FFP2, Cast, create_request, make_cast
from tests.conftest import RunningWorker
from tests.portal.helpers import csrf_of, portal_login

pytestmark = pytest.mark.both_databases

NUL = "\u0000"
#: How deep the nested JSON goes: far past Python's recursion limit.
DEEP = 10_000
#: Items of the array sent where a list (or an object) is expected.
MANY = 100_000


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


@dataclass(frozen=True)
class Route:
    """A JSON route that writes: how to call it with a body, a valid body built around one
    text field, the field a list goes in, and what it would store."""

    method: str
    path: str
    headers: Headers
    #: A valid body whose ``text`` field holds the given string.
    body: Callable[[str], dict[str, Any]]
    #: The rows the route writes when it succeeds (counted before and after).
    stored: Callable[[Engine], Any]
    #: A valid body with a list of ``MANY`` items where the route expects a list, if any.
    long_list: Callable[[], Any] | None = None


def _count(engine: Engine, sql: str, **params: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).one()


def _request_rows(engine: Engine, request_id: str) -> Any:
    """The request's row and everything written for an action or a result."""
    return _count(
        engine,
        "SELECT r.status, r.updated_at,"
        " (SELECT count(*) FROM request_action a WHERE a.request_id = r.id),"
        " (SELECT count(*) FROM test_result t WHERE t.request_id = r.id),"
        " (SELECT count(*) FROM audit_event e WHERE e.chain = :chain)"
        " FROM certification_request r WHERE r.id = :id",
        id=request_id,
        chain=f"request:{request_id}",
    )


@pytest.fixture(scope="module")
def routes(client: TestClient, cast: Cast) -> dict[str, Route]:
    org = cast.org["id"]
    draft = create_request(client, cast)["id"]
    testing = to_testing(client, cast)
    return {
        "products": Route(
            "POST",
            f"{API}/products",
            cast.maker_auth,
            lambda text: {"name": text, "brand": "Atlas", "model": uuid.uuid4().hex[:8]},
            lambda engine: _count(
                engine, "SELECT count(*) FROM product WHERE organization_id = :o", o=org
            ),
        ),
        "organizations": Route(
            "POST",
            f"{API}/organizations",
            cast.admin,
            lambda text: {
                "name": text,
                "registration_id": unique_ice(),
                "address": "Zone industrielle, Casablanca",
                "country": "MA",
            },
            lambda engine: _count(engine, "SELECT count(*) FROM organization"),
        ),
        "requests": Route(
            "POST",
            f"{API}/requests",
            cast.maker_auth | {"Idempotency-Key": uuid.uuid4().hex},
            lambda text: {"product_id": cast.product["id"], "scheme_code": FFP2, "scope": text},
            lambda engine: _count(
                engine,
                "SELECT count(*) FROM certification_request WHERE organization_id = :o",
                o=org,
            ),
        ),
        "actions": Route(
            "POST",
            f"{API}/requests/{draft}/actions/withdraw",
            cast.maker_auth,
            lambda text: {"reason": text},
            lambda engine: _request_rows(engine, draft),
        ),
        "results": Route(
            "PUT",
            f"{API}/requests/{testing}/results/TIL-MEAN",
            cast.tech_auth,
            lambda text: FFP2_PASSING["TIL-MEAN"] | {"remarks": text},
            lambda engine: _request_rows(engine, testing),
            long_list=lambda: {"values": ["5.1"] * MANY, "uncertainty": "0.2"},
        ),
    }


ROUTES = ("products", "organizations", "requests", "actions", "results")


def _send(client: TestClient, route: Route, content: bytes, content_type: str | None) -> Response:
    headers = dict(route.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response: Response = client.request(route.method, route.path, content=content, headers=headers)
    return response


def _refused(response: Response, statuses: set[int]) -> dict[str, Any]:
    """A problem+json answer with one of ``statuses``; its body."""
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    return body


def _unchanged(
    client: TestClient,
    engine: Engine,
    route: Route,
    content: bytes,
    content_type: str | None,
    statuses: set[int],
) -> dict[str, Any]:
    """Send ``content``; assert it is refused with one of ``statuses`` and nothing is
    stored. Returns the problem body."""
    before = route.stored(engine)
    problem = _refused(_send(client, route, content, content_type), statuses)
    assert route.stored(engine) == before
    return problem


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize("name", ROUTES)
def test_malformed_json_is_refused(
    client: TestClient, engine: Engine, routes: dict[str, Route], name: str
) -> None:
    route = routes[name]
    body = _json(route.body("Demi-masque"))
    for broken in (body[:-1], body + b"}", b"{'name': 'x'}", b"{", b"nul", b"\x00"):
        _unchanged(client, engine, route, broken, "application/json", {400, 422})


@pytest.mark.parametrize("name", ROUTES)
def test_json_sent_as_another_type_or_none_is_refused(
    client: TestClient, engine: Engine, routes: dict[str, Route], name: str
) -> None:
    """The body would be valid JSON; only its declared type is wrong (or missing)."""
    route = routes[name]
    body = _json(route.body("Demi-masque"))
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        _unchanged(client, engine, route, body, content_type, {415, 422})


@pytest.mark.parametrize("name", ROUTES)
def test_bytes_that_are_not_utf8_are_refused(
    client: TestClient, engine: Engine, routes: dict[str, Route], name: str
) -> None:
    route = routes[name]
    body = _json(route.body("MARKER"))
    for bad in (b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"):  # not UTF-8
        content = body.replace(b"MARKER", b"Demi" + bad + b"masque")
        _unchanged(client, engine, route, content, "application/json", {400, 422})


@pytest.mark.parametrize("name", ROUTES)
def test_nul_in_a_string_is_refused(
    client: TestClient, engine: Engine, routes: dict[str, Route], name: str
) -> None:
    """PostgreSQL text cannot hold U+0000: refused before any database is asked."""
    route = routes[name]
    for text in (f"Demi{NUL}masque", NUL, f"Demi-masque{NUL}"):
        problem = _unchanged(
            client, engine, route, _json(route.body(text)), "application/json", {422}
        )
        assert "NUL" in problem["detail"], problem
    # In a key as well as in a value.
    with_key = route.body("Demi-masque") | {f"extra{NUL}": "x"}
    _unchanged(client, engine, route, _json(with_key), "application/json", {422})


def test_nul_in_a_path_or_query_is_refused(client: TestClient, cast: Cast) -> None:
    for url in (
        f"{API}/requests/a%00b",
        f"{API}/requests?q=a%00b",
        f"{API}/requests?a%00b=1",
        f"{API}/requests/a%00b/actions/withdraw",
    ):
        method = "POST" if url.endswith("withdraw") else "GET"
        response = client.request(method, url, headers=cast.maker_auth, json={})
        assert "NUL" in _refused(response, {422})["detail"]


def test_nul_in_the_login_form_is_refused(client: TestClient) -> None:
    for form in ({"username": f"a{NUL}b@example.ma", "password": "x" * 12}, {f"u{NUL}": "x"}):
        response = client.post(f"{API}/auth/token", data=form)
        assert "NUL" in _refused(response, {422})["detail"]


def test_nul_in_a_portal_form_is_refused(
    settings: Settings, engine: Engine, cast: Cast, routes: dict[str, Route]
) -> None:
    """The portal reads its forms itself; they are checked as the API's are."""
    with TestClient(create_app(settings)) as portal:
        form = portal.get("/")
        login = {"email": f"a{NUL}b@example.ma", "password": "x" * 12, "csrf": csrf_of(form)}
        assert "NUL" in _refused(portal.post("/login", data=login), {422})["detail"]

        assert portal_login(portal, cast.maker["email"]).status_code == 303
        page = portal.get("/products")
        before = routes["products"].stored(engine)
        fields = {"name": f"Masque{NUL}", "brand": "Atlas", "model": "PX-1", "csrf": csrf_of(page)}
        response = portal.post("/products", data=fields, follow_redirects=False)
        assert "NUL" in _refused(response, {422})["detail"]
        assert routes["products"].stored(engine) == before


def test_nul_is_refused_before_authentication(client: TestClient) -> None:
    response = client.post(f"{API}/products", json={"name": NUL})
    assert _refused(response, {422})["errors"] == [
        {
            "loc": ["body", "name"],
            "msg": "text may not contain the NUL character (U+0000)",
            "type": "string_nul",
        }
    ]


def test_an_escaped_backslash_before_u0000_is_text_not_nul(
    client: TestClient, engine: Engine, routes: dict[str, Route]
) -> None:
    """``"\\\\u0000"`` in JSON is a backslash followed by ``u0000``: ordinary text."""
    route = routes["products"]
    before = route.stored(engine)
    body = _json(route.body("Demi-masque \\u0000"))
    assert b"\\\\u0000" in body
    response = _send(client, route, body, "application/json")
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Demi-masque \\u0000"
    assert route.stored(engine) != before


@pytest.mark.parametrize("name", ROUTES)
def test_json_nested_10000_deep_is_refused(
    client: TestClient, engine: Engine, routes: dict[str, Route], name: str
) -> None:
    route = routes[name]
    arrays = b"[" * DEEP + b"]" * DEEP
    objects = b'{"a":' * DEEP + b"1" + b"}" * DEEP
    inside = _json(route.body("MARKER")).replace(b'"MARKER"', arrays)
    # Shallow enough for Python's parser, deep enough to trouble recursive code after it.
    parseable = _json(route.body("MARKER")).replace(b'"MARKER"', b"[" * 500 + b"]" * 500)
    under_a_new_key = _json(route.body("Demi-masque") | {"zz": "MARKER"}).replace(
        b'"MARKER"', b"[" * 900 + b"]" * 900
    )
    for content in (arrays, objects, inside, parseable, under_a_new_key):
        _unchanged(client, engine, route, content, "application/json", {400, 413, 422})


@pytest.mark.parametrize("name", ROUTES)
def test_an_array_of_100000_items_is_refused(
    client: TestClient, engine: Engine, routes: dict[str, Route], name: str
) -> None:
    route = routes[name]
    bodies: list[Any] = [list(range(MANY))]  # an array where an object is expected
    if route.long_list is not None:
        bodies.append(route.long_list())
    for body in bodies:
        _unchanged(client, engine, route, _json(body), "application/json", {413, 422})
