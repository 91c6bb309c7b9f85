"""The laboratory's pages in a real browser, on a phone-sized screen: technician A
receives the sample, types results and watches the live verdict, uploads evidence and
submits; technician B, in another browser context, verifies them."""

from __future__ import annotations

import html
import random
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from playwright.sync_api import Browser, BrowserContext, FilePayload, Page, ViewportSize, expect

from api.app import create_app
from domain.decision_rules import InvalidValues, Limits, UncertaintyRequired, aggregate
from domain.statuses import Aggregation, DecisionRule
from tests.api.helpers import API, PASSWORD
from tests.api.lab_helpers import FFP2_PASSING, make_lab
from tests.api.requests_helpers import PDF, make_cast, to_review
from tests.portal.conftest import Live

PHONE = ViewportSize(width=390, height=844)


def _log_in(context: BrowserContext, live: Live, email: str) -> Page:
    page = context.new_page()
    page.goto(live.url + "/?lang=en")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Requests")).to_be_visible()
    return page


def test_a_technician_tests_on_a_phone_and_a_colleague_verifies(
    live: Live, browser: Browser
) -> None:
    with TestClient(create_app(live.settings)) as api:
        cast = make_cast(api, live.settings)
        lab = make_lab(api, cast)
        request = to_review(api, cast)
        accepted = api.post(
            f"{API}/requests/{request['id']}/actions/accept", json={}, headers=cast.officer_auth
        )
        assert accepted.is_success, accepted.text
    number = request["number"]
    violations: list[str] = []

    phone = browser.new_context(viewport=PHONE, locale="en-GB", has_touch=True)
    page = _log_in(phone, live, cast.tech["email"])
    page.on("console", lambda message: violations.append(message.text))
    page.get_by_role("link", name="Laboratory work").click()
    awaiting = page.get_by_role("region", name="Awaiting sample")
    awaiting.get_by_role("link", name=number).click()

    expect(page.get_by_role("heading", name=f"Sample receipt {number}")).to_be_visible()
    page.get_by_label("Sample reference").fill("CTTH-2026-0420")
    page.get_by_label("Condition of the sample").first.fill("Sealed box of 20")
    page.get_by_role("button", name="Receive the sample").click()

    expect(page.get_by_role("heading", name=f"Results sheet {number}")).to_be_visible()
    item = page.locator("#item-PEN-PARAFFIN")
    verdict = item.locator("output.verdict")
    expect(verdict).to_have_text("—")
    item.get_by_label("Expanded uncertainty U (k=2)").fill("0.2")
    values = item.locator("textarea[name=values]")
    values.press_sequentially("3.2 2.9 3.5")
    expect(verdict).to_have_text("Pass")
    values.fill("6.8 7.0 6.9")
    expect(verdict).to_have_text("Fail")
    values.fill("5.9 5.95 5.9")  # 5.95 ± 0.2 straddles the limit
    expect(verdict).to_have_text("Inconclusive")
    values.fill("3.2 2.9 3.5")
    expect(verdict).to_have_text("Pass")

    for code, body in FFP2_PASSING.items():
        form = page.locator(f"#item-{code}")
        form.get_by_label("Expanded uncertainty U (k=2)").fill(body["uncertainty"])
        form.locator("textarea[name=values]").fill(" ".join(body["values"]))
        expect(form.locator("output.verdict")).to_have_text("Pass")
        form.get_by_role("button", name=f"Save {code}").click()
        # The server's verdict, recorded on saving, is the one shown afterwards.
        expect(page.locator(f"#item-{code} [data-saved-verdict]")).to_have_text("Pass")

    page.get_by_label("File", exact=True).set_input_files(
        files=[FilePayload(name="report.pdf", mimeType="application/pdf", buffer=PDF)]
    )
    page.get_by_role("button", name="Upload the evidence").click()
    expect(page.get_by_text("report.pdf")).to_be_visible()

    page.get_by_role("button", name="Submit the results").click()
    expect(page.locator(".status").first).to_have_text("Results submitted")
    page.get_by_role("button", name="Verify the results").click()  # not by the recorder
    expect(page.get_by_role("alert")).to_contain_text("recorded none of this round")

    desk = browser.new_context(locale="en-GB")
    colleague = _log_in(desk, live, lab.verifier["email"])
    colleague.on("console", lambda message: violations.append(message.text))
    colleague.get_by_role("link", name="Laboratory work").click()
    submitted = colleague.get_by_role("region", name="Results submitted")
    submitted.get_by_role("link", name=number).click()
    expect(colleague.locator("#item-PEN-PARAFFIN [data-saved-verdict]")).to_have_text("Pass")
    colleague.get_by_role("button", name="Verify the results").click()
    expect(colleague.locator(".status").first).to_have_text("Evaluated")

    phone.close()
    desk.close()
    assert not [text for text in violations if "Content Security Policy" in text], violations


