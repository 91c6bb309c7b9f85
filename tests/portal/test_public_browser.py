"""The public verification page in a real browser (headless Chromium): a visitor scans
the QR code (``/verify/<number>?lang=ar``), reads the page in Arabic, switches to French."""

from __future__ import annotations

from playwright.sync_api import Browser, expect
from sqlalchemy.engine import Engine

from tests.api.public_helpers import insert_certificate
from tests.portal.conftest import Live


def test_a_visitor_opens_the_page_in_arabic_and_switches_to_french(
    live: Live, browser: Browser, engine: Engine
) -> None:
    cert = insert_certificate(engine)
    page = browser.new_page(locale="en-GB")
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    answer = page.goto(f"{live.url}/verify/{cert.number}?lang=ar")
    assert answer is not None and answer.status == 200
    html = page.locator("html")
    expect(html).to_have_attribute("lang", "ar")
    expect(html).to_have_attribute("dir", "rtl")
    expect(page.get_by_role("heading", name="التحقق من الشهادة")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("سارية")
    expect(page.get_by_text(cert.holder_ar)).to_be_visible()

    page.get_by_role("link", name="Français").click()
    expect(html).to_have_attribute("lang", "fr")
    expect(html).to_have_attribute("dir", "ltr")
    expect(page.get_by_role("heading", name="Vérification du certificat")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Valide")
    expect(page.get_by_text("Titulaire")).to_be_visible()

    # The directory, in French too (remembered), finds it.
    page.get_by_role("link", name="Répertoire des certificats").click()
    page.get_by_label("Rechercher par numéro de certificat").fill(cert.tag)
    page.get_by_role("button", name="Rechercher").click()
    expect(page.get_by_role("link", name=cert.number)).to_be_visible()
    assert not [text for text in violations if "Content Security Policy" in text], violations
