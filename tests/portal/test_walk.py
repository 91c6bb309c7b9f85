"""One request from creation to certificate, entirely through the portal in a real browser
(Debian's Chromium, headless): a manufacturer, two technicians and a compliance officer,
each logged in through the login form in a browser context of their own; then a visitor
opens the public verification page from the QR code printed on the certificate's PDF.

Every page the walk visits is checked with axe-core in Arabic and in French (no serious or
critical violation), and nothing any page loads or runs is blocked by its content policy.
The people are created beforehand through the JSON API (an administrator's work, which the
admin pages' own tests cover)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, BrowserContext, FilePayload, Page, expect

from api.app import create_app
from tests.activities.test_certificate_pdf import page_png, qr_codes
from tests.api.helpers import PASSWORD
from tests.api.lab_helpers import FFP2_PASSING, make_lab
from tests.api.requests_helpers import FFP2, FFP2_DOCUMENTS, PDF, PNG, make_cast
from tests.portal.axe import assert_accessible
from tests.portal.conftest import Live

#: Arabic digits read as Latin ones (ar_MA), so this holds in every language.
ARABIC_INDIC = {chr(code) for code in range(0x0660, 0x066A)} | {
    chr(code) for code in range(0x06F0, 0x06FA)
}


def _in_language(url: str, language: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "lang"] + [("lang", language)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


class Walker:
    """One person's browser context; every page they reach is checked in ar and fr."""

    def __init__(self, browser: Browser, live: Live, **options: object) -> None:
        options.setdefault("locale", "en-GB")
        self.context: BrowserContext = browser.new_context(**options)  # type: ignore[arg-type]
        self.page: Page = self.context.new_page()
        self.live = live
        self.blocked: list[str] = []
        self.checked: list[str] = []
        self.page.on(
            "console",
            lambda message: (
                self.blocked.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )

    def log_in(self, email: str) -> None:
        self.page.goto(self.live.url + "/?lang=en")
        self.check()
        self.page.get_by_label("E-mail address").fill(email)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page.get_by_role("button", name="Log out")).to_be_visible()
        self.check()

    def check(self) -> None:
        """axe-core on this page in Arabic and in French, then back to it in English."""
        here = self.page.url
        for language, direction in (("ar", "rtl"), ("fr", "ltr")):
            self.page.goto(_in_language(here, language))
            expect(self.page.locator("html")).to_have_attribute("dir", direction)
            assert_accessible(self.page)
            text = self.page.locator("main").inner_text()
            assert not ARABIC_INDIC & set(text), (self.page.url, text)
        self.page.goto(_in_language(here, "en"))
        self.checked.append(urlsplit(here).path)

    def close(self) -> None:
        self.context.close()
        assert not self.blocked, self.blocked


