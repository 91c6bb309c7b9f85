"""The manufacturer's pages in a real browser (Debian's Chromium, headless, Playwright):
a request created through the form, its dossier uploaded by the page (file chooser and
drag and drop, with the script), submitted; and a 50 MB file sent on a throttled
connection whose progress bar is seen moving before it reaches 100 %."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, expect

from api.app import create_app
from tests.api.helpers import PASSWORD
from tests.api.requests_helpers import (
    FFP2,
    FFP2_DOCUMENTS,
    PDF,
    PNG,
    Cast,
    create_request,
    make_cast,
)
from tests.portal.conftest import Live

MiB = 1024 * 1024
BIG = 50 * MiB


def _log_in(page: Page, live: Live, email: str) -> list[str]:
    """Log in through the form; answers the console messages (policy violations show)."""
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.goto(live.url + "/?lang=en")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Requests")).to_be_visible()
    return messages


def _cast(live: Live) -> Cast:
    with TestClient(create_app(live.settings)) as api:
        return make_cast(api, live.settings)


def _slot(page: Page, kind: str):  # type: ignore[no-untyped-def]
    return page.locator("li.document", has=page.locator(f"#file-{kind}"))


def test_a_request_created_by_the_form_its_dossier_uploaded_by_the_page_then_submitted(
    live: Live, browser: Browser, tmp_path: Path
) -> None:
    cast = _cast(live)
    page = browser.new_page(locale="en-GB")
    messages = _log_in(page, live, cast.maker["email"])

    page.get_by_role("link", name="New request").click()
    expect(page.get_by_role("heading", name="New request")).to_be_visible()
    expect(page.get_by_label("Product")).to_have_value(cast.product["id"])
    page.locator(f"#scheme-{FFP2}").check()
    expect(page.locator(f"#scheme-{FFP2}-needs")).to_contain_text("Declaration of conformity")
    page.get_by_role("button", name="Create the request").click()
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("-")  # the request's number
    expect(page.get_by_text("Draft").first).to_be_visible()

    files = {}
    for kind in FFP2_DOCUMENTS:
        name = "photo.png" if kind == "product_photos" else f"{kind}.pdf"
        path = tmp_path / name
        path.write_bytes(PNG if kind == "product_photos" else PDF)
        files[kind] = path
    for kind in FFP2_DOCUMENTS:
        slot = _slot(page, kind)
        expect(slot).to_contain_text("Not uploaded yet.")
        if kind == "user_instructions":  # dropped onto the form's drop zone
            transfer = page.evaluate_handle(
                """(text) => {
                    const transfer = new DataTransfer();
                    transfer.items.add(new File([text], "dropped.pdf", {type: "application/pdf"}));
                    return transfer;
                }""",
                PDF.decode("latin-1"),
            )
            slot.locator(".dropzone").dispatch_event("drop", {"dataTransfer": transfer})
            expect(_slot(page, kind)).to_contain_text("dropped.pdf")
        else:
            slot.locator("input[type=file]").set_input_files(files[kind])
            slot.get_by_role("button", name="Upload").click()
            expect(_slot(page, kind)).to_contain_text(files[kind].name)
    expect(page.get_by_text("Not uploaded yet.")).to_have_count(0)

    page.get_by_role("button", name="Submit", exact=True).click()
    expect(page.locator(".facts .status")).to_have_text("Submitted")
    expect(page.locator("form[data-upload]")).to_have_count(0)
    expect(page.get_by_role("columnheader", name="How long")).to_be_visible()
    assert not [text for text in messages if "Content Security Policy" in text], messages


def test_an_empty_file_is_refused_with_its_reason_shown_by_the_script(
    live: Live, browser: Browser, tmp_path: Path
) -> None:
    cast = _cast(live)
    with TestClient(create_app(live.settings)) as api:
        request = create_request(api, cast)
    page = browser.new_page(locale="en-GB")
    _log_in(page, live, cast.maker["email"])
    page.goto(f"{live.url}/requests/{request['id']}")
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    slot = _slot(page, "technical_file")
    slot.locator("input[type=file]").set_input_files(empty)
    slot.get_by_role("button", name="Upload").click()
    expect(slot.locator("output")).to_have_text("The file is empty: choose a file with content.")
    expect(slot.locator("input[type=file]")).to_have_attribute("aria-invalid", "true")
    expect(slot).to_contain_text("Not uploaded yet.")


def test_without_javascript_the_upload_form_posts_and_comes_back(
    live: Live, browser: Browser, tmp_path: Path
) -> None:
    cast = _cast(live)
    with TestClient(create_app(live.settings)) as api:
        request = create_request(api, cast)
    context = browser.new_context(java_script_enabled=False, locale="en-GB")
    page = context.new_page()
    _log_in(page, live, cast.maker["email"])
    page.goto(f"{live.url}/requests/{request['id']}")
    dossier = tmp_path / "technical.pdf"
    dossier.write_bytes(PDF)
    slot = _slot(page, "technical_file")
    slot.locator("input[type=file]").set_input_files(dossier)
    slot.get_by_role("button", name="Upload").click()
    expect(page).to_have_url(f"{live.url}/requests/{request['id']}#documents")
    expect(_slot(page, "technical_file")).to_contain_text("technical.pdf")
    context.close()


def test_a_50_mb_file_on_a_throttled_connection_shows_its_progress(
    live: Live, browser: Browser, tmp_path: Path
) -> None:
    assert live.settings.max_upload_bytes >= BIG  # the default cap (200 MiB) allows it
    big = tmp_path / "big.pdf"
    with big.open("wb") as out:
        out.write(PDF)
        out.truncate(BIG)  # zeros after a PDF's header: the type check reads the head
    cast = _cast(live)
    with TestClient(create_app(live.settings)) as api:
        request = create_request(api, cast)
    page = browser.new_page(locale="en-GB")
    _log_in(page, live, cast.maker["email"])
    page.goto(f"{live.url}/requests/{request['id']}")

    seen: list[float] = []

    def record(value: float) -> None:
        seen.append(value)

    page.expose_function("recordProgress", record)
    page.evaluate(
        """() => {
            const form = document.querySelector("#file-technical_file").form;
            const bar = form.querySelector("progress");
            new MutationObserver(() => window.recordProgress(bar.value))
                .observe(bar, {attributes: true, attributeFilter: ["value"]});
        }"""
    )
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 20,
            "downloadThroughput": -1,
            "uploadThroughput": 10 * MiB,
        },
    )
    slot = _slot(page, "technical_file")
    slot.locator("input[type=file]").set_input_files(big)
    slot.get_by_role("button", name="Upload").click()
    expect(slot.locator("progress")).to_be_visible()
    # Done: the script went to the request's page, which lists the file.
    expect(_slot(page, "technical_file")).to_contain_text("big.pdf", timeout=120_000)
    expect(_slot(page, "technical_file")).to_contain_text(str(BIG))
    between = {value for value in seen if 0 < value < 100}
    assert len(between) >= 3, seen
