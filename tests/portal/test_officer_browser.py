"""An officer in a real browser (Debian's Chromium, headless): the queue, an application's
review and its acceptance; then a request brought to ``evaluated`` through the API, its
report, the grant, and the certificate's page; the dashboard's charts."""

from __future__ import annotations

from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, expect

from api.app import create_app
from tests.api.helpers import PASSWORD
from tests.api.lab_helpers import make_lab, to_evaluated
from tests.api.requests_helpers import Cast, make_cast, to_review
from tests.portal.conftest import Live


def _log_in(page: Page, live: Live, email: str) -> None:
    page.goto(live.url + "/?lang=en")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Review queue")).to_be_visible()


def test_an_officer_reviews_accepts_grants_and_sees_the_certificate(
    live: Live, browser: Browser
) -> None:
    with TestClient(create_app(live.settings)) as api:
        cast: Cast = make_cast(api, live.settings)
        lab = make_lab(api, cast)
        waiting = to_review(api, cast)
        evaluated = to_evaluated(api, cast, lab)
    page = browser.new_page(locale="en-GB")
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    _log_in(page, live, cast.officer["email"])

    # The queue, then the application's review, then the acceptance.
    page.get_by_role("link", name="Review queue").click()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    page.get_by_role("link", name=waiting["number"]).click()
    expect(page.get_by_role("heading", name=waiting["number"])).to_be_visible()
    expect(page.get_by_role("link", name="technical_file.pdf")).to_be_visible()
    expect(page.get_by_role("button", name="Decline")).to_be_visible()
    page.get_by_role("button", name="Decline").click()  # without its reason
    expect(page.locator("#decline-reason-error")).to_be_visible()
    expect(page.get_by_label("Reason (required)").first).to_have_attribute(
        "aria-describedby", "decline-reason-error"
    )
    page.get_by_role("button", name="Accept").click()
    expect(page.get_by_text("Awaiting sample").first).to_be_visible()
    expect(page.get_by_role("button", name="Accept")).to_have_count(0)

    # The evaluated report, then the grant: the certificate appears.
    page.goto(f"{live.url}/officer/requests/{evaluated}")
    expect(page.get_by_role("heading", name="Test report")).to_be_visible()
    expect(page.locator(".verdict-pass").first).to_be_visible()
    page.get_by_role("button", name="Grant").click()
    expect(page.get_by_text("Certified").first).to_be_visible()
    certificate = page.locator('a[href^="/officer/certificates/"]')
    expect(certificate).to_be_visible()
    number = certificate.inner_text()
    certificate.click()
    expect(page.get_by_role("heading", name=f"Certificate {number}")).to_be_visible()
    expect(page.get_by_text("Active").first).to_be_visible()
    expect(page.get_by_role("button", name="Suspend")).to_be_visible()
    expect(page.get_by_role("button", name="Restore")).to_have_count(0)

    # The dashboard: charts drawn on the server, their numbers in a table too.
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    expect(page.locator("svg.bars").first).to_be_visible()
    expect(page.get_by_label("From")).to_have_attribute("type", "date")
    assert not [text for text in violations if "Content Security Policy" in text], violations
