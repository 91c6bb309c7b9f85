"""Certificate arithmetic (SPEC section 5): validity, numbers, canonical digests."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from domain.certificate_rules import (
    add_months,
    certificate_number,
    search_text,
    to_canonical_value,
    valid_until,
)
from domain.results import Verdict
from models.reference import DecisionRule
from records.canonical import report_digest

#: A verbatim copy of shared/product/test-vectors/certificate-v1.json, kept in the
#: repository so the suite does not depend on a folder outside it.
TEST_VECTOR = Path(__file__).resolve().parents[1] / "vectors" / "certificate-v1.json"


# --- validity -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issued_on", "months", "expected"),
    [
        # SPEC section 5
        (date(2026, 11, 29), 36, date(2029, 11, 28)),
        (date(2028, 2, 29), 12, date(2029, 2, 27)),  # 2029-02-29 does not exist → 28 − 1
        # 31 January + 1 month: clamped to the end of February, then one day back
        (date(2027, 1, 31), 1, date(2027, 2, 27)),
        (date(2028, 1, 31), 1, date(2028, 2, 28)),  # leap year: Feb 29 − 1
        (date(2027, 1, 30), 1, date(2027, 2, 27)),
        (date(2027, 1, 28), 1, date(2027, 2, 27)),
        # leap day onto a leap year keeps the 29th
        (date(2024, 2, 29), 48, date(2028, 2, 28)),
        (date(2028, 2, 29), 24, date(2030, 2, 27)),
        # 31st into a 30-day month, across a year end
        (date(2026, 8, 31), 3, date(2026, 11, 29)),
        (date(2026, 12, 15), 1, date(2027, 1, 14)),
        (date(2026, 1, 1), 12, date(2026, 12, 31)),
        (date(2026, 3, 1), 36, date(2029, 2, 28)),
    ],
)
def test_valid_until(issued_on: date, months: int, expected: date) -> None:
    assert valid_until(issued_on, months) == expected


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 3, 31), 1) == date(2026, 4, 30)
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert add_months(date(2026, 5, 15), -6) == date(2025, 11, 15)


@pytest.mark.parametrize("months", [0, -1])
def test_validity_must_be_positive(months: int) -> None:
    with pytest.raises(ValueError, match="at least one month"):
        valid_until(date(2026, 1, 1), months)


# --- numbers -------------------------------------------------------------------------------


def test_certificate_number_format() -> None:
    assert certificate_number("MA", "CTTH", 2026, 1) == "MA-CTTH-2026-000001"
    assert certificate_number("MA", "CETIEV", 2027, 123456) == "MA-CETIEV-2027-123456"
    assert certificate_number("MA", "CTTH", 2026, 999_999) == "MA-CTTH-2026-999999"


@pytest.mark.parametrize(
    ("prefix", "centre", "year", "seq"),
    [
        ("MA", "CTTH", 2026, 0),
        ("MA", "CTTH", 2026, 1_000_000),
        ("MA", "CTTH", 26, 1),
        ("MA", "CTTH", 12026, 1),
        ("", "CTTH", 2026, 1),
        ("MA", "", 2026, 1),
        ("ma", "CTTH", 2026, 1),
        ("MA", "CT TH", 2026, 1),
    ],
)
def test_certificate_number_refuses_malformed_parts(
    prefix: str, centre: str, year: int, seq: int
) -> None:
    with pytest.raises(ValueError):
        certificate_number(prefix, centre, year, seq)


# --- canonical form and digests --------------------------------------------------------------


def _report() -> dict[str, Any]:
    return {
        "request": "REQ-2026-000123",
        "round": "1",
        "decision_rule": DecisionRule.GUARDED,
        "frozen_on": date(2026, 11, 20),
        "results": [
            {
                "item": "TIL-IND",
                "values": (Decimal("5.0"), Decimal("6")),
                "uncertainty": Decimal("0.70"),
                "verdict": Verdict.PASS,
            }
        ],
        "evidence": [{"sha256": "ab" * 32}],
    }


def test_canonical_value_keeps_decimals_as_written() -> None:
    canonical = to_canonical_value(_report())
    result = canonical["results"][0]
    assert result["values"] == ["5.0", "6"]
    assert result["uncertainty"] == "0.70"
    assert result["verdict"] == "pass"
    assert canonical["decision_rule"] == "guarded"
    assert canonical["frozen_on"] == "2026-11-20"
    assert to_canonical_value(Decimal("1E-7")) == "1E-7"


def test_canonical_datetime_is_utc() -> None:
    casablanca_summer = timezone(timedelta(hours=1))
    at = datetime(2026, 11, 29, 10, 30, tzinfo=casablanca_summer)
    assert to_canonical_value(at) == "2026-11-29T09:30:00+00:00"
    assert to_canonical_value(at) == to_canonical_value(at.astimezone(UTC))
    with pytest.raises(ValueError, match="naive"):
        to_canonical_value(datetime(2026, 11, 29, 10, 30))


@pytest.mark.parametrize("bad", [1, 1.5, Decimal("NaN"), {1: "x"}, {"a"}, b"x"])
def test_canonical_value_refuses_what_has_no_stable_string_form(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        to_canonical_value({"x": bad})


def test_report_digest_ignores_key_order() -> None:
    report = _report()
    reordered = dict(reversed(list(report.items())))
    reordered["results"] = [dict(reversed(list(report["results"][0].items())))]
    assert list(reordered) != list(report)
    assert report_digest(reordered) == report_digest(report)
    digest = report_digest(report)
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    int(digest.removeprefix("sha256:"), 16)


def test_report_digest_matches_stored_string_form() -> None:
    """A report rebuilt from its stored JSON (strings) digests like the original."""
    report = _report()
    stored = json.loads(json.dumps(to_canonical_value(report)))
    assert report_digest(stored) == report_digest(report)


@pytest.mark.parametrize(
    ("path", "new"),
    [
        (("results", 0, "uncertainty"), Decimal("0.7")),  # same number, other resolution
        (("results", 0, "verdict"), Verdict.INCONCLUSIVE),
        (("evidence", 0, "sha256"), "ac" * 32),
        (("round",), "2"),
    ],
)
def test_report_digest_changes_with_any_value(path: tuple[Any, ...], new: object) -> None:
    report = _report()
    changed = _report()
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    assert report_digest(changed) != report_digest(report)


def test_certificate_test_vector_digest() -> None:
    if not TEST_VECTOR.is_file():
        pytest.fail(f"the SPEC test vector is missing: expected it at {TEST_VECTOR}")
    vector = json.loads(TEST_VECTOR.read_text(encoding="utf-8"))
    payload = vector["payload"]
    expected = vector["canonical_sha256"]
    assert hashlib.sha256(rfc8785.dumps(payload)).hexdigest() == expected
    assert report_digest(payload) == f"sha256:{expected}"
    # The vector's own dates follow the validity rule.
    issued_on = date.fromisoformat(payload["issued_on"])
    assert valid_until(issued_on, 36).isoformat() == payload["valid_until"]
    assert payload["number"] == certificate_number("MA", "CTTH", issued_on.year, 1)


def test_search_text_holds_what_the_directory_matches_case_folded() -> None:
    payload = {
        "number": "MA-CTTH-2026-000001",
        "holder": {"name": "Straße Textil", "name_ar": "نسيج"},
        "product": {"name": "Masque", "brand": "ATLAS", "model": "AT-1"},
        "scope": "not searched",
    }
    text = search_text(payload)
    assert text == "ma-ctth-2026-000001\nstrasse textil\nنسيج\nmasque\natlas\nat-1"
    assert "not searched" not in text
    assert search_text({"number": "X-1", "holder": {"name": "H"}, "product": {}}) == "x-1\nh"
