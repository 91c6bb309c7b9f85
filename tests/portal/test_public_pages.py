"""The public pages over plain HTTP, no login: the certificate verification page (the QR
code's landing page) in ONE language — ``?lang=``, then the remembered cookie, then
``Accept-Language`` — with the language switcher and the portal's strict policy; its JSON
twin unchanged; the public directory with its search."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.app import create_app
from mutabaqa.settings import Settings
from tests.api.helpers import API
from tests.api.public_helpers import InsertedCertificate, insert_certificate
from tests.portal.helpers import policy_is_strict

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
LABELS = {
    "ar": ("rtl", "التحقق من الشهادة", "حامل الشهادة", "سارية", "صالحة إلى غاية"),
    "fr": ("ltr", "Vérification du certificat", "Titulaire", "Valide", "Valide jusqu'au"),
    "en": ("ltr", "Certificate verification", "Holder", "Active", "Valid until"),
}


@pytest.fixture(scope="module")
def roomy(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_rate_burst": 10_000})


@pytest.fixture
def client(roomy: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(roomy)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cert(engine: Engine) -> InsertedCertificate:
    return insert_certificate(engine)


def _speaks(page: str, lang: str) -> None:
    direction, *words = LABELS[lang]
    assert f'<html lang="{lang}" dir="{direction}">' in page, lang
    text = html.unescape(page)
    for word in words:
        assert word in text, (lang, word)
    for other, (_, *others) in LABELS.items():
        if other != lang:
            assert others[1] not in text, (lang, other)  # one language per page


@pytest.mark.parametrize("lang", ["ar", "fr", "en"])
def test_the_verify_page_speaks_the_language_of_the_query(
    client: TestClient, cert: InsertedCertificate, lang: str
) -> None:
    page = client.get(f"/verify/{cert.number}?lang={lang}", headers=BROWSER)
    assert page.status_code == 200
    _speaks(page.text, lang)
    assert cert.number in page.text and cert.brand in page.text
    assert policy_is_strict(page) and "style=" not in page.text and "<script" not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "accept" in page.headers["vary"].lower()
    # The language switcher: the other languages, on this page.
    for other in {"ar", "fr", "en"} - {lang}:
        assert f'href="/verify/{cert.number}?lang={other}"' in page.text
    assert 'href="/directory"' in page.text
    # Remembered: the next page without ?lang= speaks it, whatever the browser says.
    again = client.get(f"/verify/{cert.number}", headers=BROWSER | {"Accept-Language": "de"})
    _speaks(again.text, lang)


@pytest.mark.parametrize(
    ("header", "lang"),
    [("ar-MA,ar;q=0.9", "ar"), ("fr-FR", "fr"), ("en-GB,en;q=0.9,fr;q=0.5", "en"), ("de", "fr")],
)
def test_the_verify_page_speaks_the_browser_s_language(
    client: TestClient, cert: InsertedCertificate, header: str, lang: str
) -> None:
    page = client.get(f"/verify/{cert.number}", headers=BROWSER | {"Accept-Language": header})
    assert page.status_code == 200
    _speaks(page.text, lang)
    if lang == "ar":
        assert cert.holder_ar in page.text


def test_the_json_twin_is_unchanged(client: TestClient, cert: InsertedCertificate) -> None:
    body = client.get(f"{API}/verify/{cert.number}").json()
    assert (body["number"], body["status"]) == (cert.number, "active")
    negotiated = client.get(
        f"/verify/{cert.number}?lang=ar", headers={"Accept": "application/json"}
    )
    assert negotiated.headers["content-type"] == "application/json"
    assert negotiated.json() == body


def test_an_unknown_number_is_a_404_page_in_one_language(client: TestClient) -> None:
    page = client.get("/verify/MA-NONE-2026-000000?lang=fr", headers=BROWSER)
    assert page.status_code == 404 and '<html lang="fr" dir="ltr">' in page.text
    assert "Certificat introuvable" in page.text and "Certificate not found" not in page.text
    assert "MA-NONE-2026-000000" in page.text and policy_is_strict(page)


def test_the_directory_searches_like_the_api(client: TestClient, engine: Engine) -> None:
    found = insert_certificate(engine)
    login = client.get("/?lang=en")
    assert 'href="/directory"' in login.text
    page = client.get("/directory", params={"q": found.tag})
    assert page.status_code == 200 and policy_is_strict(page)
    assert '<html lang="en" dir="ltr">' in page.text  # remembered from the login page
    assert f'href="/verify/{found.number}"' in page.text and found.brand in page.text
    api = client.get(f"{API}/directory", params={"q": found.tag}).json()
    assert [item["number"] for item in api["items"]] == [found.number]
    assert 'id="q"' in page.text and f'value="{found.tag}"' in page.text
    # The language switcher keeps the search: the same results, in Arabic.
    switch = re.search(r'<a lang="ar" hreflang="ar" href="([^"]+)"', page.text)
    assert switch, page.text
    arabic = client.get(html.unescape(switch.group(1)))
    assert '<html lang="ar" dir="rtl">' in arabic.text
    assert f'href="/verify/{found.number}"' in arabic.text
    none = client.get("/directory?q=no-such-holder-anywhere&lang=ar")
    assert none.status_code == 200 and "لا توجد شهادة مطابقة." in none.text
    bad = client.get("/directory?cursor=not-a-cursor")
    assert bad.status_code == 422 and 'aria-describedby="q-error"' in bad.text


def test_the_public_pages_are_rate_limited(settings: Settings, cert: InsertedCertificate) -> None:
    tight = settings.model_copy(update={"public_rate_burst": 2, "public_rate_per_minute": 1})
    with TestClient(create_app(tight)) as client:
        for path in (f"/verify/{cert.number}", "/directory"):
            statuses = [client.get(path).status_code for _ in range(4)]
            assert 429 in statuses, (path, statuses)
