"""GS1 Digital Link for products with a GTIN, end to end: a product registered with its
GTIN, the officer confirming it at ``accept``, the certificate's QR code carrying the
Digital Link, and the resolver at ``/01/{gtin}`` answering a linkset or a redirect to the
verification page. An unconfirmed GTIN is never published."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from api.app import create_app
from domain.gs1 import check_digit
from models.audit import AuditEvent
from models.lab import CertificateStatus
from models.requests import CertificationRequest
from mutabaqa.settings import Settings
from tests.activities.test_certificate_pdf import page_png, qr_codes
from tests.api.helpers import API, assert_problem, make_manufacturer, make_product
from tests.api.lab_helpers import Lab, make_lab, record_all
from tests.api.public_helpers import insert_certificate
from tests.api.requests_helpers import Cast, act, make_cast, to_review, wait_pdf_link
from tests.conftest import RunningWorker

#: End-to-end paths: on SQLite (the embedded default) and on PostgreSQL.
pytestmark = pytest.mark.both_databases

LINKSET = "application/linkset+json"
CERTIFICATION_INFO = "https://gs1.org/voc/certificationInfo"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def new_gtin13() -> str:
    """A valid GTIN-13 nobody has registered yet (random, with its check digit)."""
    body = "6" + "".join(random.choice("0123456789") for _ in range(11))
    return body + str(check_digit(body))


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    # The public routes are rate-limited per client; this module calls them often.
    roomy = settings.model_copy(update={"public_rate_burst": 10_000})
    with TestClient(create_app(roomy)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


@pytest.fixture(scope="module")
def lab(client: TestClient, cast: Cast) -> Lab:
    return make_lab(client, cast)


def certify(
    client: TestClient, cast: Cast, lab: Lab, accept: dict[str, Any]
) -> tuple[str, str, bytes]:
    """Request → accept (with ``accept``'s body) → sample → results → grant: the request
    id, the certificate number and its PDF."""
    rid = str(to_review(client, cast)["id"])
    accepted = act(client, cast.officer_auth, rid, "accept", accept)
    assert accepted.status_code == 200, accepted.text
    received = act(
        client,
        cast.tech_auth,
        rid,
        "receive_sample",
        {"sample_ref": "CTTH-2026-0777", "condition": "Sealed box of 20"},
    )
    assert received.status_code == 200, received.text
    record_all(client, cast.tech_auth, rid)
    assert act(client, cast.tech_auth, rid, "submit_results").status_code == 200
    assert act(client, lab.verifier_auth, rid, "verify_results").status_code == 200
    granted = act(client, cast.officer_auth, rid, "grant")
    assert granted.status_code == 200, granted.text
    number = str(granted.json()["certificate_number"])
    link = wait_pdf_link(client, cast.maker_auth, number)
    return rid, number, httpx.get(link.headers["location"], timeout=30).content


@pytest.fixture(scope="module")
def confirmed(client: TestClient, cast: Cast, lab: Lab) -> dict[str, Any]:
    gtin13 = new_gtin13()
    product = make_product(client, cast.maker_auth, gtin=gtin13)
    gtin_cast = dataclasses.replace(cast, product=product)
    rid, number, pdf = certify(client, gtin_cast, lab, {"confirm_gtin": True})
    return {"gtin13": gtin13, "product": product, "rid": rid, "number": number, "pdf": pdf}


def test_a_product_keeps_its_gtin_in_14_digits_unconfirmed(confirmed: dict[str, Any]) -> None:
    product = confirmed["product"]
    assert product["gtin"] == "0" + confirmed["gtin13"]
    assert product["gtin_confirmed_at"] is None


def test_accept_confirms_the_gtin_with_an_audit_detail(
    client: TestClient, cast: Cast, confirmed: dict[str, Any], engine: Engine
) -> None:
    product = client.get(f"{API}/products/{confirmed['product']['id']}", headers=cast.maker_auth)
    assert product.status_code == 200
    assert product.json()["gtin_confirmed_at"] is not None
    with Session(engine) as session:
        event = session.exec(
            select(AuditEvent).where(
                AuditEvent.object_id == confirmed["rid"], AuditEvent.action == "accept"
            )
        ).one()
    assert event.detail["gtin_confirmed"] == confirmed["product"]["gtin"]
    assert event.actor_id == cast.officer["id"]


def test_the_qr_code_is_the_digital_link(
    confirmed: dict[str, Any], settings: Settings, tmp_path: Path
) -> None:
    base = settings.public_base_url.rstrip("/")
    expected = f"{base}/01/{confirmed['product']['gtin']}"
    assert qr_codes(page_png(confirmed["pdf"], tmp_path)) == [expected]


def test_the_digital_link_answers_a_linkset(
    client: TestClient, confirmed: dict[str, Any], settings: Settings
) -> None:
    base = settings.public_base_url.rstrip("/")
    gtin, number = confirmed["product"]["gtin"], confirmed["number"]
    anchor = f"{base}/01/{gtin}"
    expected = {
        "linkset": [
            {
                "anchor": anchor,
                CERTIFICATION_INFO: [
                    {
                        "href": f"{base}/credentials/{number}",
                        "type": "application/vc",
                        "title": number,
                    },
                    *(
                        {
                            "href": f"{base}/verify/{number}?lang={lang}",
                            "type": "text/html",
                            "hreflang": [lang],
                        }
                        for lang in ("ar", "fr", "en")
                    ),
                ],
            }
        ]
    }
    for response in (
        client.get(f"/01/{gtin}", headers={"Accept": LINKSET}),
        client.get(f"/01/{gtin}", params={"linkType": "all"}, headers={"Accept": BROWSER}),
    ):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == LINKSET
        assert response.json() == expected
        assert response.headers["link"] == (
            f'<{anchor}?linkType=all>; rel="linkset"; type="{LINKSET}"'
        )
        assert response.headers["cache-control"] == "no-store"

    # A lot: certificates name no batch, so each covers every lot of its product.
    lot = client.get(f"/01/{gtin}/10/A%2F1", headers={"Accept": LINKSET})
    assert lot.status_code == 200, lot.text
    assert lot.json()["linkset"][0]["anchor"] == f"{anchor}/10/A%2F1"
    assert (
        lot.json()["linkset"][0][CERTIFICATION_INFO] == expected["linkset"][0][CERTIFICATION_INFO]
    )


def test_a_browser_lands_on_the_verification_page_in_its_language(
    client: TestClient, confirmed: dict[str, Any], settings: Settings
) -> None:
    base = settings.public_base_url.rstrip("/")
    gtin, number = confirmed["product"]["gtin"], confirmed["number"]
    for headers, lang in (
        ({"Accept": BROWSER, "Accept-Language": "fr-FR,fr;q=0.9"}, "fr"),
        ({"Accept": BROWSER, "Accept-Language": "ar-MA,ar;q=0.9,fr;q=0.5"}, "ar"),
        ({"Accept": BROWSER, "Accept-Language": "en-GB"}, "en"),
    ):
        response = client.get(f"/01/{gtin}", headers=headers, follow_redirects=False)
        assert response.status_code == 307
        assert response.headers["location"] == f"{base}/verify/{number}?lang={lang}"
        assert 'rel="linkset"' in response.headers["link"]
    asked = client.get(
        f"/01/{gtin}?lang=ar",
        headers={"Accept": BROWSER, "Accept-Language": "fr"},
        follow_redirects=False,
    )
    assert asked.headers["location"] == f"{base}/verify/{number}?lang=ar"

    page = client.get(f"/01/{gtin}", headers={"Accept": BROWSER, "Accept-Language": "fr"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert number in page.text


def test_a_short_gtin_moves_to_its_14_digit_uri(
    client: TestClient, confirmed: dict[str, Any], settings: Settings
) -> None:
    base = settings.public_base_url.rstrip("/")
    moved = client.get(f"/01/{confirmed['gtin13']}/10/L-7?linkType=all", follow_redirects=False)
    assert moved.status_code == 301
    assert moved.headers["location"] == (
        f"{base}/01/{confirmed['product']['gtin']}/10/L-7?linkType=all"
    )


def test_bad_and_unknown_gtins(client: TestClient) -> None:
    unknown = new_gtin13()
    assert_problem(client.get(f"/01/0{unknown}", headers={"Accept": LINKSET}), 404)
    wrong = unknown[:-1] + str((int(unknown[-1]) + 1) % 10)
    response = client.get(f"/01/{wrong}")
    assert_problem(response, 400, "invalid-gtin")
    assert "check digit" in response.json()["detail"]
    assert_problem(client.get(f"/01/0{unknown}/10/{'x' * 21}"), 400, "invalid-lot")


def test_an_unconfirmed_gtin_is_never_published(
    client: TestClient, cast: Cast, lab: Lab, settings: Settings, tmp_path: Path
) -> None:
    product = make_product(client, cast.maker_auth, gtin=new_gtin13())
    _, number, pdf = certify(client, dataclasses.replace(cast, product=product), lab, {})
    base = settings.public_base_url.rstrip("/")
    assert qr_codes(page_png(pdf, tmp_path)) == [f"{base}/verify/{number}"]
    for accept in (LINKSET, BROWSER):
        response = client.get(f"/01/{product['gtin']}", headers={"Accept": accept})
        assert_problem(response, 404, "gtin-not-found")


def test_confirm_gtin_needs_a_product_with_one(client: TestClient, cast: Cast) -> None:
    rid = to_review(client, cast)["id"]  # the cast's product has no GTIN
    refused = act(client, cast.officer_auth, rid, "accept", {"confirm_gtin": True})
    assert_problem(refused, 409, "no-gtin")
    after = client.get(f"{API}/requests/{rid}", headers=cast.officer_auth).json()
    assert after["status"] == "application_review"
    assert "accept" in after["allowed_actions"]


def test_a_gtin_names_one_product_across_organisations(
    client: TestClient, cast: Cast, settings: Settings
) -> None:
    gtin = new_gtin13()
    make_product(client, cast.maker_auth, gtin=gtin)
    _, _, rival = make_manufacturer(client, cast.admin)
    body = {"name": "Masque", "brand": "Copie", "model": "C-1"}
    for given in (gtin, "0" + gtin):  # whatever form it is given in
        response = client.post(f"{API}/products", json=body | {"gtin": given}, headers=rival)
        assert_problem(response, 409, "gtin-taken")
    assert client.get(f"{API}/products", headers=rival).json()["items"] == []
    for bad in ("12345", "4006381333932", "40063813339A1"):
        response = client.post(f"{API}/products", json=body | {"gtin": bad}, headers=rival)
        assert_problem(response, 422)
    assert client.get(f"{API}/products", headers=rival).json()["items"] == []


def test_several_certificates_of_one_product(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    """Every public certificate is listed, newest first; a browser goes to the newest
    active one; terminated certificates and superseded issues are not listed."""
    gtin = "0" + new_gtin13()
    older_active = insert_certificate(engine, gtin=gtin, issued_on=date(2026, 1, 5))
    newer_suspended = insert_certificate(
        engine, statuses=[CertificateStatus.SUSPENDED], issued_on=date(2026, 4, 1)
    )
    newest_reissued = insert_certificate(
        engine,
        statuses=[CertificateStatus.SUPERSEDED, CertificateStatus.WITHDRAWN],
        issued_on=date(2026, 5, 1),
    )
    terminated = insert_certificate(
        engine, statuses=[CertificateStatus.TERMINATED], issued_on=date(2026, 6, 1)
    )
    with Session(engine) as session:
        first = session.get(CertificationRequest, older_active.request_id)
        assert first is not None
        product_id = first.product_id
        for other in (newer_suspended, newest_reissued, terminated):
            row = session.get(CertificationRequest, other.request_id)
            assert row is not None
            row.product_id = product_id
            session.add(row)
        session.commit()

    linkset = client.get(f"/01/{gtin}", headers={"Accept": LINKSET})
    assert linkset.status_code == 200, linkset.text
    credentials = [
        link["title"]
        for link in linkset.json()["linkset"][0][CERTIFICATION_INFO]
        if link["type"] == "application/vc"
    ]
    assert credentials == [
        newest_reissued.number,
        newer_suspended.number,
        older_active.number,
    ]
    assert len(linkset.json()["linkset"][0][CERTIFICATION_INFO]) == 3 * 4

    browser = client.get(
        f"/01/{gtin}", headers={"Accept": BROWSER, "Accept-Language": "ar"}, follow_redirects=False
    )
    assert browser.status_code == 307
    base = settings.public_base_url.rstrip("/")
    assert browser.headers["location"] == f"{base}/verify/{older_active.number}?lang=ar"