def _server_verdict(case: dict[str, Any]) -> str:
    """What the server's rule says (``domain.decision_rules.aggregate``), or its refusal."""
    try:
        result = aggregate(
            [Decimal(v) for v in case["values"]],
            Aggregation(case["aggregation"]),
            case["min_count"],
            Limits(
                None if case["lower"] is None else Decimal(case["lower"]),
                case["lower_inclusive"],
                None if case["upper"] is None else Decimal(case["upper"]),
                case["upper_inclusive"],
            ),
            DecisionRule(case["rule"]),
            None if case["u"] is None else Decimal(case["u"]),
        )
    except UncertaintyRequired:
        return "needs-u"
    except InvalidValues:
        return "invalid"
    return result.verdict.value


def _case_form(index: int, case: dict[str, Any]) -> str:
    data = {
        "rule": case["rule"],
        "aggregation": case["aggregation"],
        "min-count": case["min_count"],
        "lower": case["lower"],
        "lower-inclusive": case["lower_inclusive"],
        "upper": case["upper"],
        "upper-inclusive": case["upper_inclusive"],
    }
    attrs = " ".join(
        f'data-{name}="{"" if value is None else html.escape(str(value).lower())}"'
        for name, value in data.items()
    )
    u = "" if case["u"] is None else case["u"]
    return (
        f'<form data-verdict id="case-{index}" {attrs}>'
        f'<textarea name="values">{" ".join(case["values"])}</textarea>'
        f'<input name="uncertainty" value="{u}"><output class="verdict"></output></form>'
    )


def test_the_live_verdict_is_the_servers_rule(live: Live, browser: Browser) -> None:
    """``api/static/results.js`` against ``domain.decision_rules`` on many cases near the
    limits (exact limits, exclusive limits, values ± U straddling them, every aggregation)."""
    rng = random.Random(12)
    numbers = ["5.8", "5.9", "6", "6.0", "6.00", "6.1", "-0.5", "0", "0.05", "1e1", "6E0", "2.5"]
    cases = []
    for _ in range(400):
        lower = rng.choice([None, "0", "2.5", "5.9"])
        upper = (
            rng.choice([None, "6", "6.0", "10"]) if lower is not None else rng.choice(["6", "10"])
        )
        aggregation = rng.choice(["single", "all", "mean", "count_within"])
        values = [
            rng.choice(numbers) for _ in range(1 if aggregation == "single" else rng.randint(1, 5))
        ]
        cases.append({
            "rule": rng.choice(["simple", "guarded"]),
            "aggregation": aggregation,
            "min_count": rng.randint(1, 4) if aggregation == "count_within" else None,
            "lower": lower,
            "lower_inclusive": rng.random() < 0.6,
            "upper": upper,
            "upper_inclusive": rng.random() < 0.6,
            "values": values,
            "u": rng.choice([None, "0", "0.05", "0.1", "0.2", "1"]),
        })  # fmt: skip
    page = browser.new_page()
    page.set_content(
        "<!doctype html><body>"
        + "".join(_case_form(i, case) for i, case in enumerate(cases))
        + f'<script src="{live.url}/static/results.js"></script></body>'
    )
    expect(page.locator("#case-0 output")).not_to_have_text("")
    shown = page.evaluate(
        "() => Array.from(document.querySelectorAll('output.verdict'), o => o.dataset.verdict)"
    )
    expected = [_server_verdict(case) for case in cases]
    differing = [(case, s, e) for case, s, e in zip(cases, shown, expected, strict=True) if s != e]
    assert not differing, differing[:5]
    assert {"pass", "fail", "inconclusive", "invalid", "needs-u"} <= set(expected)
