"""The portal's pages pass axe-core's checks (no serious or critical violation), in Arabic
and in French, under their real Content-Security-Policy; and the check itself bites."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Error, Page, expect

from api.app import create_app
from tests.api.helpers import PASSWORD
from tests.api.lab_helpers import to_testing
from tests.api.requests_helpers import Cast, create_request, make_cast, to_review
from tests.portal.axe import assert_accessible, axe_source, axe_version, serious_violations
from tests.portal.conftest import Live

LANGUAGES = ["ar", "fr"]


@pytest.fixture(scope="module")
def demo(live: Live) -> tuple[Cast, dict[str, Any]]:
    """A cast with a draft request, one in the officer's queue and one in testing."""
    with TestClient(create_app(live.settings)) as api:
        cast = make_cast(api, live.settings)
        request = create_request(api, cast)
        to_review(api, cast)
        to_testing(api, cast)
    return cast, request


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def _log_in(page: Page, live: Live, email: str, language: str, password: str = PASSWORD) -> None:
    page.goto(f"{live.url}/?lang={language}")
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.locator("form[action='/login'] button[type=submit]").click()
    expect(page.locator("form[action='/logout']")).to_be_visible()


def test_axe_ships_with_the_tests() -> None:
    assert axe_source().startswith("/*! axe v4.")


def test_the_check_fails_on_a_broken_page(page: Page) -> None:
    page.set_content(
        '<!doctype html><html lang="en"><head><title>Broken</title></head><body><main>'
        '<img src="/x.png"><input id="q" type="text"><a href="/"></a></main></body></html>'
    )
    found = {violation["id"] for violation in serious_violations(page)}
    assert {"image-alt", "label", "link-name"} <= found
    with pytest.raises(AssertionError) as failure:
        assert_accessible(page)
    message = str(failure.value)
    assert "image-alt" in message and "Images must have alternative text" in message
    assert "img" in message and "#q" in message  # the elements at fault


def test_axe_runs_under_the_portal_policy_where_an_inline_script_cannot(
    page: Page, live: Live
) -> None:
    """``page.evaluate`` is not governed by the page's CSP; an inline ``<script>`` is."""
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text))
    answer = page.goto(f"{live.url}/?lang=fr")
    assert answer is not None and "default-src 'none'" in answer.headers["content-security-policy"]
    with pytest.raises(Error):
        page.add_script_tag(content="window.inlineRan = true;")
    assert page.evaluate("() => window.inlineRan === undefined")
    assert any("Content Security Policy" in text for text in blocked), blocked
    assert axe_version(page).startswith("4.")


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_login_page_is_accessible(page: Page, live: Live, language: str) -> None:
    page.goto(f"{live.url}/?lang={language}")
    expect(page.locator("html")).to_have_attribute("lang", language)
    assert_accessible(page)
    # A failed login: the error is announced and tied to the field.
    page.locator("#email").fill("nobody@example.ma")
    page.locator("#password").fill("not the password at all")
    page.locator("form[action='/login'] button[type=submit]").click()
    expect(page.locator("#login-error")).to_be_visible()
    expect(page.locator("#email")).to_have_attribute("aria-describedby", "login-error")
    assert_accessible(page)


@pytest.mark.parametrize("language", LANGUAGES)
def test_home_and_request_pages_are_accessible(
    page: Page, live: Live, demo: tuple[Cast, dict[str, Any]], language: str
) -> None:
    cast, request = demo
    _log_in(page, live, cast.maker["email"], language)
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(page.get_by_role("link", name=request["number"])).to_be_visible()
    assert_accessible(page)
    page.get_by_role("link", name=request["number"]).click()
    expect(page.get_by_role("heading", name=request["number"])).to_be_visible()
    expect(page.locator("form.action").first).to_be_visible()
    assert_accessible(page)


def test_the_skip_link_shows_on_focus_and_leads_to_the_content(page: Page, live: Live) -> None:
    page.goto(f"{live.url}/?lang=ar")
    skip = page.locator("a.skip")
    expect(skip).not_to_be_in_viewport()
    page.keyboard.press("Tab")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    outline = skip.evaluate("(element) => getComputedStyle(element).outlineStyle")
    assert outline not in ("", "none")


def test_fields_are_tall_enough_to_touch_on_a_phone(browser: Browser, live: Live) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 740}, has_touch=True)
    try:
        page = context.new_page()
        page.goto(f"{live.url}/?lang=fr")
        for selector in ("#email", "#password", "form[action='/login'] button[type=submit]"):
            box = page.locator(selector).bounding_box()
            assert box is not None and box["height"] >= 44, (selector, box)
        assert_accessible(page)
    finally:
        context.close()


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_not_found_and_refused_pages_are_accessible(
    page: Page, live: Live, demo: tuple[Cast, dict[str, Any]], language: str
) -> None:
    cast, _ = demo
    _log_in(page, live, cast.maker["email"], language)
    answer = page.goto(f"{live.url}/requests/no-such-request")
    assert answer is not None and answer.status == 404
    assert_accessible(page)
    # A form sent with a stale token: the refusal page.
    page.goto(f"{live.url}/")
    page.locator("form[action='/logout'] input[name=csrf]").evaluate("(input) => input.value = 'x'")
    with page.expect_response(lambda answer: answer.url.endswith("/logout")) as sent:
        page.locator("form[action='/logout'] button[type=submit]").click()
    assert sent.value.status == 403
    expect(page.locator("h1")).to_be_visible()
    assert_accessible(page)


def test_the_request_page_on_a_phone(
    browser: Browser, live: Live, demo: tuple[Cast, dict[str, Any]]
) -> None:
    cast, request = demo
    context = browser.new_context(viewport={"width": 360, "height": 740}, has_touch=True)
    try:
        page = context.new_page()
        _log_in(page, live, cast.maker["email"], "ar")
        page.goto(f"{live.url}/requests/{request['id']}")
        expect(page.get_by_role("heading", name=request["number"])).to_be_visible()
        # Nothing wider than the screen: no sideways scrolling.
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
        for button in page.locator("form.action button").all():
            box = button.bounding_box()
            assert box is not None and box["height"] >= 44, box
        assert_accessible(page)
    finally:
        context.close()


#: Each role's main page (as ``mutabaqa screenshots`` pictures them) and who opens it.
ROLE_PAGES = [("tech", "/lab"), ("officer", "/officer/queue"), ("admin", "/admin/organizations")]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("who", "path"), ROLE_PAGES)
def test_each_roles_main_page_is_accessible(
    page: Page, live: Live, demo: tuple[Cast, dict[str, Any]], who: str, path: str, language: str
) -> None:
    cast, _ = demo
    if who == "admin":
        email, password = live.settings.admin_email, live.settings.admin_password
        _log_in(page, live, email, language, password.get_secret_value())
    else:
        _log_in(page, live, getattr(cast, who)["email"], language)
    answer = page.goto(f"{live.url}{path}")
    assert answer is not None and answer.status == 200, path
    expect(page.locator("main h1")).to_be_visible()
    assert_accessible(page)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("path", ["/directory", "/verify/MA-NONE-0000-000000"])
def test_the_public_pages_are_accessible(page: Page, live: Live, path: str, language: str) -> None:
    page.goto(f"{live.url}{path}?lang={language}")
    expect(page.locator("h1").first).to_be_visible()
    assert_accessible(page)
