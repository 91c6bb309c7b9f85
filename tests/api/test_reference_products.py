"""Reference data (technical centres, schemes) and manufacturers' products."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from api.app import create_app
from api.security import hash_password
from domain.permissions import Role
from models.accounts import User
from models.audit import ADMIN_CHAIN, AuditEvent
from models.reference import Scheme
from models.reference import TestItem as SchemeItem
from mutabaqa.seed import load_reference_data
from mutabaqa.settings import Settings
from records.audit import verify_chain
from tests.api.helpers import (
    API,
    PASSWORD,
    Headers,
    admin_headers,
    assert_problem,
    assert_unauthenticated,
    login,
    make_manufacturer,
    make_product,
    make_user,
)

SEEDED_CENTRES = {"CETIEV", "CERIMME", "CTPC", "CTTH", "CETEMCO", "CTIBA", "CMTC", "CETIA", "CERIC"}


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def admin(client: TestClient, settings: Settings) -> Headers:
    return admin_headers(client, settings)


@pytest.fixture
def scheme_code(engine: Engine) -> Iterator[str]:
    """A fresh scheme code; its versions are removed afterwards, since other tests count
    the seeded schemes in the session's shared database."""
    code = f"TEST-HELMET-{uuid.uuid4().hex[:8].upper()}"
    yield code
    with Session(engine) as session:
        ids = select(Scheme.id).where(Scheme.code == code)
        session.execute(delete(SchemeItem).where(col(SchemeItem.scheme_id).in_(ids)))
        session.execute(delete(Scheme).where(col(Scheme.code) == code))
        session.commit()


@pytest.fixture(scope="module")
def officer(client: TestClient, admin: Headers) -> Headers:
    return make_user(client, admin, [Role.COMPLIANCE_OFFICER])[1]


def scheme_body(code: str, version: int = 1, **changes: Any) -> dict[str, Any]:
    return {
        "code": code,
        "version": version,
        "title": f"Casques de protection, version {version}",
        "title_ar": "خوذات الحماية",
        "sector": "ppe_textile",
        "decision_rule": "guarded",
        "validity_months": 36,
        "surveillance_months": 12,
        "standards": [{"code": "NM EN 397", "title": "Casques de protection", "edition": "2012"}],
        "required_documents": ["technical_file"],
        "test_items": [
            {
                "code": "SHOCK",
                "title": "Absorption des chocs",
                "titles": {"fr": "Absorption des chocs", "ar": "امتصاص الصدمات"},
                "method": "EN 397 §6.1",
                "unit": "kN",
                "upper_limit": "5.0",
                "aggregation": "all",
            },
            {
                "code": "PENETRATION",
                "title": "Résistance à la pénétration",
                "titles": {"fr": "Résistance à la pénétration", "ar": "مقاومة الاختراق"},
                "method": "EN 397 §6.2",
                "unit": "mm",
                "lower_limit": 0.1,
                "lower_inclusive": False,
                "upper_limit": "10",
                "mandatory": False,
            },
        ],
    } | changes


# --- technical centres ---------------------------------------------------------------------


def test_any_authenticated_user_lists_the_technical_centres(
    client: TestClient, admin: Headers, officer: Headers
) -> None:
    _, _, maker = make_manufacturer(client, admin)
    _, tech = make_user(client, admin, [Role.LAB_TECHNICIAN], centre_code="CTTH")
    expected = {c.code: c for c in load_reference_data().centres}
    for headers in (admin, officer, maker, tech):
        response = client.get(f"{API}/technical-centres", headers=headers)
        assert response.status_code == 200, response.text
        centres = response.json()
        assert {c["code"] for c in centres} == SEEDED_CENTRES
        assert [c["code"] for c in centres] == sorted(c["code"] for c in centres)
        for centre in centres:
            assert set(centre) == {"code", "name", "name_ar", "sectors"}
            assert centre["name_ar"] == expected[centre["code"]].name_ar
            assert centre["sectors"] == expected[centre["code"]].sectors
    assert_unauthenticated(client.get(f"{API}/technical-centres"))


