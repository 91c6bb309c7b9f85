"""Helpers for portal tests: logging in through the form, reading the CSRF token."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from httpx import Response

from tests.api.helpers import PASSWORD

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def csrf_of(page: Response) -> str:
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def portal_login(client: TestClient, email: str, password: str = PASSWORD) -> Response:
    """Open the login page and send its form (with its token); answers the POST."""
    form = client.get("/")
    assert form.status_code == 200 and 'action="/login"' in form.text, form.text
    response: Response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf": csrf_of(form)},
        follow_redirects=False,
    )
    return response


def policy_is_strict(response: Response) -> bool:
    policy = response.headers["content-security-policy"]
    return "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
