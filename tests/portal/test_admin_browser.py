"""The admin pages in a real browser (headless Chromium): an admin creates an
organisation, then a manufacturer of it, with the keyboard-usable forms."""

from __future__ import annotations

import uuid

from playwright.sync_api import Browser, expect

from tests.api.helpers import unique_ice
from tests.portal.conftest import Live


def test_an_admin_creates_an_organisation_and_a_user(live: Live, browser: Browser) -> None:
    settings = live.settings
    page = browser.new_page(locale="en-GB")
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    page.goto(live.url + "/?lang=en")
    page.get_by_label("E-mail address").fill(settings.admin_email)
    page.get_by_label("Password").fill(settings.admin_password.get_secret_value())
    page.get_by_role("button", name="Log in").click()

    page.get_by_role("link", name="Administration").click()
    expect(page.get_by_role("heading", name="Organisations")).to_be_visible()
    ice = unique_ice()
    name = f"Atlas Textiles {ice[-6:]}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Name in Arabic (optional)").fill("أطلس للنسيج")
    page.get_by_label("Registration id (ICE: 15 digits in Morocco)").fill(ice)
    page.get_by_label("Address").fill("12 rue des Tisserands, Fès")
    page.get_by_label("Country (two-letter code)").fill("MA")
    page.get_by_role("button", name="Create the organisation").click()
    row = page.get_by_role("row").filter(has_text=name)
    expect(row).to_be_visible()
    organization_id = row.locator("td").nth(3).inner_text().strip()
    assert len(organization_id) == 32

    page.get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    email = f"fatima-{uuid.uuid4().hex[:8]}@atlas.example.ma"
    form = page.locator("form[action='/admin/users']")
    form.get_by_label("Full name").fill("Fatima Zahra Idrissi")
    form.get_by_label("E-mail address").fill(email)
    form.get_by_label("Password").fill("correct horse battery staple")
    form.get_by_label("Manufacturer", exact=True).check()
    form.get_by_label("Organisation identifier (manufacturers)").fill(organization_id)
    form.get_by_role("button", name="Create the user").click()
    created = page.get_by_role("row").filter(has_text=email)
    expect(created).to_be_visible()
    expect(created.get_by_label("Manufacturer", exact=True)).to_be_checked()
    expect(created.get_by_label("Administrator", exact=True)).not_to_be_checked()
    assert not [text for text in violations if "Content Security Policy" in text], violations