# --- schemes -------------------------------------------------------------------------------


def test_ffp2_scheme_has_its_test_plan_with_decimal_strings(
    client: TestClient, officer: Headers
) -> None:
    response = client.get(f"{API}/schemes/FFP2-NM-EN-149", headers=officer)
    assert response.status_code == 200, response.text
    scheme = response.json()
    assert scheme["code"] == "FFP2-NM-EN-149" and scheme["version"] == 1
    assert scheme["decision_rule"] == "guarded"
    assert scheme["validity_months"] == 36
    assert scheme["standards"] == [
        {
            "code": "NM EN 149",
            "title": "Appareils de protection respiratoire — Demi-masques filtrants contre les "
            "particules — Exigences, essais, marquage",
            "edition": "2001+A1:2009",
        }
    ]
    assert "technical_file" in scheme["required_documents"]

    items = {item["code"]: item for item in scheme["test_items"]}
    assert len(scheme["test_items"]) == 9
    assert [i["code"] for i in scheme["test_items"]][:3] == ["PEN-NACL", "PEN-PARAFFIN", "TIL-IND"]
    assert items["PEN-NACL"]["upper_limit"] == "6"
    assert items["PEN-NACL"]["lower_limit"] is None
    assert items["PEN-NACL"]["upper_inclusive"] is True
    assert items["PEN-NACL"]["titles"]["ar"].startswith("نفاذية")
    assert items["TIL-IND"]["aggregation"] == "count_within"
    assert items["TIL-IND"]["min_count"] == 46
    assert items["RES-IN-30"]["upper_limit"] == "0.7"

    assert (
        client.get(f"{API}/schemes/FFP2-NM-EN-149", params={"version": 1}, headers=officer).json()
        == scheme
    )
    assert_problem(client.get(f"{API}/schemes/NO-SUCH-SCHEME", headers=officer), 404, "not-found")
    assert_problem(
        client.get(f"{API}/schemes/FFP2-NM-EN-149", params={"version": 99}, headers=officer), 404
    )
    assert_problem(
        client.get(f"{API}/schemes/FFP2-NM-EN-149", params={"version": 0}, headers=officer), 422
    )
    assert_unauthenticated(client.get(f"{API}/schemes/FFP2-NM-EN-149"))


def test_admin_publishes_scheme_versions(
    client: TestClient, admin: Headers, officer: Headers, engine: Engine, scheme_code: str
) -> None:
    code = scheme_code
    first = client.post(f"{API}/schemes", json=scheme_body(code), headers=admin)
    assert first.status_code == 201, first.text
    v1 = first.json()
    assert v1["code"] == code and v1["version"] == 1
    shock, penetration = v1["test_items"]
    assert shock["upper_limit"] == "5.0" and shock["aggregation"] == "all"
    assert shock["lower_limit"] is None and shock["mandatory"] is True
    assert penetration["lower_limit"] == "0.1" and penetration["lower_inclusive"] is False
    assert penetration["aggregation"] == "single" and penetration["mandatory"] is False

    again = client.post(f"{API}/schemes", json=scheme_body(code), headers=admin)
    assert_problem(again, 409, "conflict")

    second = client.post(
        f"{API}/schemes", json=scheme_body(code, 2, validity_months=24), headers=admin
    )
    assert second.status_code == 201, second.text

    latest = client.get(f"{API}/schemes/{code}", headers=officer).json()
    assert latest["version"] == 2 and latest["validity_months"] == 24
    old = client.get(f"{API}/schemes/{code}", params={"version": 1}, headers=officer).json()
    assert old == v1

    listed = client.get(f"{API}/schemes", headers=officer).json()
    versions = {s["code"]: s["version"] for s in listed}
    assert len(versions) == len(listed), "a scheme is listed twice"
    assert versions[code] == 2
    assert versions["FFP2-NM-EN-149"] == 1 and "MEDMASK-IIR-NM-EN-14683" in versions
    assert (
        next(s for s in listed if s["code"] == "FFP2-NM-EN-149")["test_items"][0]["upper_limit"]
        == "6"
    )

    with Session(engine) as session:
        events = session.exec(
            select(AuditEvent).where(
                AuditEvent.chain == ADMIN_CHAIN, AuditEvent.action == "scheme.create"
            )
        ).all()
        mine = sorted(
            (e.detail["version"], e.object_id) for e in events if e.detail["code"] == code
        )
        assert mine == [(1, str(v1["id"])), (2, str(second.json()["id"]))]
        assert verify_chain(session, ADMIN_CHAIN) is None


