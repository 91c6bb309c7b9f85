"""Accessibility checks of a page in the browser, with axe-core.

axe-core's ``axe.min.js`` comes from the ``axe-playwright-python`` package (a ``dev``
dependency in ``pyproject.toml``): it is read from the installed package, never fetched at
run time. It is run with ``page.evaluate``, in the page's main world, which the page's
Content-Security-Policy does not govern (DevTools-protocol evaluation): the portal's pages
keep their real, strict policy while they are checked. ``page.add_script_tag(content=...)``
would add an inline ``<script>``, which that policy blocks (``script-src`` falls back to
``default-src 'none'``) — ``test_a11y.py`` shows both.

``assert_accessible(page)`` fails listing every ``serious`` or ``critical`` violation: the
rule, its help text and the elements (CSS selectors) at fault.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from playwright.sync_api import Page

#: Impacts that fail a page; ``minor`` and ``moderate`` findings are left to review.
FAILING_IMPACTS = frozenset({"serious", "critical"})
#: The rules axe runs: WCAG 2.x A and AA, and axe's best practices.
RUN_ONLY = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


@cache
def axe_source() -> str:
    """axe-core, as the ``axe-playwright-python`` wheel ships it."""
    return (
        resources.files("axe_playwright_python").joinpath("axe.min.js").read_text(encoding="utf-8")
    )


def axe_version(page: Page) -> str:
    inject_axe(page)
    version: str = page.evaluate("() => window.axe.version")
    return version


def inject_axe(page: Page) -> None:
    """Define ``window.axe`` in the page (once per document)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())


def violations(page: Page) -> list[dict[str, Any]]:
    """axe's violations on the page as it is now (every impact)."""
    inject_axe(page)
    results: dict[str, Any] = page.evaluate(
        """async (runOnly) => await window.axe.run(document, {
            runOnly: {type: "tag", values: runOnly},
            resultTypes: ["violations"],
        })""",
        RUN_ONLY,
    )
    found: list[dict[str, Any]] = results["violations"]
    return found


def describe(found: list[dict[str, Any]]) -> str:
    """One paragraph per violation: impact, rule, help, then each element at fault."""
    lines = []
    for violation in found:
        lines.append(
            f"[{violation['impact']}] {violation['id']}: {violation['help']} "
            f"({violation['helpUrl']})"
        )
        for node in violation["nodes"]:
            target = " ".join(str(part) for part in node["target"])
            summary = " ".join((node.get("failureSummary") or "").split())
            lines.append(f"    {target} — {summary}")
    return "\n".join(lines)


def serious_violations(page: Page) -> list[dict[str, Any]]:
    return [found for found in violations(page) if found["impact"] in FAILING_IMPACTS]


def assert_accessible(page: Page) -> None:
    """Fail listing every serious or critical axe violation of the page."""
    found = serious_violations(page)
    assert not found, f"{page.url} has accessibility violations:\n{describe(found)}"