@pytest.mark.both_databases
@pytest.mark.timeout(600)
def test_a_request_walks_from_creation_to_certificate_through_the_portal(
    live: Live, browser: Browser, tmp_path: Path
) -> None:
    with TestClient(create_app(live.settings)) as api:
        cast = make_cast(api, live.settings)
        lab = make_lab(api, cast)

    # --- the manufacturer creates the request, uploads its dossier, submits ------------------
    maker = Walker(browser, live)
    maker.log_in(cast.maker["email"])
    page = maker.page
    page.get_by_role("link", name="New request").click()
    expect(page.get_by_role("heading", name="New request")).to_be_visible()
    maker.check()
    page.locator(f"#scheme-{FFP2}").check()
    page.get_by_role("button", name="Create the request").click()
    expect(page.get_by_text("Draft").first).to_be_visible()
    number = page.get_by_role("heading", level=1).inner_text().strip()
    maker.check()
    for kind in FFP2_DOCUMENTS:
        path = tmp_path / ("photo.png" if kind == "product_photos" else f"{kind}.pdf")
        path.write_bytes(PNG if kind == "product_photos" else PDF)
        slot = page.locator("li.document", has=page.locator(f"#file-{kind}"))
        slot.locator("input[type=file]").set_input_files(path)
        slot.get_by_role("button", name="Upload").click()
        expect(page.locator("li.document", has=page.locator(f"#file-{kind}"))).to_contain_text(
            path.name
        )
    page.get_by_role("button", name="Submit", exact=True).click()
    expect(page.locator(".facts .status")).to_have_text("Submitted")
    maker.check()

    # --- the officer reviews the application and accepts it ---------------------------------
    officer = Walker(browser, live)
    officer.log_in(cast.officer["email"])
    desk = officer.page
    desk.get_by_role("link", name="Review queue").first.click()
    expect(desk.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(desk.get_by_role("link", name=number)).to_be_visible(timeout=30_000)
    officer.check()
    desk.get_by_role("link", name=number).click()
    expect(desk.get_by_role("heading", name=number)).to_be_visible()
    officer.check()
    desk.get_by_role("button", name="Accept").click()
    expect(desk.get_by_text("Awaiting sample").first).to_be_visible()

    # --- technician A receives the sample on a phone, records, uploads evidence, submits -----
    tech = Walker(browser, live, viewport={"width": 390, "height": 844}, has_touch=True)
    tech.log_in(cast.tech["email"])
    bench = tech.page
    bench.get_by_role("link", name="Laboratory work").first.click()
    tech.check()
    bench.get_by_role("region", name="Awaiting sample").get_by_role("link", name=number).click()
    expect(bench.get_by_role("heading", name=f"Sample receipt {number}")).to_be_visible()
    tech.check()
    bench.get_by_label("Sample reference").fill("CTTH-2026-0420")
    bench.get_by_label("Condition of the sample").first.fill("Sealed box of 20")
    bench.get_by_role("button", name="Receive the sample").click()
    expect(bench.get_by_role("heading", name=f"Results sheet {number}")).to_be_visible()
    tech.check()
    for code, body in FFP2_PASSING.items():
        item = bench.locator(f"#item-{code}")
        item.get_by_label("Expanded uncertainty U (k=2)").fill(body["uncertainty"])
        item.locator("textarea[name=values]").fill(" ".join(body["values"]))
        expect(item.locator("output.verdict")).to_have_text("Pass")  # the live verdict
        item.get_by_role("button", name=f"Save {code}").click()
        expect(bench.locator(f"#item-{code} [data-saved-verdict]")).to_have_text("Pass")
    bench.get_by_label("File", exact=True).set_input_files(
        files=[FilePayload(name="report.pdf", mimeType="application/pdf", buffer=PDF)]
    )
    bench.get_by_role("button", name="Upload the evidence").click()
    expect(bench.get_by_text("report.pdf")).to_be_visible()
    bench.get_by_role("button", name="Submit the results").click()
    expect(bench.locator(".status").first).to_have_text("Results submitted")
    tech.check()

    # --- technician B verifies a colleague's results -----------------------------------------
    colleague = Walker(browser, live)
    colleague.log_in(lab.verifier["email"])
    other = colleague.page
    other.get_by_role("link", name="Laboratory work").first.click()
    other.get_by_role("region", name="Results submitted").get_by_role("link", name=number).click()
    expect(other.locator("#item-PEN-PARAFFIN [data-saved-verdict]")).to_have_text("Pass")
    colleague.check()
    other.get_by_role("button", name="Verify the results").click()
    expect(other.locator(".status").first).to_have_text("Evaluated")

    # --- the officer reads the report and grants the certificate -----------------------------
    desk.get_by_role("link", name="Review queue").first.click()
    desk.get_by_role("link", name=number).click()
    expect(desk.get_by_role("heading", name="Test report")).to_be_visible()
    expect(desk.locator(".verdict-pass").first).to_be_visible()
    officer.check()
    desk.get_by_role("button", name="Grant").click()
    expect(desk.get_by_text("Certified").first).to_be_visible()
    officer.check()
    desk.locator('a[href^="/officer/certificates/"]').first.click()
    expect(desk.get_by_role("button", name="Suspend")).to_be_visible()
    officer.check()

    # --- the manufacturer sees the certificate and downloads its signed PDF ------------------
    page.get_by_role("link", name="Certificates").first.click()
    certificate_link = page.locator('main a[href^="/certificates/"]').first
    expect(certificate_link).to_be_visible()
    maker.check()
    certificate_number = certificate_link.inner_text().strip()
    certificate_link.click()
    expect(page.get_by_role("heading", name=certificate_number)).to_be_visible()
    download = page.get_by_role("link", name="Download the PDF")
    for _ in range(60):  # the PDF is rendered by the outbox: reload until it is there
        if download.count():
            break
        page.wait_for_timeout(1000)
        page.reload()
    expect(download).to_be_visible()
    maker.check()
    pdf = page.request.get(live.url + f"/certificates/{certificate_number}/pdf")
    assert pdf.ok and pdf.body().startswith(b"%PDF-"), pdf.status

    # --- a visitor scans the QR code: the public page, in the language they ask for ----------
    [scanned] = qr_codes(page_png(pdf.body(), tmp_path))
    assert urlsplit(scanned).path == f"/verify/{certificate_number}"
    visitor = Walker(browser, live, locale="ar-MA")
    visitor.page.goto(live.url + urlsplit(scanned).path)  # the QR's path on this server
    expect(visitor.page.locator("html")).to_have_attribute("lang", "ar")  # Accept-Language
    expect(visitor.page.get_by_text(certificate_number).first).to_be_visible()
    visitor.check()
    visitor.page.get_by_role("link", name="Français").click()
    expect(visitor.page.locator("html")).to_have_attribute("lang", "fr")

    for walker in (maker, officer, tech, colleague, visitor):
        walker.close()
    assert len(maker.checked + officer.checked + tech.checked + colleague.checked) >= 15
