"""The authorisation matrix: every route of the OpenAPI document × every role (and no token)
× the caller's own and another tenant, with the exact status expected.

The routes come from the application itself, so a new route fails this test until its row
is written here. Expected statuses are spelled out by hand — not computed by the code under
test — in the order of SPEC section 6: 401 → 403 → 404 → 422 → 409.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from api.app import create_app
from models.accounts import User
from mutabaqa.settings import Settings
from tests.api.helpers import API, PASSWORD, login, unique_ice
from tests.api.lab_helpers import make_lab, to_evaluated
from tests.api.public_helpers import insert_certificate
from tests.api.requests_helpers import (
    Cast,
    act,
    create_request,
    make_cast,
    to_review,
    upload,
    wait_pdf_link,
)
from tests.api.test_gs1_digital_link import new_gtin13
from tests.conftest import RunningWorker

ROLES = ("anonymous", "manufacturer", "lab_technician", "compliance_officer", "admin")
PUBLIC = {("post", "/api/v1/auth/token")}  # credentials themselves: tested in test_accounts
#: Paths that answer everyone, with or without a token (anonymous included).
PUBLIC_OK = {
    "/health",
    "/verify/{number}",
    "/api/v1/verify/{number}",
    "/api/v1/directory",
    "/.well-known/mutabaqa-keys.json",
    "/.well-known/did.json",
    "/01/{gtin}",
    "/01/{gtin}/10/{lot}",
    "/credentials/{number}",
    "/credentials/{number}/{issue}",
    "/status-lists/{purpose}/{list_id}",
    "/verify/{number}/{issue}/pdf",
}
#: What those answer when it is not 200.
PUBLIC_OK_STATUS = {"/verify/{number}/{issue}/pdf": 307}


@dataclass
class World:
    cast: Cast
    sample_request: str  # org A, awaiting sample at CTTH
    file_id: str  # a document of that request
    public_number: str  # a certificate (inserted directly), for the public routes
    public_gtin: str  # its product's confirmed GTIN (GS1 Digital Link)
    certificate: str  # a certificate of organisation A, issued through the API at CTTH
    settings: Settings
    engine: Engine

    def log_in_again(self, client: TestClient, headers: dict[str, str]) -> None:
        """Replace ``headers``' token (revoked by a logout) with a fresh login's."""
        token = headers["Authorization"].removeprefix("Bearer ")
        user_id = jwt.decode(token, options={"verify_signature": False})["sub"]
        with Session(self.engine) as session:
            user = session.get(User, user_id)
        assert user is not None
        admin = user.email == self.settings.admin_email
        password = self.settings.admin_password.get_secret_value() if admin else PASSWORD
        headers.update(login(client, user.email, password))

    def headers(self, role: str, tenant: str) -> dict[str, str]:
        c = self.cast
        own = tenant == "own"
        return {
            "anonymous": {},
            "manufacturer": c.maker_auth if own else c.other_maker_auth,
            "lab_technician": c.tech_auth if own else c.other_tech_auth,
            "compliance_officer": c.officer_auth,
            "admin": c.admin,
        }[role]


Call = Callable[[TestClient, World, dict[str, str]], Any]


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    label: str
    call: Call
    #: role → (status for the own tenant, status for another tenant)
    expected: dict[str, tuple[int, int]]


def everyone(own: int, other: int | None = None) -> dict[str, tuple[int, int]]:
    return {role: (own, own if other is None else other) for role in ROLES[1:]}


def only(role: str, own: int, other: int | None = None) -> dict[str, tuple[int, int]]:
    table = {r: (403, 403) for r in ROLES[1:]}
    table[role] = (own, own if other is None else other)
    return table


def _scheme_body() -> dict[str, Any]:
    return {
        "code": f"TEST-{uuid.uuid4().hex[:8].upper()}",
        "version": 1,
        "title": "Essai",
        "sector": "ppe_textile",
        "decision_rule": "simple",
        "validity_months": 12,
        "surveillance_months": 12,
        "standards": [{"code": "NM 1", "title": "T", "edition": "1"}],
        "required_documents": [],
        "test_items": [
            {
                "code": "X",
                "title": "X",
                "titles": {"fr": "X", "ar": "س"},
                "method": "M",
                "unit": "%",
                "upper_limit": "1",
            }
        ],
    }


def _get(path: str) -> Call:
    return lambda client, w, h: client.get(path.format(w=w), headers=h)


def _issued(client: TestClient, path: str, h: dict[str, str]) -> Any:
    """A public credential route, once the worker has issued the credential (404 with
    Retry-After until then, just after the PDF)."""
    deadline = time.monotonic() + 60
    while True:
        response = client.get(path, headers=h, follow_redirects=False)
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def _status_list(client: TestClient, w: World, h: dict[str, str]) -> Any:
    credential = _issued(client, f"/credentials/{w.certificate}", {}).json()
    url = credential["credentialStatus"][0]["statusListCredential"]
    return client.get(url[url.index("/status-lists/") :], headers=h)


def _logout(client: TestClient, w: World, h: dict[str, str]) -> Any:
    response = client.post(f"{API}/auth/logout", headers=h)
    if response.status_code == 204:  # every token of the caller is revoked: log in again
        w.log_in_again(client, h)
    return response


def _put_webhook(client: TestClient, h: dict[str, str]) -> Any:
    return client.put(f"{API}/webhook", headers=h, json={"url": "https://erp.example.ma/hook"})


CASES = [
    Case("post", "/api/v1/auth/logout", "", _logout, everyone(204)),
    Case(
        "get",
        "/.well-known/mutabaqa-keys.json",
        "",
        _get("/.well-known/mutabaqa-keys.json"),
        everyone(200),
    ),
    Case("get", "/.well-known/did.json", "", _get("/.well-known/did.json"), everyone(200)),
    Case(
        "get",
        "/credentials/{number}",
        "",
        lambda c, w, h: _issued(c, f"/credentials/{w.certificate}", h),
        everyone(200),
    ),
    Case(
        "get",
        "/credentials/{number}/{issue}",
        "",
        lambda c, w, h: _issued(c, f"/credentials/{w.certificate}/0", h),
        everyone(200),
    ),
    Case("get", "/status-lists/{purpose}/{list_id}", "", _status_list, everyone(200)),
    Case(
        "get",
        "/verify/{number}/{issue}/pdf",
        "",
        lambda c, w, h: _issued(c, f"/verify/{w.certificate}/0/pdf", h),
        everyone(307),
    ),
    Case("get", "/health", "", lambda c, w, h: c.get("/health", headers=h), everyone(200)),
    Case("get", "/api/v1/organizations", "", _get(f"{API}/organizations"), only("admin", 200)),
    Case(
        "post",
        "/api/v1/organizations",
        "",
        lambda c, w, h: c.post(
            f"{API}/organizations",
            headers=h,
            json={
                "name": "Org",
                "registration_id": unique_ice(),
                "address": "Rabat",
                "country": "MA",
            },
        ),
        only("admin", 201),
    ),
    Case("get", "/api/v1/users", "", _get(f"{API}/users"), only("admin", 200)),
    Case("get", "/api/v1/users/me", "", _get(f"{API}/users/me"), everyone(200)),
    Case(
        "post",
        "/api/v1/users",
        "",
        lambda c, w, h: c.post(
            f"{API}/users",
            headers=h,
            json={
                "email": f"m-{uuid.uuid4().hex[:10]}@example.ma",
                "full_name": "Officer",
                "password": "long enough password",
                "roles": ["compliance_officer"],
            },
        ),
        only("admin", 201),
    ),
    Case(
        "patch",
        "/api/v1/users/{user_id}",
        "",
        lambda c, w, h: c.patch(
            f"{API}/users/{w.cast.officer['id']}",
            headers=h,
            json={"full_name": w.cast.officer["full_name"]},
        ),
        only("admin", 200),
    ),
    Case("get", "/api/v1/technical-centres", "", _get(f"{API}/technical-centres"), everyone(200)),
    Case("get", "/api/v1/schemes", "", _get(f"{API}/schemes"), everyone(200)),
    Case("get", "/api/v1/schemes/{code}", "", _get(f"{API}/schemes/FFP2-NM-EN-149"), everyone(200)),
    Case(
        "post",
        "/api/v1/schemes",
        "",
        lambda c, w, h: c.post(f"{API}/schemes", headers=h, json=_scheme_body()),
        only("admin", 201),
    ),
    Case("get", "/api/v1/products", "", _get(f"{API}/products"), only("manufacturer", 200)),
    Case(
        "post",
        "/api/v1/products",
        "",
        lambda c, w, h: c.post(
            f"{API}/products",
            headers=h,
            json={"name": "Masque", "brand": "B", "model": "M1", "description": ""},
        ),
        only("manufacturer", 201),
    ),
    Case(
        "get",
        "/api/v1/products/{product_id}",
        "",
        lambda c, w, h: c.get(f"{API}/products/{w.cast.product['id']}", headers=h),
        only("manufacturer", 200, 404),
    ),
    Case(
        "get",
        "/api/v1/requests",
        "",
        _get(f"{API}/requests"),
        everyone(200) | {"admin": (403, 403)},
    ),
    Case(
        "post",
        "/api/v1/requests",
        "",
        lambda c, w, h: c.post(
            f"{API}/requests",
            headers=h,
            json={"product_id": w.cast.product["id"], "scheme_code": "FFP2-NM-EN-149"},
        ),
        only("manufacturer", 201, 404),
    ),
    Case(
        "get",
        "/api/v1/requests/{request_id}",
        "",
        lambda c, w, h: c.get(f"{API}/requests/{w.sample_request}", headers=h),
        {
            "manufacturer": (200, 404),
            "lab_technician": (200, 404),
            "compliance_officer": (200, 200),
            "admin": (403, 403),
        },
    ),
    Case(
        "get",
        "/api/v1/requests/{request_id}/timeline",
        "",
        lambda c, w, h: c.get(f"{API}/requests/{w.sample_request}/timeline", headers=h),
        {
            "manufacturer": (200, 404),
            "lab_technician": (200, 404),
            "compliance_officer": (200, 200),
            "admin": (403, 403),
        },
    ),
    Case(
        "post",
        "/api/v1/requests/{request_id}/documents",
        "",
        lambda c, w, h: upload(c, h, create_request(c, w.cast)["id"], "technical_file"),
        only("manufacturer", 201, 404),
    ),
    Case(
        "post",
        "/api/v1/requests/{request_id}/actions/{action}",
        "withdraw",
        lambda c, w, h: act(c, h, create_request(c, w.cast)["id"], "withdraw", {}),
        only("manufacturer", 200, 404),
    ),
    Case(
        "post",
        "/api/v1/requests/{request_id}/actions/{action}",
        "request_info",
        lambda c, w, h: act(
            c, h, to_review(c, w.cast)["id"], "request_info", {"message": "More please"}
        ),
        only("compliance_officer", 200),
    ),
    Case(
        "post",
        "/api/v1/requests/{request_id}/actions/{action}",
        "reject_sample",
        lambda c, w, h: act(c, h, w.sample_request, "reject_sample", {"reason": "Wet box"}),
        only("lab_technician", 200, 404),
    ),
    Case(
        "put",
        "/api/v1/requests/{request_id}/results/{item_code}",
        "",
        lambda c, w, h: c.put(
            f"{API}/requests/{w.sample_request}/results/CO2",
            headers=h,
            json={"values": ["0.5", "0.6", "0.4"], "uncertainty": "0.1"},
        ),
        # the world's request is awaiting its sample: the own technician may not record yet
        only("lab_technician", 409, 404),
    ),
    Case(
        "post",
        "/api/v1/requests/{request_id}/evidence",
        "",
        lambda c, w, h: c.post(
            f"{API}/requests/{w.sample_request}/evidence",
            headers=h,
            files={"file": ("raw.csv", b"a,b\n1,2\n", "text/csv")},
        ),
        only("lab_technician", 409, 404),
    ),
    Case(
        "get",
        "/api/v1/certificates",
        "",
        _get(f"{API}/certificates"),
        everyone(200) | {"admin": (403, 403)},
    ),
    Case(
        "get",
        "/api/v1/certificates/{number}",
        "",
        lambda c, w, h: c.get(f"{API}/certificates/{w.certificate}", headers=h),
        {
            "manufacturer": (200, 404),
            "lab_technician": (200, 404),
            "compliance_officer": (200, 200),
            "admin": (403, 403),
        },
    ),
    Case(
        "get",
        "/api/v1/certificates/{number}/pdf",
        "",
        lambda c, w, h: c.get(
            f"{API}/certificates/{w.certificate}/pdf", headers=h, follow_redirects=False
        ),
        {
            "manufacturer": (307, 404),
            "lab_technician": (307, 404),
            "compliance_officer": (307, 307),
            "admin": (403, 403),
        },
    ),
    Case(
        "get",
        "/api/v1/certificates/{number}/timeline",
        "",
        lambda c, w, h: c.get(f"{API}/certificates/{w.certificate}/timeline", headers=h),
        {
            "manufacturer": (200, 404),
            "lab_technician": (200, 404),
            "compliance_officer": (200, 200),
            "admin": (403, 403),
        },
    ),
    # restore of an active certificate: allowed to the officer by role, refused by state
    Case(
        "post",
        "/api/v1/certificates/{number}/actions/{action}",
        "restore",
        lambda c, w, h: c.post(
            f"{API}/certificates/{w.certificate}/actions/restore",
            headers=h,
            json={"reason": "check"},
        ),
        only("compliance_officer", 409),
    ),
    Case(
        "get",
        "/api/v1/evidence/{file_id}/content",
        "",
        lambda c, w, h: c.get(
            f"{API}/evidence/{w.file_id}/content", headers=h, follow_redirects=False
        ),
        {
            "manufacturer": (307, 404),
            "lab_technician": (307, 404),
            "compliance_officer": (307, 307),
            "admin": (403, 403),
        },
    ),
    Case(
        "get",
        "/verify/{number}",
        "",
        lambda c, w, h: c.get(f"/verify/{w.public_number}", headers=h),
        everyone(200),
    ),
    Case(
        "get",
        "/api/v1/verify/{number}",
        "",
        lambda c, w, h: c.get(f"{API}/verify/{w.public_number}", headers=h),
        everyone(200),
    ),
    Case("get", "/api/v1/directory", "", _get(f"{API}/directory"), everyone(200)),
    Case(
        "get",
        "/01/{gtin}",
        "",
        lambda c, w, h: c.get(f"/01/{w.public_gtin}", params={"linkType": "all"}, headers=h),
        everyone(200),
    ),
    Case(
        "get",
        "/01/{gtin}/10/{lot}",
        "",
        lambda c, w, h: c.get(f"/01/{w.public_gtin}/10/L1", params={"linkType": "all"}, headers=h),
        everyone(200),
    ),
    # Each manufacturer acts on its own organisation's webhook: "other tenant" is the other
    # organisation's manufacturer on theirs, hence the same status. The PUT first makes sure
    # a webhook exists, so the status does not depend on which row ran first.
    Case(
        "put",
        "/api/v1/webhook",
        "",
        lambda c, w, h: (_put_webhook(c, h), _put_webhook(c, h))[1],
        only("manufacturer", 200),
    ),
    Case(
        "get",
        "/api/v1/webhook",
        "",
        lambda c, w, h: (_put_webhook(c, h), c.get(f"{API}/webhook", headers=h))[1],
        only("manufacturer", 200),
    ),
    Case(
        "delete",
        "/api/v1/webhook",
        "",
        lambda c, w, h: (_put_webhook(c, h), c.delete(f"{API}/webhook", headers=h))[1],
        only("manufacturer", 200),
    ),
    Case(
        "get",
        "/api/v1/webhook/deliveries",
        "",
        _get(f"{API}/webhook/deliveries"),
        only("manufacturer", 200),
    ),
]


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    # The public routes are rate-limited per client; this test calls them many times.
    roomy = settings.model_copy(update={"public_rate_burst": 10_000})
    with TestClient(create_app(roomy)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def world(client: TestClient, settings: Settings, engine: Engine) -> World:
    cast = make_cast(client, settings)
    request = to_review(client, cast)
    assert act(client, cast.officer_auth, request["id"], "accept", {}).status_code == 200
    public_gtin = "0" + new_gtin13()
    public_number = insert_certificate(engine, gtin=public_gtin).number
    certified = to_evaluated(client, cast, make_lab(client, cast))
    granted = act(client, cast.officer_auth, certified, "grant")
    assert granted.status_code == 200, granted.text
    wait_pdf_link(client, cast.officer_auth, granted.json()["certificate_number"])
    return World(
        cast,
        request["id"],
        request["documents"][0]["id"],
        public_number,
        public_gtin,
        granted.json()["certificate_number"],
        settings,
        engine,
    )


def test_every_route_has_a_row(client: TestClient) -> None:
    routes = {
        (method, path)
        for path, operations in client.app.openapi()["paths"].items()  # type: ignore[attr-defined]
        for method in operations
    }
    covered = {(case.method, case.path) for case in CASES} | PUBLIC
    assert routes - covered == set(), "write the matrix row of these routes"
    assert covered - routes == set(), "these rows name routes that do not exist"


#: Routes outside the OpenAPI document, hence outside the matrix: the portal's pages (their
#: own tests, tests/portal/, check sessions and CSRF; their actions call the same functions
#: as the JSON routes above), /docs and its assets, and the static files.
OUTSIDE_THE_MATRIX = {
    "/",
    "/login",
    "/logout",
    "/requests/{request_id}",
    "/requests/{request_id}/actions/{action}",
    # the manufacturer's pages (tests/portal/test_maker*.py)
    "/products",
    "/requests/new",
    "/requests/{request_id}/documents",
    "/certificates",
    "/certificates/{number}",
    "/certificates/{number}/pdf",
    # admin, webhook and public pages (tests/portal/test_admin*.py, test_public*.py)
    "/admin",
    "/admin/organizations",
    "/admin/users",
    "/admin/users/{user_id}",
    "/admin/outbox",
    "/admin/outbox/{row_id}/replay",
    "/webhook",
    "/webhook/delete",
    "/directory",
    # the laboratory's pages (api/portal/lab.py, lab_results.py)
    "/lab",
    "/lab/requests/{request_id}/sample",
    "/lab/requests/{request_id}/actions/{action}",
    "/lab/requests/{request_id}/results",
    "/lab/requests/{request_id}/results/{item_code}",
    "/lab/requests/{request_id}/evidence",
    "/officer/queue",
    "/officer/requests/{request_id}",
    "/officer/requests/{request_id}/actions/{action}",
    "/officer/files/{file_id}",
    "/officer/certificates/{number}",
    "/officer/certificates/{number}/actions/{action}",
    "/dashboard",
    "/docs",
    "/docs/assets/{name}",
    "/static",
    "/metrics",
    "/openapi.json",
}


def test_only_the_portal_docs_and_static_files_are_outside_the_matrix(
    client: TestClient,
) -> None:
    documented = set(client.app.openapi()["paths"])  # type: ignore[attr-defined]
    every = set(_route_paths(client.app.routes))  # type: ignore[attr-defined]
    assert every - documented == OUTSIDE_THE_MATRIX


def _route_paths(routes: Any) -> Iterator[str]:
    """Every route's path, those of included routers too (FastAPI keeps them per router),
    as OpenAPI writes it (``{lot:path}`` → ``{lot}``)."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        paths = [c.path for c in contexts()] if contexts is not None else [route.path]
        yield from (re.sub(r"\{(\w+):\w+\}", r"{\1}", path) for path in paths)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.path} {c.label}".strip())
def test_matrix(client: TestClient, world: World, case: Case) -> None:
    seen = []
    for role in ROLES:
        for tenant in ("own", "other"):
            expected = (
                (PUBLIC_OK_STATUS.get(case.path, 200) if case.path in PUBLIC_OK else 401)
                if role == "anonymous"
                else case.expected[role][tenant == "other"]
            )
            response = case.call(client, world, world.headers(role, tenant))
            seen.append((role, tenant, response.status_code, expected))
            if response.status_code >= 400:
                assert response.headers["content-type"] == "application/problem+json"
    wrong = [(r, t, got, want) for r, t, got, want in seen if got != want]
    assert wrong == [], f"(role, tenant, got, expected): {wrong}"
