"""The portal in a real browser: Debian's Chromium, headless, driven by Playwright
(``executable_path``: no browser is downloaded). The API runs under uvicorn in a thread
of the test process, on a free port, as ``mutabaqa api`` runs it."""

from __future__ import annotations

from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect

from api.app import create_app
from tests.api.helpers import PASSWORD
from tests.api.requests_helpers import Cast, create_request, make_cast
from tests.portal.conftest import Live


def test_a_manufacturer_logs_in_sees_a_request_switches_to_arabic_and_logs_out(
    live: Live, browser: Browser
) -> None:
    with TestClient(create_app(live.settings)) as api:
        cast: Cast = make_cast(api, live.settings)
        request = create_request(api, cast)
    page = browser.new_page(locale="en-GB")
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    answer = page.goto(live.url + "/")
    assert answer is not None
    policy = answer.headers["content-security-policy"]
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    expect(page.locator("html")).to_have_attribute("lang", "en")

    page.get_by_label("E-mail address").fill(cast.maker["email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Requests")).to_be_visible()
    expect(page.get_by_text(cast.maker["full_name"])).to_be_visible()

    page.get_by_role("link", name=request["number"]).click()
    expect(page.get_by_role("heading", name=request["number"])).to_be_visible()
    expect(page.get_by_text("Draft").first).to_be_visible()
    expect(page.get_by_role("button", name="Withdraw")).to_be_visible()

    page.get_by_role("link", name="العربية").click()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("html")).to_have_attribute("lang", "ar")
    expect(page.get_by_role("button", name="سحب الطلب")).to_be_visible()
    expect(page.get_by_text("مسودة").first).to_be_visible()

    page.get_by_role("button", name="تسجيل الخروج").click()
    expect(page.get_by_role("button", name="تسجيل الدخول")).to_be_visible()
    page.goto(f"{live.url}/requests/{request['id']}")  # the session is over
    expect(page.get_by_label("كلمة المرور")).to_be_visible()
    # Nothing the pages load or run was blocked by their policy.
    assert not [text for text in violations if "Content Security Policy" in text], violations


def test_docs_render_from_local_assets(live: Live, browser: Browser) -> None:
    page = browser.new_page()
    outside: list[str] = []
    page.on(
        "request",
        lambda request: None if request.url.startswith(live.url) else outside.append(request.url),
    )
    page.goto(live.url + "/docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=20_000)
    assert outside == []
