"""The portal over plain HTTP: sessions, CSRF, the reach of lists, actions, languages.

Every portal POST without its CSRF token is 403 and changes nothing; a session ends with
the token-version mechanism (logout, here or through the JSON API); the login form goes
through the same throttling as ``/auth/token``; the buttons are the request's
``allowed_actions`` and run the same action as the JSON API.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from domain.permissions import Role
from mutabaqa.settings import Settings
from tests.api.helpers import API, make_org, make_user
from tests.api.requests_helpers import Cast, create_request, get, make_cast, upload_all
from tests.conftest import RunningWorker
from tests.portal.helpers import csrf_of, policy_is_strict, portal_login


@pytest.fixture(scope="module")
def app_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"login_free_failures": 3})


@pytest.fixture(scope="module")
def cast(app_settings: Settings, worker: RunningWorker) -> Cast:
    with TestClient(create_app(app_settings)) as client:
        return make_cast(client, app_settings)


@pytest.fixture
def client(app_settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as test_client:
        yield test_client


def test_a_visitor_sees_the_login_form_with_a_strict_policy(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert 'action="/login"' in page.text and 'type="password"' in page.text
    assert policy_is_strict(page)
    assert page.headers["cache-control"] == "no-store"
    assert "<style" not in page.text and "style=" not in page.text and "<script" not in page.text
    css = client.get("/static/portal.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_language_from_the_query_then_the_cookie_then_accept_language(client: TestClient) -> None:
    arabic = client.get("/?lang=ar")
    assert '<html lang="ar" dir="rtl">' in arabic.text and "تسجيل الدخول" in arabic.text
    # Remembered: the next page without ?lang= is still Arabic, whatever the browser says.
    again = client.get("/", headers={"Accept-Language": "en"})
    assert '<html lang="ar" dir="rtl">' in again.text
    client.cookies.clear()
    french = client.get("/", headers={"Accept-Language": "de, fr-MA;q=0.9, en;q=0.8"})
    assert '<html lang="fr" dir="ltr">' in french.text and "Se connecter" in french.text
    english = client.get("/?lang=en")
    assert '<html lang="en" dir="ltr">' in english.text and "Log in" in english.text


def _new_maker(settings: Settings, cast: Cast) -> tuple[dict[str, Any], dict[str, str]]:
    """A manufacturer of the cast's organisation of their own (a logout revokes every
    token of its user: the cast's people must keep theirs)."""
    with TestClient(create_app(settings)) as admin_client:
        return make_user(admin_client, cast.admin, [Role.MANUFACTURER], cast.org["id"])


def test_login_sets_a_hardened_session_cookie_and_logout_ends_it(
    client: TestClient, app_settings: Settings, cast: Cast
) -> None:
    user, _ = _new_maker(app_settings, cast)
    answer = portal_login(client, user["email"])
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if "mutabaqa_session" in c)
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()  # the test's public URL is http
    home = client.get("/")
    assert user["full_name"] in home.text and 'action="/logout"' in home.text
    assert policy_is_strict(home)
    # The session cookie is not a bearer token for the JSON API.
    session = client.cookies.get("mutabaqa_session")
    refused = client.get(f"{API}/requests", headers={"Authorization": f"Bearer {session}"})
    assert refused.status_code == 401

    # Logout without its token: 403, and the session still works.
    assert client.post("/logout", data={}).status_code == 403
    assert 'action="/logout"' in client.get("/").text
    out = client.post("/logout", data={"csrf": csrf_of(home)}, follow_redirects=False)
    assert out.status_code == 303
    # Even replaying the old cookie, the session is over (its token version is gone).
    client.cookies.set("mutabaqa_session", session or "")
    assert 'action="/login"' in client.get("/").text


def test_a_session_ends_when_the_tokens_are_revoked_elsewhere(
    client: TestClient, app_settings: Settings, cast: Cast
) -> None:
    user, bearer = _new_maker(app_settings, cast)
    assert portal_login(client, user["email"]).status_code == 303
    assert user["full_name"] in client.get("/").text
    assert client.post(f"{API}/auth/logout", headers=bearer).status_code == 204
    assert 'action="/login"' in client.get("/").text


def test_https_sessions_are_secure_cookies(app_settings: Settings, cast: Cast) -> None:
    https = app_settings.model_copy(update={"public_base_url": "https://portal.example.ma"})
    with TestClient(create_app(https), base_url="https://testserver") as client:
        answer = portal_login(client, cast.maker["email"])
    assert answer.status_code == 303
    cookie = next(c for c in answer.headers.get_list("set-cookie") if "mutabaqa_session" in c)
    assert cookie.startswith("__Host-mutabaqa_session=") and "secure" in cookie.lower()


def test_login_without_its_token_is_refused_and_logs_nobody_in(
    client: TestClient, cast: Cast
) -> None:
    client.get("/")  # the login cookie, without the form's token
    answer = client.post(
        "/login",
        data={"email": cast.maker["email"], "password": "correct horse battery staple"},
        follow_redirects=False,
    )
    assert answer.status_code == 403
    assert not any("mutabaqa_session" in c for c in answer.headers.get_list("set-cookie"))
    assert 'action="/login"' in client.get("/").text


