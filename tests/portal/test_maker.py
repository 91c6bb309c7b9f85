"""The manufacturer's pages over plain HTTP: products, the new request form, the dossier's
uploads (CSRF before any byte is stored, errors next to the field), the timeline's
durations, the action forms' fields and errors, certificates; and their reach (another
organisation's request or certificate is 404)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from minio import Minio

from api.app import create_app
from api.portal.maker_view import stage_seconds
from domain.permissions import Role
from models.request_api import TimelineItem
from mutabaqa.settings import Settings
from tests.api.helpers import API, make_org, make_user
from tests.api.lab_helpers import FAILING_PARAFFIN as FAILING
from tests.api.lab_helpers import Lab, make_lab, to_evaluated
from tests.api.requests_helpers import (
    FFP2,
    FFP2_DOCUMENTS,
    PDF,
    PNG,
    Cast,
    act,
    create_request,
    get,
    make_cast,
    to_review,
    wait_pdf_link,
)
from tests.conftest import RunningWorker
from tests.portal.helpers import csrf_of, policy_is_strict, portal_login


@pytest.fixture(scope="module")
def cast(settings: Settings, worker: RunningWorker) -> Cast:
    with TestClient(create_app(settings)) as client:
        return make_cast(client, settings)


@pytest.fixture(scope="module")
def other(settings: Settings, cast: Cast, worker: RunningWorker) -> dict[str, Any]:
    """A manufacturer of another organisation."""
    with TestClient(create_app(settings)) as client:
        org = make_org(client, cast.admin)
        user, _ = make_user(client, cast.admin, [Role.MANUFACTURER], organization_id=org["id"])
        return user


def _logged_in(settings: Settings, email: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        assert portal_login(client, email).status_code == 303
        yield client


@pytest.fixture
def maker(settings: Settings, cast: Cast, worker: RunningWorker) -> Iterator[TestClient]:
    yield from _logged_in(settings, cast.maker["email"])


@pytest.fixture
def stranger(
    settings: Settings, other: dict[str, Any], worker: RunningWorker
) -> Iterator[TestClient]:
    yield from _logged_in(settings, other["email"])


def _multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    """A multipart body with its parts in this order: (name, filename or None, content)."""
    boundary = uuid.uuid4().hex
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        headers = f"Content-Disposition: {disposition}"
        if filename is not None:
            headers += f'; filename="{filename}"\r\nContent-Type: application/pdf'
        body += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _post_parts(
    client: TestClient,
    request_id: str,
    parts: list[tuple[str, str | None, bytes]],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body, content_type = _multipart(parts)
    response: httpx.Response = client.post(
        f"/requests/{request_id}/documents",
        content=body,
        headers={"Content-Type": content_type} | (headers or {}),
        follow_redirects=False,
    )
    return response


def _stored(store: Minio, settings: Settings, request_id: str) -> list[str]:
    return [
        str(item.object_name)
        for item in store.list_objects(
            settings.s3_evidence_bucket, prefix=f"requests/{request_id}/", recursive=True
        )
    ]


# --- products -----------------------------------------------------------------------------------


def test_products_list_and_add_through_the_form(maker: TestClient, cast: Cast) -> None:
    page = maker.get("/products?lang=en")
    assert page.status_code == 200 and policy_is_strict(page)
    assert cast.product["model"] in page.text
    count = len(maker.get(f"{API}/products", headers=cast.maker_auth).json()["items"])

    model = f"PX-{uuid.uuid4().hex[:6]}"
    fields = {"name": "Masque", "brand": "Atlas", "model": model}
    bare = maker.post("/products", data=fields, follow_redirects=False)
    assert bare.status_code == 403
    missing = maker.post(
        "/products", data={"csrf": csrf_of(page), "name": "Masque", "model": model}
    )
    assert missing.status_code == 422
    assert 'aria-describedby="product-brand-error"' in missing.text
    assert 'id="product-brand-error"' in missing.text and "This field is required." in missing.text
    assert len(maker.get(f"{API}/products", headers=cast.maker_auth).json()["items"]) == count

    added = maker.post("/products", data=fields | {"csrf": csrf_of(page)}, follow_redirects=False)
    assert added.status_code == 303 and added.headers["location"] == "/products"
    models = [
        p["model"] for p in maker.get(f"{API}/products", headers=cast.maker_auth).json()["items"]
    ]
    assert model in models and len(models) == count + 1
    assert model in maker.get("/products").text


# --- a new request ------------------------------------------------------------------------------


def test_the_new_request_form_lists_each_schemes_documents_and_creates_once(
    maker: TestClient, cast: Cast
) -> None:
    page = maker.get("/requests/new?lang=en")
    assert page.status_code == 200 and policy_is_strict(page)
    assert f'value="{FFP2}"' in page.text and cast.product["id"] in page.text
    for label in ("Technical file", "Declaration of conformity", "User instructions"):
        assert label in page.text
    assert "CTTH" in page.text  # the centres serving the scheme's sector

    key = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', page.text)
    assert key is not None
    form = {"product_id": cast.product["id"], "scheme_code": FFP2, "idempotency_key": key[1]}
    before = len(maker.get(f"{API}/requests", headers=cast.maker_auth).json()["items"])
    assert maker.post("/requests/new", data=form, follow_redirects=False).status_code == 403
    assert len(maker.get(f"{API}/requests", headers=cast.maker_auth).json()["items"]) == before

    unknown = maker.post(
        "/requests/new",
        data=form | {"csrf": csrf_of(page), "scheme_code": "NOPE", "idempotency_key": ""},
    )
    assert unknown.status_code == 404 and 'id="new-scheme-error"' in unknown.text

    created = maker.post(
        "/requests/new", data=form | {"csrf": csrf_of(page)}, follow_redirects=False
    )
    assert created.status_code == 303
    request_id = created.headers["location"].rsplit("/", 1)[1]
    request = get(maker, cast.maker_auth, request_id)
    assert request["status"] == "draft" and request["product"]["id"] == cast.product["id"]
    # The same form sent twice creates one request.
    again = maker.post("/requests/new", data=form | {"csrf": csrf_of(page)}, follow_redirects=False)
    assert again.headers["location"] == created.headers["location"]
    after = len(maker.get(f"{API}/requests", headers=cast.maker_auth).json()["items"])
    assert after == before + 1


# --- uploads ------------------------------------------------------------------------------------


def test_an_upload_without_its_token_is_refused_before_anything_is_stored(
    maker: TestClient, cast: Cast, settings: Settings, store: Minio
) -> None:
    request = create_request(maker, cast)
    page = maker.get(f"/requests/{request['id']}?lang=en")
    csrf = csrf_of(page)
    assert 'enctype="multipart/form-data"' in page.text and "data-upload" in page.text
    file = ("file", "dossier.pdf", PDF)
    attempts = [
        _post_parts(maker, request["id"], [("kind", None, b"technical_file"), file]),
        # the token after the file: the file's bytes would be read before it
        _post_parts(
            maker,
            request["id"],
            [("kind", None, b"technical_file"), file, ("csrf", None, csrf.encode())],
        ),
        _post_parts(
            maker,
            request["id"],
            [("csrf", None, b"0" * 64), ("kind", None, b"technical_file"), file],
        ),
        _post_parts(
            maker,
            request["id"],
            [("csrf", None, csrf.encode()), ("kind", None, b"technical_file"), file],
            headers={"X-CSRF-Token": "0" * 64},
        ),
    ]
    for refused in attempts:
        assert refused.status_code == 403, refused.text
        assert "<h1>Form expired</h1>" in refused.text
    assert get(maker, cast.maker_auth, request["id"])["documents"] == []
    assert _stored(store, settings, request["id"]) == []


def test_an_empty_file_is_refused_next_to_its_field(maker: TestClient, cast: Cast) -> None:
    request = create_request(maker, cast)
    csrf = csrf_of(maker.get(f"/requests/{request['id']}?lang=en"))
    empty = _post_parts(
        maker,
        request["id"],
        [
            ("csrf", None, csrf.encode()),
            ("kind", None, b"user_instructions"),
            ("file", "x.pdf", b""),
        ],
    )
    assert empty.status_code == 422
    page = empty.text
    field = re.search(r'<input id="file-user_instructions"[^>]*>', page)
    assert field is not None and 'aria-invalid="true"' in field[0]
    assert 'aria-describedby="error-user_instructions"' in field[0]
    error = re.search(r'<p id="error-user_instructions"[^>]*>([^<]*)</p>', page)
    assert error is not None and "The file is empty" in error[1]
    assert get(maker, cast.maker_auth, request["id"])["documents"] == []


def test_the_dossier_uploaded_by_the_page_then_submitted(
    maker: TestClient, cast: Cast, settings: Settings, store: Minio
) -> None:
    request = create_request(maker, cast)
    page = maker.get(f"/requests/{request['id']}?lang=en")
    assert page.headers["content-security-policy"].count("script-src 'self'") == 1
    assert '<script src="/static/upload.js" defer></script>' in page.text
    for kind in FFP2_DOCUMENTS:
        assert f'<input type="hidden" name="kind" value="{kind}">' in page.text
    csrf = csrf_of(page)
    for index, kind in enumerate(FFP2_DOCUMENTS):
        name, content = ("photo.png", PNG) if kind == "product_photos" else (f"{kind}.pdf", PDF)
        if index % 2:  # the script's way: the token as a header only
            sent = maker.post(
                f"/requests/{request['id']}/documents",
                data={"kind": kind},
                files={"file": (name, content)},
                headers={"X-CSRF-Token": csrf},
                follow_redirects=False,
            )
        else:  # without the script: the token is the form's first field
            sent = maker.post(
                f"/requests/{request['id']}/documents",
                data={"csrf": csrf, "kind": kind},
                files={"file": (name, content)},
                follow_redirects=False,
            )
        assert sent.status_code == 303, sent.text
        assert sent.headers["location"] == f"/requests/{request['id']}#documents"
    documents = get(maker, cast.maker_auth, request["id"])["documents"]
    assert sorted(d["kind"] for d in documents) == sorted(FFP2_DOCUMENTS)
    assert len(_stored(store, settings, request["id"])) == len(FFP2_DOCUMENTS)
    page = maker.get(f"/requests/{request['id']}?lang=en")
    assert "Not uploaded yet." not in page.text and "photo.png" in page.text

    done = maker.post(
        f"/requests/{request['id']}/actions/submit", data={"csrf": csrf}, follow_redirects=False
    )
    assert done.status_code == 303
    page = maker.get(f"/requests/{request['id']}?lang=en")
    assert "data-upload" not in page.text  # documents are closed once submitted
    # The draft stage lasted some seconds: its duration is shown in the timeline.
    assert "How long" in page.text
    assert re.search(r"<td>\s*\d+ (second|seconds|minute|minutes)\s*</td>", page.text), page.text


def test_respond_carries_a_labelled_required_message_and_shows_its_error(
    maker: TestClient, cast: Cast
) -> None:
    request = to_review(maker, cast)
    asked = act(maker, cast.officer_auth, request["id"], "request_info", {"message": "Photos?"})
    assert asked.status_code == 200, asked.text
    page = maker.get(f"/requests/{request['id']}?lang=en")
    assert '<label for="respond-message">Message <span class="required">(required)</span>' in (
        page.text
    )
    assert re.search(r'<textarea id="respond-message" name="message" rows="3" required>', page.text)
    refused = maker.post(
        f"/requests/{request['id']}/actions/respond",
        data={"csrf": csrf_of(page), "message": ""},
    )
    assert refused.status_code == 422
    assert 'id="respond-error"' in refused.text
    assert re.search(
        r'<textarea id="respond-message"[^>]*aria-describedby="respond-error"', refused.text
    )
    assert get(maker, cast.maker_auth, request["id"])["status"] == "info_requested"


def test_appeal_carries_a_labelled_required_reason_and_goes_through_the_form(
    maker: TestClient, cast: Cast, settings: Settings
) -> None:
    with TestClient(create_app(settings)) as api:
        request_id = to_evaluated(api, cast, make_lab(api, cast), {"PEN-PARAFFIN": FAILING})
        refused = act(api, cast.officer_auth, request_id, "refuse", {"reason": "Too high."})
        assert refused.status_code == 200, refused.text
    page = maker.get(f"/requests/{request_id}?lang=en")
    assert '<label for="appeal-reason">Reason <span class="required">(required)</span>' in (
        page.text
    )
    assert '<textarea id="appeal-reason" name="reason" rows="3" required>' in page.text
    empty = maker.post(
        f"/requests/{request_id}/actions/appeal", data={"csrf": csrf_of(page), "reason": " "}
    )
    assert empty.status_code == 422 and 'aria-describedby="appeal-error"' in empty.text
    assert get(maker, cast.maker_auth, request_id)["status"] == "refused"
    appealed = maker.post(
        f"/requests/{request_id}/actions/appeal",
        data={"csrf": csrf_of(page), "reason": "The flow rate was wrong."},
        follow_redirects=False,
    )
    assert appealed.status_code == 303
    assert get(maker, cast.maker_auth, request_id)["status"] == "under_appeal"


def test_stage_durations_count_status_changes_only() -> None:
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def item(minutes: int, before: str | None, after: str | None) -> TimelineItem:
        return TimelineItem(
            at=start + timedelta(minutes=minutes),
            action="x",
            actor="someone",
            actor_role="manufacturer",
            from_status=before,
            to_status=after,
        )

    items = [
        item(0, None, "draft"),
        item(5, "draft", "draft"),  # an upload
        item(90, "draft", "submitted"),
        item(91, None, None),  # an event with no status
        item(150, "submitted", "application_review"),
    ]
    assert stage_seconds(items) == [90 * 60, None, 60 * 60, None, None]


# --- reach --------------------------------------------------------------------------------------


def test_another_organisations_request_is_out_of_reach(
    stranger: TestClient, cast: Cast, settings: Settings, store: Minio
) -> None:
    with TestClient(create_app(settings)) as api:
        request = create_request(api, cast)
    assert stranger.get(f"/requests/{request['id']}").status_code == 404
    csrf = csrf_of(stranger.get("/products"))
    sent = stranger.post(
        f"/requests/{request['id']}/documents",
        data={"csrf": csrf, "kind": "technical_file"},
        files={"file": ("dossier.pdf", PDF)},
        follow_redirects=False,
    )
    assert sent.status_code == 404
    assert _stored(store, settings, request["id"]) == []
    # The other organisation's product cannot be named in a new request either.
    added = stranger.post(
        "/products",
        data={"csrf": csrf, "name": "Casque", "brand": "Rif", "model": "R1"},
        follow_redirects=False,
    )
    assert added.status_code == 303
    page = stranger.get("/requests/new")
    refused = stranger.post(
        "/requests/new",
        data={"csrf": csrf_of(page), "product_id": cast.product["id"], "scheme_code": FFP2},
    )
    assert refused.status_code == 404 and 'id="new-product-error"' in refused.text


# --- certificates -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(settings: Settings, cast: Cast, worker: RunningWorker) -> str:
    with TestClient(create_app(settings)) as api:
        lab: Lab = make_lab(api, cast)
        request_id = to_evaluated(api, cast, lab)
        granted = act(api, cast.officer_auth, request_id, "grant")
        assert granted.status_code == 200, granted.text
        return str(granted.json()["certificate_number"])


def test_certificates_list_page_pdf_and_timeline(
    maker: TestClient, cast: Cast, certificate: str
) -> None:
    listed = maker.get("/certificates?lang=en")
    assert listed.status_code == 200 and policy_is_strict(listed)
    assert f'href="/certificates/{certificate}"' in listed.text
    api_list = maker.get(f"{API}/certificates", headers=cast.maker_auth).json()["items"]
    assert {c["number"] for c in api_list} == set(
        re.findall(r'href="/certificates/([^"/]+)"', listed.text)
    )

    page = maker.get(f"/certificates/{certificate}?lang=en")
    assert page.status_code == 200 and "Valid" in page.text
    pdf_ready = "Download the PDF" in page.text
    assert pdf_ready or "The PDF is being prepared" in page.text
    wait_pdf_link(maker, cast.maker_auth, certificate)  # the API's own route says it is ready
    page = maker.get(f"/certificates/{certificate}?lang=en")
    assert f'href="/certificates/{certificate}/pdf"' in page.text
    link = maker.get(f"/certificates/{certificate}/pdf", follow_redirects=False)
    assert link.status_code == 307 and f"{certificate}.pdf" in link.headers["location"]
    assert "No event yet." in page.text

    for action in ("suspend", "restore"):
        done = maker.post(
            f"{API}/certificates/{certificate}/actions/{action}",
            json={"reason": f"{action}: surveillance audit"},
            headers=cast.officer_auth,
        )
        assert done.status_code == 200, done.text
    page = maker.get(f"/certificates/{certificate}?lang=en")
    timeline = maker.get(f"{API}/certificates/{certificate}/timeline", headers=cast.maker_auth)
    items = timeline.json()["items"]
    assert len(items) == 2 and "Suspended" in page.text
    for item in items:
        assert item["actor"] in page.text and item["detail"]["reason"] in page.text
    assert cast.officer["full_name"] not in page.text  # staff are shown by their role


def test_another_organisations_certificate_is_out_of_reach(
    stranger: TestClient, certificate: str
) -> None:
    assert stranger.get(f"/certificates/{certificate}").status_code == 404
    assert (
        stranger.get(f"/certificates/{certificate}/pdf", follow_redirects=False).status_code == 404
    )
    assert certificate not in stranger.get("/certificates").text