def test_invalid_schemes_are_422(client: TestClient, admin: Headers, scheme_code: str) -> None:
    code = scheme_code
    body = scheme_body(code)
    no_min_count = body | {"test_items": [body["test_items"][0] | {"aggregation": "count_within"}]}
    no_limit = body | {"test_items": [body["test_items"][0] | {"upper_limit": None}]}
    for invalid in [
        body | {"unknown": 1},
        body | {"decision_rule": "lenient"},
        body | {"test_items": []},
        body | {"code": "lower-case"},
        no_min_count,
        no_limit,
        body | {"test_items": [body["test_items"][0], body["test_items"][0]]},
    ]:
        assert_problem(client.post(f"{API}/schemes", json=invalid, headers=admin), 422)
    assert_problem(client.get(f"{API}/schemes/{code}", headers=admin), 404)


def test_numbers_past_an_sql_integer_are_422_not_a_database_error(
    client: TestClient, admin: Headers, scheme_code: str
) -> None:
    """Found by the fuzzer: PostgreSQL's INTEGER holds up to 2**31 - 1; a version or a
    min_count past it was a 500 (the database refused the value)."""
    code = scheme_code
    body = scheme_body(code)
    counted = body["test_items"][0] | {"aggregation": "count_within", "min_count": 2**31}
    for invalid in [body | {"version": 2**31}, body | {"test_items": [counted]}]:
        answer = assert_problem(client.post(f"{API}/schemes", json=invalid, headers=admin), 422)
        assert "less than or equal to 2147483647" in str(answer["errors"]), answer
    for version in (2**31, 2**63):
        lookup = client.get(
            f"{API}/schemes/FFP2-NM-EN-149", params={"version": version}, headers=admin
        )
        assert_problem(lookup, 422, "invalid-body")
    largest = client.get(
        f"{API}/schemes/FFP2-NM-EN-149", params={"version": 2**31 - 1}, headers=admin
    )
    assert_problem(largest, 404, "not-found")


# --- products ------------------------------------------------------------------------------


def test_manufacturer_registers_and_reads_own_products(client: TestClient, admin: Headers) -> None:
    org, _, maker = make_manufacturer(client, admin)
    _, colleague = make_user(client, admin, [Role.MANUFACTURER], organization_id=org["id"])
    product = make_product(client, maker, name="Demi-masque FFP2 pliable", hs_code="630790")
    assert product["organization_id"] == org["id"]
    assert product["name"] == "Demi-masque FFP2 pliable" and product["hs_code"] == "630790"

    for headers in (maker, colleague):  # the organisation's products, whoever registered them
        got = client.get(f"{API}/products/{product['id']}", headers=headers)
        assert got.status_code == 200 and got.json() == product

    second = make_product(client, colleague)
    listed = client.get(f"{API}/products", headers=maker).json()
    assert [p["id"] for p in listed["items"]] == [second["id"], product["id"]]
    assert listed["next_cursor"] is None

    first_page = client.get(f"{API}/products", params={"limit": 1}, headers=maker).json()
    assert [p["id"] for p in first_page["items"]] == [second["id"]]
    rest = client.get(
        f"{API}/products", params={"limit": 1, "cursor": first_page["next_cursor"]}, headers=maker
    ).json()
    assert [p["id"] for p in rest["items"]] == [product["id"]]
    assert rest["next_cursor"] is None