def test_the_portal_login_is_throttled_like_the_api(
    client: TestClient, app_settings: Settings, cast: Cast
) -> None:
    user, _ = _new_maker(app_settings, cast)
    statuses = [
        portal_login(client, user["email"], "wrong password!").status_code for _ in range(5)
    ]
    assert statuses[:3] == [401, 401, 401] and statuses[-1] == 429, statuses
    throttled = portal_login(client, user["email"])  # the right password waits too
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert 'role="alert"' in throttled.text
    # The JSON route shares the account's counter.
    token = client.post(f"{API}/auth/token", data={"username": user["email"], "password": "x" * 12})
    assert token.status_code == 429


def test_lists_follow_the_json_reach(client: TestClient, cast: Cast) -> None:
    with TestClient(create_app(client.app.state.ctx.settings)) as api:  # type: ignore[attr-defined]
        mine = create_request(api, cast)
    portal_login(client, cast.maker["email"])
    home = client.get("/")
    assert f'href="/requests/{mine["id"]}"' in home.text
    listed = set(re.findall(r'href="/requests/([0-9a-f]{32})"', home.text))
    expected = {
        item["id"]
        for item in client.get(f"{API}/requests?limit=50", headers=cast.maker_auth).json()["items"]
    }
    assert listed == expected
    # Another organisation's manufacturer sees neither the request in the list nor its page.
    with TestClient(create_app(client.app.state.ctx.settings)) as api:  # type: ignore[attr-defined]
        stranger, _ = make_user(
            api, cast.admin, [Role.MANUFACTURER], make_org(api, cast.admin)["id"]
        )
    other = TestClient(client.app)
    portal_login(other, stranger["email"])
    assert mine["id"] not in other.get("/").text
    assert other.get(f"/requests/{mine['id']}").status_code == 404


def test_actions_run_through_the_portal_and_a_post_without_token_changes_nothing(
    client: TestClient, cast: Cast
) -> None:
    with TestClient(create_app(client.app.state.ctx.settings)) as api:  # type: ignore[attr-defined]
        request = create_request(api, cast)
    portal_login(client, cast.maker["email"])
    page = client.get(f"/requests/{request['id']}")
    assert page.status_code == 200 and policy_is_strict(page)
    buttons = set(re.findall(r'name="action" value="([a-z_]+)"', page.text))
    allowed = set(get(client, cast.maker_auth, request["id"])["allowed_actions"])
    # Uploads are not a form of the portal yet; every other allowed action is a button.
    assert buttons == allowed - {"upload_document"} and "withdraw" in buttons
    assert "submit" not in buttons  # no documents yet

    # Without the token: 403, the request is still a draft.
    bare = client.post(f"/requests/{request['id']}/actions/withdraw", data={})
    assert bare.status_code == 403
    assert get(client, cast.maker_auth, request["id"])["status"] == "draft"

    # Submitting without documents (a stale page, a hand-made form): the server's reason is
    # shown, nothing changes.
    refused = client.post(f"/requests/{request['id']}/actions/submit", data={"csrf": csrf_of(page)})
    assert refused.status_code == 409 and 'role="alert"' in refused.text
    detail = client.post(
        f"{API}/requests/{request['id']}/actions/submit", json={}, headers=cast.maker_auth
    ).json()["detail"]
    assert _escaped(detail) in refused.text
    assert get(client, cast.maker_auth, request["id"])["status"] == "draft"

    upload_all(client, cast, request["id"])
    page = client.get(f"/requests/{request['id']}")
    assert 'name="action" value="submit"' in page.text
    done = client.post(
        f"/requests/{request['id']}/actions/submit",
        data={"csrf": csrf_of(page)},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == f"/requests/{request['id']}"
    assert get(client, cast.maker_auth, request["id"])["status"] == "submitted"
    after = client.get(f"/requests/{request['id']}?lang=fr")
    assert "Soumise" in after.text and "Brouillon → Soumise" in after.text


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("'", "&#39;").replace('"', "&#34;")


def test_language_links_of_a_page_answering_a_post_go_to_its_get_page(
    client: TestClient, app_settings: Settings, cast: Cast
) -> None:
    """Not to the POST's path (which answers a GET with 405)."""
    user, _ = _new_maker(app_settings, cast)
    failed = portal_login(client, user["email"], "wrong password!")
    assert failed.status_code == 401
    assert 'href="/?lang=ar"' in failed.text and 'href="/login?' not in failed.text
    assert client.get("/?lang=ar").status_code == 200

    assert portal_login(client, cast.maker["email"]).status_code == 303
    draft = create_request(client, cast)
    page = client.get(f"/requests/{draft['id']}")
    # Submitting without the documents is refused: the request's page, linked as itself.
    refused = client.post(
        f"/requests/{draft['id']}/actions/submit",
        data={"csrf": csrf_of(page), "idempotency_key": "k-" + draft["id"]},
    )
    assert refused.status_code == 409, refused.status_code
    assert f'href="/requests/{draft["id"]}?lang=fr"' in refused.text  # (in Arabic now)
    assert "/actions/submit?lang=" not in refused.text
