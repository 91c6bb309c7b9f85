"""Arabic pages write numbers with Latin digits (``ar_MA``): a date, a request number and a
certificate number read the same as on the French page."""

from __future__ import annotations

import re
from html import unescape

from fastapi.testclient import TestClient

from api.app import create_app
from mutabaqa.settings import Settings
from tests.api.lab_helpers import make_lab, to_evaluated
from tests.api.requests_helpers import act, get, make_cast
from tests.conftest import RunningWorker
from tests.portal.helpers import portal_login

#: Arabic-Indic (U+0660–0669) and Extended Arabic-Indic (U+06F0–06F9, Persian/Urdu) digits.
EASTERN_DIGITS = re.compile("[\u0660-\u0669\u06f0-\u06f9]")
FIRST_CELL = re.compile(r"<tr>\s*<td>([^<]*)</td>")


def _page(client: TestClient, path: str, language: str) -> str:
    answer = client.get(path, params={"lang": language})
    assert answer.status_code == 200, answer.text
    return unescape(answer.text)


def _dates(page: str) -> list[str]:
    """The timeline's first column: when each step happened."""
    body = page.split("<tbody>")[-1]
    return [cell.strip() for cell in FIRST_CELL.findall(body)]


def test_the_request_page_in_arabic_uses_latin_digits(
    settings: Settings, worker: RunningWorker
) -> None:
    with TestClient(create_app(settings)) as client:
        cast = make_cast(client, settings)
        lab = make_lab(client, cast)
        rid = to_evaluated(client, cast, lab)
        granted = act(client, cast.officer_auth, rid, "grant")
        assert granted.status_code == 200, granted.text
        request = get(client, cast.maker_auth, rid)
        certificate = str(request["certificate_number"])
        assert portal_login(client, cast.maker["email"]).status_code == 303

        arabic = _page(client, f"/requests/{rid}", "ar")
        french = _page(client, f"/requests/{rid}", "fr")

    assert 'lang="ar"' in arabic and 'dir="rtl"' in arabic
    assert EASTERN_DIGITS.findall(arabic) == []
    for number in (request["number"], certificate):
        assert re.search(r"\d", number)
        assert f">{number}<" in arabic and f">{number}<" in french
    dates = _dates(arabic)
    assert dates and len(dates) == len(_dates(french))
    year = request["created_at"][:4]
    for date in dates:
        assert year in date and not EASTERN_DIGITS.search(date), dates
    # The same instants in the same digits (French names the month in words: "4 déc. 2026,
    # 19:24:36" beside "04/12/2026، 19:24:36").
    for ar_date, fr_date in zip(dates, _dates(french), strict=True):
        french_numbers = {int(number) for number in re.findall(r"\d+", fr_date)}
        assert french_numbers <= {int(number) for number in re.findall(r"\d+", ar_date)}
