"""Public verification and directory (SPEC sections 5 and 6): what anyone may see of a
certificate, in HTML (one language: Arabic, French or English) and JSON, and nothing more."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.engine import Engine

from api.app import create_app
from api.ratelimit import TokenBucketLimiter
from api.routes.public import prefers_json
from models.lab import CertificateStatus
from mutabaqa.settings import Settings
from tests.api.helpers import API, assert_problem
from tests.api.public_helpers import (
    SECRET_REMARK,
    SECRET_VALUE,
    InsertedCertificate,
    insert_certificate,
)

S = CertificateStatus
JSON = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}

TOP_KEYS = {
    "number",
    "issue",
    "status",
    "status_since",
    "holder",
    "product",
    "scheme",
    "standards",
    "scope",
    "issued_on",
    "valid_until",
    "certificate",
    "signature",
    "key_id",
    "pdf_pending",  # whether the PDF is still being made (the outbox)
}
ENTRY_KEYS = {
    "number",
    "issue",
    "status",
    "status_since",
    "holder",
    "product",
    "scheme",
    "issued_on",
    "valid_until",
}


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    roomy = settings.model_copy(update={"public_rate_burst": 10_000})
    with TestClient(create_app(roomy)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def active(engine: Engine) -> InsertedCertificate:
    return insert_certificate(engine)


def _directory(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get(f"{API}/directory", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def _numbers(body: dict[str, Any]) -> list[str]:
    return [item["number"] for item in body["items"]]


def _assert_no_private_data(text: str, cert: InsertedCertificate) -> None:
    assert cert.creator_email not in text
    assert cert.creator_name not in text
    assert SECRET_VALUE not in text
    assert SECRET_REMARK not in text


# --- verification: JSON --------------------------------------------------------------------


def test_json_answer_holds_exactly_the_public_facts(
    client: TestClient, active: InsertedCertificate
) -> None:
    response = client.get(f"{API}/verify/{active.number}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == TOP_KEYS
    assert set(body["holder"]) == {"name", "name_ar", "country"}
    assert set(body["product"]) == {"name", "brand", "model"}
    assert set(body["scheme"]) == {"code", "version"}
    assert [set(s) for s in body["standards"]] == [{"code", "edition"}]
    assert body["number"] == active.number
    assert body["issue"] == 0
    assert body["status"] == "active"
    assert body["holder"] == {"name": active.holder, "name_ar": active.holder_ar, "country": "MA"}
    assert body["product"] == {
        "name": active.product_name,
        "brand": active.brand,
        "model": active.model,
    }
    assert body["scheme"] == {"code": "FFP2-NM-EN-149", "version": "1"}
    assert body["standards"] == [{"code": "NM EN 149", "edition": "2001+A1:2009"}]
    assert body["issued_on"] == active.issued_on.isoformat()
    assert body["valid_until"] == active.valid_until.isoformat()
    # The signed payload, exactly as stored; its registration id only appears inside it.
    assert body["certificate"]["number"] == active.number
    assert body["certificate"]["holder"]["registration_id"] == active.registration_id
    assert "registration_id" not in body["holder"]
    assert body["signature"].startswith("sig-")
    assert body["key_id"] == "test-kid"
    _assert_no_private_data(response.text, active)


def test_root_answers_json_when_json_is_preferred(
    client: TestClient, active: InsertedCertificate
) -> None:
    for accept in ("application/json", "text/html;q=0.5, application/json"):
        response = client.get(f"/verify/{active.number}", headers={"Accept": accept})
        assert response.status_code == 200, accept
        assert response.headers["content-type"] == "application/json", accept
        assert response.headers["cache-control"] == "no-store"
        assert set(response.json()) == TOP_KEYS
        assert response.json() == client.get(f"{API}/verify/{active.number}").json()


def test_accept_negotiation_compares_q_values() -> None:
    assert prefers_json("application/json")
    assert prefers_json("application/*")
    assert prefers_json("text/html;q=0.1, application/json;q=0.2")
    assert prefers_json("*/*;q=0.5, application/json")
    assert not prefers_json(None)
    assert not prefers_json("")
    assert not prefers_json("*/*")
    assert not prefers_json("text/html")
    assert not prefers_json(BROWSER["Accept"])
    assert not prefers_json("application/json;q=0.5, text/html")
    assert not prefers_json("application/json, text/html")  # a tie gives HTML
    assert not prefers_json("application/json;q=0")
    assert not prefers_json("text/html, application/json;q=bogus")


def test_latest_issue_is_shown(client: TestClient, engine: Engine) -> None:
    reissued = insert_certificate(engine, statuses=[S.SUPERSEDED, S.ACTIVE])
    body = client.get(f"{API}/verify/{reissued.number}").json()
    assert (body["issue"], body["status"]) == (1, "active")
    assert body["certificate"]["issue"] == "1"


def test_unsigned_certificate_has_null_signature(client: TestClient, engine: Engine) -> None:
    cert = insert_certificate(engine, signed=False)
    body = client.get(f"{API}/verify/{cert.number}").json()
    assert (body["signature"], body["key_id"]) == (None, None)
    page = client.get(f"/verify/{cert.number}?lang=en", headers=BROWSER)
    assert "signature pending" in page.text


def test_lapsed_validity_is_shown_as_expired(client: TestClient, engine: Engine) -> None:
    tz = ZoneInfo("Africa/Casablanca")
    yesterday = datetime.now(tz).date() - timedelta(days=1)
    cert = insert_certificate(engine, issued_on=date(2025, 1, 1), valid_until=yesterday)
    body = client.get(f"{API}/verify/{cert.number}").json()
    assert body["status"] == "expired"
    since = datetime.fromisoformat(body["status_since"])
    assert since == datetime.combine(yesterday + timedelta(days=1), datetime.min.time(), tz)
    assert _numbers(_directory(client, q=cert.tag, status="expired")) == [cert.number]
    assert _numbers(_directory(client, q=cert.tag, status="active")) == []
    assert [i["status"] for i in _directory(client, q=cert.tag)["items"]] == ["expired"]


def test_unknown_number_is_404(client: TestClient) -> None:
    number = f"MA-NONE-2026-{uuid.uuid4().hex[:6]}"
    assert_problem(client.get(f"{API}/verify/{number}"), 404, "certificate-not-found")
    assert_problem(client.get(f"/verify/{number}", headers=JSON), 404, "certificate-not-found")
    assert_problem(client.get(f"{API}/verify/{'X' * 300}"), 404)
    for lang, direction, words in (
        ("ar", "rtl", "الشهادة غير موجودة"),
        ("fr", "ltr", "Certificat introuvable"),
        ("en", "ltr", "Certificate not found"),
    ):
        page = client.get(f"/verify/{number}?lang={lang}", headers=BROWSER)
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert f'<html lang="{lang}" dir="{direction}">' in page.text
        assert words in page.text
        assert number in page.text


# --- verification: HTML ----------------------------------------------------------------------


def _page(client: TestClient, number: str, lang: str) -> str:
    page: Response = client.get(f"/verify/{number}?lang={lang}", headers=BROWSER)
    assert page.status_code == 200, page.text
    return page.text


def test_html_page_in_arabic_french_or_english(
    client: TestClient, active: InsertedCertificate
) -> None:
    page = client.get(f"/verify/{active.number}?lang=en", headers=BROWSER)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-store"
    assert "accept" in page.headers["vary"].lower()
    english = page.text
    arabic, french = (_page(client, active.number, lang) for lang in ("ar", "fr"))
    assert '<html lang="ar" dir="rtl">' in arabic
    assert '<html lang="fr" dir="ltr">' in french and '<html lang="en" dir="ltr">' in english
    assert "سارية" in arabic and "حامل الشهادة" in arabic and active.holder_ar in arabic
    assert "Valide" in french and "Titulaire" in french and "Valide jusqu" in french
    assert "Active" in english and "Holder" in english and "Valid until" in english
    # One language per page: no other language's words.
    assert "Titulaire" not in english and "حامل الشهادة" not in french
    for html in (arabic, french, english):
        for fact in (
            active.number,
            active.holder,
            active.product_name,
            active.brand,
            active.model,
            "FFP2-NM-EN-149",
            "NM EN 149",
            "2001+A1:2009",
            active.issued_on.isoformat(),
            active.valid_until.isoformat(),
            "mutabaqa verify",
        ):
            assert fact in html, fact
        assert "0x" not in html and "Undefined" not in html  # no Python object leaked
        _assert_no_private_data(html, active)
        assert active.registration_id not in html
    # Status since, in the business time zone.
    assert "Africa/Casablanca" in english
    # Default Accept (*/*) gets the page too.
    assert client.get(f"/verify/{active.number}").headers["content-type"].startswith("text/html")


def test_html_shows_each_status_in_each_language(client: TestClient, engine: Engine) -> None:
    words = {
        S.SUSPENDED: ("معلقة", "Suspendu", "Suspended"),
        S.WITHDRAWN: ("مسحوبة", "Retiré", "Withdrawn"),
        S.EXPIRED: ("منتهية الصلاحية", "Expiré", "Expired"),
        S.TERMINATED: ("ملغاة", "Résilié", "Terminated"),
    }
    for status, expected in words.items():
        cert = insert_certificate(engine, statuses=[status])
        for lang, word in zip(("ar", "fr", "en"), expected, strict=True):
            html = _page(client, cert.number, lang)
            assert f"status-{status.value}" in html
            assert word in html, (status, lang)
            assert "سارية" not in html and "Valide<" not in html, status


def test_html_escapes_and_loads_nothing_external(client: TestClient, engine: Engine) -> None:
    cert = insert_certificate(engine, tag='<script>alert("x")</script>')
    page = client.get(f"/verify/{cert.number}", headers=BROWSER)
    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text
    assert "src=" not in page.text
    assert 'href="http' not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]


# --- directory -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(engine: Engine) -> dict[str, InsertedCertificate]:
    """One tag shared by certificates of every status, issued on successive days."""
    tag = f"Registry{uuid.uuid4().hex[:8]}"
    plan: dict[str, list[CertificateStatus]] = {
        "active": [S.ACTIVE],
        "suspended": [S.SUSPENDED],
        "withdrawn": [S.WITHDRAWN],
        "expired": [S.EXPIRED],
        "terminated": [S.TERMINATED],
        "reissued": [S.SUPERSEDED, S.ACTIVE],
        "superseded_only": [S.SUPERSEDED],
    }
    return {
        name: insert_certificate(
            engine, statuses=statuses, tag=tag, issued_on=date(2026, 1, 1 + day)
        )
        for day, (name, statuses) in enumerate(plan.items())
    }


def test_directory_lists_public_statuses_only(
    client: TestClient, registry: dict[str, InsertedCertificate]
) -> None:
    tag = registry["active"].tag
    body = _directory(client, q=tag)
    listed = {(item["number"], item["issue"], item["status"]) for item in body["items"]}
    expected = {
        (registry["active"].number, 0, "active"),
        (registry["suspended"].number, 0, "suspended"),
        (registry["withdrawn"].number, 0, "withdrawn"),
        (registry["expired"].number, 0, "expired"),
        (registry["reissued"].number, 1, "active"),
    }
    assert listed == expected
    assert len(body["items"]) == len(expected)  # the reissued number once, its latest issue
    # Newest first.
    issued = [item["issued_on"] for item in body["items"]]
    assert issued == sorted(issued, reverse=True)
    for item in body["items"]:
        assert set(item) == ENTRY_KEYS
        assert set(item["holder"]) == {"name", "country"}
        assert set(item["product"]) == {"name", "brand", "model"}
        assert set(item["scheme"]) == {"code", "version"}
    _assert_no_private_data(str(body), registry["active"])
    assert registry["active"].registration_id not in str(body)


def test_directory_shows_only_the_latest_issue(client: TestClient, engine: Engine) -> None:
    # Even while an older issue still reads active (a reissue in flight), a number is
    # listed once, as its latest issue.
    cert = insert_certificate(engine, statuses=[S.ACTIVE, S.SUSPENDED])
    items = _directory(client, q=cert.tag)["items"]
    assert [(i["number"], i["issue"], i["status"]) for i in items] == [
        (cert.number, 1, "suspended")
    ]
    assert _directory(client, q=cert.tag, status="active")["items"] == []


def test_directory_search(client: TestClient, registry: dict[str, InsertedCertificate]) -> None:
    cert = registry["suspended"]
    tag = cert.tag
    public = {"active", "suspended", "withdrawn", "expired", "reissued"}
    everyone = {registry[name].number for name in public}
    assert set(_numbers(_directory(client, q=tag.upper()))) == everyone
    assert set(_numbers(_directory(client, q=f"  {tag.lower()} "))) == everyone
    assert _numbers(_directory(client, q=cert.number.lower())) == [cert.number]
    assert _numbers(_directory(client, q=cert.brand.upper())) == [cert.number]
    assert _numbers(_directory(client, q=cert.model)) == [cert.number]
    assert _numbers(_directory(client, q=f"no such thing {uuid.uuid4().hex}")) == []
    # LIKE wildcards are literal characters, not patterns.
    assert _numbers(_directory(client, q=f"%{uuid.uuid4().hex}%")) == []
    # A product name is shared by every test's certificate: the match covers them all.
    assert everyone <= set(_numbers(_directory(client, q="respirator ffp2", limit=200)))
    terminated = registry["terminated"].number
    assert _numbers(_directory(client, q=terminated)) == []


def test_directory_status_filter(
    client: TestClient, registry: dict[str, InsertedCertificate]
) -> None:
    tag = registry["active"].tag
    assert set(_numbers(_directory(client, q=tag, status="active"))) == {
        registry["active"].number,
        registry["reissued"].number,
    }
    for status in ("suspended", "withdrawn", "expired"):
        assert _numbers(_directory(client, q=tag, status=status)) == [registry[status].number]
    for status in ("superseded", "terminated", "bogus"):
        assert_problem(client.get(f"{API}/directory", params={"status": status}), 422)


def test_directory_pagination(client: TestClient, registry: dict[str, InsertedCertificate]) -> None:
    tag = registry["active"].tag
    whole = _numbers(_directory(client, q=tag))
    assert len(whole) == 5
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"q": tag, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = _directory(client, **params)
        pages.append(_numbers(body))
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [n for page in pages for n in page] == whole
    assert_problem(client.get(f"{API}/directory", params={"cursor": "not-a-cursor"}), 422)
    assert_problem(client.get(f"{API}/directory", params={"limit": 0}), 422)


# --- rate limiting ---------------------------------------------------------------------------


def _limited(response: Response) -> int:
    body = assert_problem(response, 429, "too-many-requests")
    assert "detail" in body
    return int(response.headers["retry-after"])


def test_public_routes_are_rate_limited(settings: Settings, active: InsertedCertificate) -> None:
    tight = settings.model_copy(update={"public_rate_burst": 3, "public_rate_per_minute": 2})
    app = create_app(tight)
    with TestClient(app) as client:
        paths = [f"/verify/{active.number}", f"{API}/verify/{active.number}", f"{API}/directory"]
        assert [client.get(path).status_code for path in paths] == [200, 200, 200]
        for path in paths:
            wait = _limited(client.get(path, headers=JSON))
            assert 1 <= wait <= 30  # one token every 30 s
        # Other clients have their own bucket; other routes are not limited.
        other = TestClient(app, client=("192.0.2.7", 5000))  # same app, started above
        assert other.get(f"{API}/verify/{active.number}").status_code == 200
        assert client.get(f"{API}/technical-centres").status_code == 401


def test_token_bucket_refills_and_bounds_memory() -> None:
    now = [0.0]
    limiter = TokenBucketLimiter(60, 2, max_clients=3, clock=lambda: now[0])
    assert limiter.take("a") == 0 and limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(1.0)  # one token a second
    now[0] = 0.5
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] = 1.0
    assert limiter.take("a") == 0
    now[0] = 100.0
    assert limiter.take("a") == 0 and limiter.take("a") == 0  # refilled to the burst only
    assert limiter.take("a") > 0
    for key in ("b", "c", "d", "e"):
        limiter.take(key)
    assert len(limiter) == 3  # the least recently used buckets were dropped