def test_another_organisations_product_is_not_found(client: TestClient, admin: Headers) -> None:
    _, _, maker = make_manufacturer(client, admin)
    _, _, rival = make_manufacturer(client, admin)
    product = make_product(client, maker)

    response = client.get(f"{API}/products/{product['id']}", headers=rival)
    unknown = client.get(f"{API}/products/{uuid.uuid4().hex}", headers=rival)
    assert_problem(response, 404, "not-found")
    assert_problem(unknown, 404, "not-found")
    assert response.json()["title"] == unknown.json()["title"]
    assert client.get(f"{API}/products", headers=rival).json() == {
        "items": [],
        "next_cursor": None,
    }


def test_products_are_for_manufacturers_only(
    client: TestClient, admin: Headers, officer: Headers
) -> None:
    _, _, maker = make_manufacturer(client, admin)
    product = make_product(client, maker)
    _, tech = make_user(client, admin, [Role.LAB_TECHNICIAN], centre_code="CETIEV")
    for headers in (admin, officer, tech):
        assert_problem(client.get(f"{API}/products", headers=headers), 403, "forbidden")
        # 403 before 404 and before 422: the roles alone decide.
        assert_problem(client.get(f"{API}/products/{product['id']}", headers=headers), 403)
        assert_problem(client.get(f"{API}/products/{uuid.uuid4().hex}", headers=headers), 403)
        assert_problem(client.post(f"{API}/products", json={}, headers=headers), 403)
    assert_unauthenticated(client.get(f"{API}/products/{product['id']}"))
    assert_unauthenticated(client.post(f"{API}/products", json={}))


def test_product_payload_is_validated(client: TestClient, admin: Headers) -> None:
    _, _, maker = make_manufacturer(client, admin)
    good = {"name": "Masque", "brand": "Atlas", "model": "AT-1", "description": ""}
    for bad in [
        good | {"organization_id": uuid.uuid4().hex},  # unknown field: no choosing the owner
        good | {"hs_code": "63.07"},
        good | {"name": ""},
        {"brand": "Atlas", "model": "AT-1"},
    ]:
        assert_problem(client.post(f"{API}/products", json=bad, headers=maker), 422)
    assert client.get(f"{API}/products", headers=maker).json()["items"] == []


def test_text_with_a_nul_character_is_422_not_a_database_error(
    client: TestClient, admin: Headers
) -> None:
    """Found by the fuzzer: PostgreSQL refuses NUL in text, which was a 500. The request
    guard (``api/nul_guard.py``) refuses it first, naming the field; the database's own
    refusal is mapped to 422 ``invalid-text`` behind it (``api/problems.py``)."""
    _, _, maker = make_manufacturer(client, admin)
    good = {"name": "Masque", "brand": "Atlas", "model": "AT-1", "description": ""}
    answer = client.post(f"{API}/products", json=good | {"name": "Mas\x00que"}, headers=maker)
    assert_problem(answer, 422, "invalid-body")
    assert answer.json()["errors"][0]["loc"] == ["body", "name"]
    assert client.get(f"{API}/products", headers=maker).json()["items"] == []
    stored = client.post(f"{API}/products", json=good, headers=maker)
    assert stored.status_code == 201, stored.text


def test_manufacturer_without_organisation_cannot_register_products(
    client: TestClient, engine: Engine
) -> None:
    # Only possible for accounts made outside the API (the API insists on an organisation).
    email = f"orphan-{uuid.uuid4().hex[:8]}@example.ma"
    with Session(engine) as session:
        session.add(
            User(
                email=email,
                full_name="Sans Organisation",
                roles=[Role.MANUFACTURER.value],
                password_hash=hash_password(PASSWORD),
            )
        )
        session.commit()
    headers = login(client, email, PASSWORD)
    body = {"name": "Masque", "brand": "Atlas", "model": "AT-1"}
    assert_problem(client.post(f"{API}/products", json=body, headers=headers), 409)
    assert client.get(f"{API}/products", headers=headers).json()["items"] == []
