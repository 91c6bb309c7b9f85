"""The officers' pages over HTTP: who may reach them, the queue, the review with its
presigned document links, field errors, decisions, certificate actions, the dashboard.

Every POST without its CSRF token is 403 and changes nothing; every action goes through
the JSON API's own functions (``perform_action``, ``perform_certificate_action``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

import api.portal.officer as officer_pages
from api.app import create_app
from models.accounts import Product
from mutabaqa.settings import Settings
from tests.api.helpers import API
from tests.api.lab_helpers import Lab, make_lab, to_evaluated
from tests.api.requests_helpers import (
    Cast,
    act,
    create_request,
    get,
    make_cast,
    to_review,
    wait_status,
)
from tests.api.test_gs1_digital_link import new_gtin13
from tests.conftest import RunningWorker
from tests.portal.helpers import csrf_of, policy_is_strict, portal_login

OFFICER_PAGES = ("/officer/queue", "/dashboard")


@pytest.fixture(scope="module")
def people(settings: Settings, worker: RunningWorker) -> tuple[Cast, Lab]:
    with TestClient(create_app(settings)) as client:
        cast = make_cast(client, settings)
        return cast, make_lab(client, cast)


@pytest.fixture
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _officer(client: TestClient, cast: Cast) -> None:
    assert portal_login(client, cast.officer["email"]).status_code == 303


def _count(page: str, status: str, *, shown: bool = True) -> int:
    """The dashboard's count of ``status``: its cell must be there (``shown``), or, for a
    status with no request in the range, the table must be there without its row."""
    assert 'aria-labelledby="counts"' in page, "no table of counts"
    found = re.search(rf'data-status="{status}">(\d+)<', page)
    if shown:
        assert found, f"no cell for {status}"
    return int(found.group(1)) if found else 0


def _queue_numbers(page: str) -> list[str]:
    return re.findall(r'href="/officer/requests/[^"]+">([^<]+)</a>', page)


def _in_review(client: TestClient, cast: Cast) -> dict[str, datetime]:
    """The numbers of the requests in application review the officer's JSON list shows,
    with when each last changed."""
    found: dict[str, datetime] = {}
    cursor = ""
    while True:
        page = client.get(
            f"{API}/requests?status=application_review&limit=200{cursor}",
            headers=cast.officer_auth,
        ).json()
        found |= {i["number"]: datetime.fromisoformat(i["updated_at"]) for i in page["items"]}
        if not page["next_cursor"]:
            return found
        cursor = f"&cursor={page['next_cursor']}"


def _listed_numbers(client: TestClient, headers: dict[str, str]) -> set[str]:
    """Every request the JSON list shows this caller, page after page."""
    numbers: set[str] = set()
    cursor = ""
    while True:
        page = client.get(f"{API}/requests?limit=200{cursor}", headers=headers).json()
        numbers |= {item["number"] for item in page["items"]}
        if not page["next_cursor"]:
            return numbers
        cursor = f"&cursor={page['next_cursor']}"


def test_other_roles_and_visitors_do_not_reach_the_officer_pages(
    client: TestClient, people: tuple[Cast, Lab]
) -> None:
    cast, _ = people
    request = to_review(client, cast)
    pages = (*OFFICER_PAGES, f"/officer/requests/{request['id']}", "/officer/certificates/X")
    for path in pages:
        visitor = client.get(path, follow_redirects=False)
        assert visitor.status_code == 303 and visitor.headers["location"] == "/", path
    for email in (cast.maker["email"], cast.tech["email"]):
        assert portal_login(client, email).status_code == 303
        for path in pages:
            assert client.get(path).status_code == 404, (email, path)
        assert "/dashboard" not in client.get("/").text  # no officer links in the header
        client.cookies.clear()
    # Nor may they act through the officer's forms (their roles: 404 as out of reach).
    assert portal_login(client, cast.maker["email"]).status_code == 303
    token = csrf_of(client.get("/"))
    answer = client.post(f"/officer/requests/{request['id']}/actions/accept", data={"csrf": token})
    assert answer.status_code == 404
    assert get(client, cast.officer_auth, request["id"])["status"] == "application_review"


def test_the_queue_lists_waiting_requests_oldest_first(
    client: TestClient, people: tuple[Cast, Lab]
) -> None:
    cast, _ = people
    first, second = to_review(client, cast), to_review(client, cast)
    _officer(client, cast)
    page = client.get("/officer/queue")
    assert page.status_code == 200 and policy_is_strict(page)
    assert "style=" not in page.text and "<script" not in page.text
    assert 'href="/dashboard"' in page.text and 'href="/officer/queue"' in page.text
    assert page.text.index(first["number"]) < page.text.index(second["number"])
    assert f'href="/officer/requests/{first["id"]}"' in page.text
    # The same reach as the JSON list: every request of the queue is one the API lists
    # this officer, and a draft (never submitted) is not in it.
    draft = create_request(client, cast)
    queue = _queue_numbers(client.get("/officer/queue").text)
    assert {first["number"], second["number"]} <= set(queue)
    assert draft["number"] not in queue
    assert set(queue) <= _listed_numbers(client, cast.officer_auth)


def test_past_the_cap_the_queue_keeps_the_longest_waiting_and_says_so(
    client: TestClient, people: tuple[Cast, Lab], monkeypatch: pytest.MonkeyPatch
) -> None:
    cast, _ = people
    for _ in range(3):
        to_review(client, cast)
    # A cap of 2, read one row per page (the ascending cursor is followed).
    monkeypatch.setattr(officer_pages, "QUEUE_LIMIT", 2)
    monkeypatch.setattr(officer_pages, "MAX_LIMIT", 1)
    _officer(client, cast)
    page = client.get("/officer/queue?lang=en")
    assert page.status_code == 200
    shown = [n for n in _queue_numbers(page.text) if n in _in_review(client, cast)]
    waiting = sorted(_in_review(client, cast).items(), key=lambda pair: pair[1])
    assert shown == [waiting[0][0], waiting[1][0]]  # the longest unchanged, not the newest
    assert 'class="list-capped"' in page.text


def test_the_review_opens_documents_through_presigned_links_and_accepts(
    client: TestClient, people: tuple[Cast, Lab]
) -> None:
    cast, _ = people
    request = to_review(client, cast)
    _officer(client, cast)
    page = client.get(f"/officer/requests/{request['id']}")
    assert page.status_code == 200
    documents = get(client, cast.officer_auth, request["id"])["documents"]
    assert len(documents) == 4
    for document in documents:
        assert f'href="/officer/files/{document["id"]}"' in page.text
        assert document["filename"] in page.text
    link = client.get(f"/officer/files/{documents[0]['id']}", follow_redirects=False)
    assert link.status_code == 303 and "X-Amz-Signature" in link.headers["location"]
    content = httpx.get(link.headers["location"])
    assert content.status_code == 200 and content.content.startswith(b"%PDF")
    for action in ("accept", "request_info", "decline"):
        assert f'/actions/{action}"' in page.text
    # confirm_gtin (GS1 Digital Link) is API only: no field for it, here or on the
    # request's general page.
    assert "confirm_gtin" not in page.text
    general = client.get(f"/requests/{request['id']}")
    assert general.status_code == 200 and "confirm_gtin" not in general.text

    # A decline without its reason: the server's error next to the field, nothing changed.
    token = csrf_of(page)
    refused = client.post(
        f"/officer/requests/{request['id']}/actions/decline", data={"csrf": token}
    )
    assert refused.status_code == 422
    assert 'id="decline-reason-error"' in refused.text
    assert 'aria-describedby="decline-reason-error"' in refused.text
    assert get(client, cast.officer_auth, request["id"])["status"] == "application_review"

    # Without the CSRF token: 403, nothing changed.
    assert (
        client.post(f"/officer/requests/{request['id']}/actions/accept", data={}).status_code == 403
    )
    assert get(client, cast.officer_auth, request["id"])["status"] == "application_review"
    # A refusal shows beside its form in the reader's language (French here), the
    # server's own words below it, marked English.
    unknown = client.post(
        f"/officer/requests/{request['id']}/actions/accept?lang=fr",
        data={"csrf": token, "centre_code": "NOPE", "idempotency_key": "k-nope"},
    )
    assert unknown.status_code == 404
    assert 'id="accept-error"><div class="error refusal" role="alert">' in unknown.text
    assert "Introuvable, ou hors de votre périmètre." in unknown.text
    assert '<p class="detail" lang="en" dir="ltr">no technical centre' in unknown.text
    accepted = client.post(
        f"/officer/requests/{request['id']}/actions/accept",
        data={"csrf": token, "centre_code": "CTTH", "idempotency_key": "k-accept"},
        follow_redirects=False,
    )
    assert accepted.status_code == 303, accepted.text
    assert get(client, cast.officer_auth, request["id"])["status"] == "awaiting_sample"


def test_the_report_the_grant_and_the_certificate_actions(
    client: TestClient, people: tuple[Cast, Lab]
) -> None:
    cast, lab = people
    rid = to_evaluated(client, cast, lab)
    _officer(client, cast)
    page = client.get(f"/officer/requests/{rid}")
    assert page.status_code == 200
    view = get(client, cast.officer_auth, rid)
    for result in view["results"]:
        assert result["item_code"] in page.text
    assert page.text.count('class="verdict verdict-pass"') == len(view["results"])
    assert "≤" in page.text  # the limits
    for action in ("grant", "refuse", "request_retest"):
        assert f'/actions/{action}"' in page.text

    # A grant without the CSRF token is refused and changes nothing.
    assert client.post(f"/officer/requests/{rid}/actions/grant", data={}).status_code == 403
    assert get(client, cast.officer_auth, rid)["status"] == "evaluated"
    # A refusal needs its reason: the error is next to the field.
    token = csrf_of(page)
    refused = client.post(f"/officer/requests/{rid}/actions/refuse", data={"csrf": token})
    assert refused.status_code == 422 and 'id="refuse-reason-error"' in refused.text
    granted = client.post(
        f"/officer/requests/{rid}/actions/grant",
        data={"csrf": token, "idempotency_key": "k-grant"},
        follow_redirects=False,
    )
    assert granted.status_code == 303, granted.text
    number = wait_status(client, cast.officer_auth, rid, "certified")["certificate_number"]
    assert f'href="/officer/certificates/{number}"' in client.get(f"/officer/requests/{rid}").text

    certificate = client.get(f"/officer/certificates/{number}")
    assert certificate.status_code == 200
    allowed = client.get(f"{API}/certificates/{number}", headers=cast.officer_auth).json()
    for action in ("suspend", "restore", "withdraw", "reissue"):
        shown = f'/actions/{action}"' in certificate.text
        assert shown == (action in allowed["allowed_actions"]), action
    path = f"/officer/certificates/{number}/actions/suspend"
    assert client.post(path, data={"reason": "x"}).status_code == 403
    missing = client.post(path, data={"csrf": token})
    assert missing.status_code == 422 and 'id="suspend-reason-error"' in missing.text
    done = client.post(
        path, data={"csrf": token, "reason": "Market surveillance finding"}, follow_redirects=False
    )
    assert done.status_code == 303, done.text
    after = client.get(f"{API}/certificates/{number}", headers=cast.officer_auth).json()
    assert after["status"] == "suspended" and "restore" in after["allowed_actions"]
    assert '/actions/restore"' in client.get(f"/officer/certificates/{number}").text


def test_the_dashboard_counts_the_requests_created(
    client: TestClient, people: tuple[Cast, Lab]
) -> None:
    cast, _ = people
    _officer(client, cast)
    before = client.get("/dashboard")
    assert before.status_code == 200 and policy_is_strict(before)
    assert "<svg" in before.text and "style=" not in before.text
    created = [to_review(client, cast) for _ in range(3)]
    after = client.get("/dashboard")
    before_count = _count(before.text, "application_review", shown=False)
    delta = _count(after.text, "application_review") - before_count
    assert delta == len(created)
    assert 'class="visually-hidden"' in after.text and "<title>" in after.text
    # A range that ends before they were created does not count them.
    past = client.get("/dashboard?from=2001-01-01&to=2001-12-31")
    assert past.status_code == 200
    assert _count(past.text, "application_review", shown=False) == 0
    wrong = client.get("/dashboard?from=2026-05-01&to=2026-04-01")
    assert wrong.status_code == 422 and 'aria-describedby="from-error"' in wrong.text


def test_dates_at_the_ends_of_the_calendar_are_refused_next_to_their_field(
    client: TestClient, people: tuple[Cast, Lab]
) -> None:
    """A range needs the day after its end and before its start: 9999-12-31 and
    0001-01-01 are refused (422, the error next to the field), not a server error."""
    cast, _ = people
    _officer(client, cast)
    for query, field in (
        ("to=9999-12-31", "to"),
        ("from=0001-01-01", "from"),
        ("from=0001-01-01&to=9999-12-31", "to"),
    ):
        page = client.get(f"/dashboard?{query}")
        assert page.status_code == 422, query
        assert (
            f'aria-describedby="{field}-error"' in page.text and f'id="{field}-error"' in page.text
        )
    widest = client.get("/dashboard?from=0002-01-01&to=9998-12-31")
    assert widest.status_code == 200 and "aria-invalid" not in widest.text


def test_a_refusal_its_appeal_and_the_appeal_decided_by_another_officer(
    client: TestClient, people: tuple[Cast, Lab]
) -> None:
    cast, lab = people
    rid = to_evaluated(client, cast, lab)
    _officer(client, cast)
    token = csrf_of(client.get(f"/officer/requests/{rid}"))
    refused = client.post(
        f"/officer/requests/{rid}/actions/refuse",
        data={"csrf": token, "reason": "Leakage results disputed"},
        follow_redirects=False,
    )
    assert refused.status_code == 303, refused.text
    assert get(client, cast.officer_auth, rid)["status"] == "refused"
    appeal = act(client, cast.maker_auth, rid, "appeal", {"reason": "The lab misread TIL-IND"})
    assert appeal.status_code == 200, appeal.text

    # The officer who refused may not decide the appeal: no form for them.
    page = client.get(f"/officer/requests/{rid}")
    assert "Leakage results disputed" in page.text and "The lab misread TIL-IND" in page.text
    assert '/actions/uphold"' not in page.text and '/actions/overturn"' not in page.text
    client.cookies.clear()
    assert portal_login(client, lab.officer2["email"]).status_code == 303
    page = client.get(f"/officer/requests/{rid}")
    assert '/actions/uphold"' in page.text and '/actions/overturn"' in page.text
    token = csrf_of(page)
    missing = client.post(f"/officer/requests/{rid}/actions/overturn", data={"csrf": token})
    assert missing.status_code == 422 and 'id="overturn-reason-error"' in missing.text
    upheld = client.post(
        f"/officer/requests/{rid}/actions/uphold",
        data={"csrf": token, "reason": "The results stand"},
        follow_redirects=False,
    )
    assert upheld.status_code == 303, upheld.text
    assert get(client, cast.officer_auth, rid)["status"] == "refused"


def test_a_gtin_added_in_the_portal_is_confirmed_by_the_officer_at_acceptance(
    client: TestClient, people: tuple[Cast, Lab], engine: Engine
) -> None:
    cast, _ = people
    gtin13 = new_gtin13()
    # The manufacturer adds the product with its GTIN through the products page (in
    # French, the portal's default language).
    assert portal_login(client, cast.maker["email"]).status_code == 303
    form = client.get("/products")
    added = client.post(
        "/products",
        data={
            "csrf": csrf_of(form),
            "name": "Masque FFP2 GTIN",
            "brand": "Atlas",
            "model": "G-1",
            "gtin": gtin13,
        },
        follow_redirects=False,
    )
    assert added.status_code == 303, added.text
    listed = client.get("/products")
    assert f"0{gtin13} (pas encore confirmé)" in listed.text
    again = client.post(  # the same GTIN a second time: refused, in the reader's words
        "/products",
        data={"csrf": csrf_of(listed), "name": "Copie", "brand": "X", "model": "Y", "gtin": gtin13},
    )
    assert again.status_code == 409
    assert "Ce GTIN est déjà enregistré pour un autre produit." in again.text
    with Session(engine) as session:
        product = session.exec(select(Product).where(Product.gtin == f"0{gtin13}")).one()
    request = to_review(client, dataclasses.replace(cast, product={"id": product.id}))

    # The officer sees the checkbox on the accept form and confirms.
    client.cookies.clear()  # the manufacturer's session ends here
    _officer(client, cast)
    page = client.get(f"/officer/requests/{request['id']}")
    assert f"J’ai vérifié que le GTIN 0{gtin13} appartient au titulaire" in page.text
    assert 'name="confirm_gtin" value="true"' in page.text
    accepted = client.post(
        f"/officer/requests/{request['id']}/actions/accept",
        data={
            "csrf": csrf_of(page),
            "centre_code": "CTTH",
            "confirm_gtin": "true",
            "idempotency_key": f"k-{request['id']}",
        },
        follow_redirects=False,
    )
    assert accepted.status_code == 303, accepted.text
    with Session(engine) as session:
        confirmed = session.get(Product, product.id)
        assert confirmed is not None and confirmed.gtin_confirmed_at is not None
        assert confirmed.gtin_confirmed_by == cast.officer["id"]
