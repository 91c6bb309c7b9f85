"""A refused action in the portal is shown in the reader's language (``refusals.html``,
by the problem's kind), with the server's English detail below it, marked English."""

from __future__ import annotations

import html

from fastapi.testclient import TestClient

from api.app import create_app
from api.portal.refusals import KINDS
from mutabaqa.i18n import portal_environment
from mutabaqa.settings import Settings
from tests.api.requests_helpers import create_request, make_cast
from tests.conftest import RunningWorker
from tests.portal.helpers import csrf_of, portal_login


def test_every_kind_has_a_sentence_in_every_language() -> None:
    for language in ("ar", "fr", "en"):
        words = portal_environment(language).get_template("refusals.html").module
        assert set(words.SENTENCE) == set(KINDS), language  # type: ignore[attr-defined]


def test_an_invalid_action_in_arabic_shows_the_arabic_sentence(
    settings: Settings, worker: RunningWorker
) -> None:
    with TestClient(create_app(settings)) as client:
        cast = make_cast(client, settings)
        draft = create_request(client, cast)  # no document uploaded yet
        assert portal_login(client, cast.maker["email"]).status_code == 303
        page = client.get(f"/requests/{draft['id']}?lang=ar")
        # Submitting a draft without its documents (a form from a stale page, say).
        refused = client.post(
            f"/requests/{draft['id']}/actions/submit",
            data={"csrf": csrf_of(page), "idempotency_key": "k-refusal-ar"},
        )
        assert refused.status_code == 409
        text = html.unescape(refused.text)
        assert '<html lang="ar" dir="rtl">' in refused.text
        assert "لا تزال بعض الوثائق ناقصة." in text  # missing-documents, in Arabic
        assert '<p class="detail" lang="en" dir="ltr">documents still to upload' in text
        # An action the role may never take: the "forbidden" sentence.
        grant = client.post(
            f"/requests/{draft['id']}/actions/grant",
            data={"csrf": csrf_of(page), "idempotency_key": "k-grant-ar"},
        )
        assert grant.status_code == 403 and "دورك لا يسمح بذلك." in html.unescape(grant.text)
