"""``/docs`` works on a machine without internet: every asset it names is served here."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from api.app import create_app
from mutabaqa.settings import Settings

EXPECTED_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
}


def test_docs_reference_only_local_assets_and_serve_them() -> None:
    app = create_app(Settings(database_url="sqlite://"))
    client = TestClient(app)  # no lifespan: /docs and its assets read no database
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(urls) == 4, urls  # style sheet, icon, Swagger UI, its start-up script
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert asset.headers["content-type"].startswith(EXPECTED_TYPES[suffix]), url
        assert len(asset.content) > 100, url
    assert "<script>" not in page.text  # no inline script: the policy forbids them
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "http" not in policy
    assert "frame-ancestors 'none'" in policy
    # The OpenAPI document the page loads is served too.
    assert client.get("/openapi.json").json()["openapi"].startswith("3.")
    assert client.get("/docs/assets/__init__.py").status_code == 404
    assert client.get("/redoc").status_code == 404
