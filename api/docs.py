"""``/docs``: the interactive API documentation, served whole by the application.

Swagger UI's script, style sheet and icon come from the ``fastapi-swagger`` wheel
(installed with the application, nothing fetched at run time) and are served under
``/docs/assets/``; the page's start-up script is a file of our own
(``api/static/docs-init.js``), so the page runs no inline script and its policy allows
scripts from this origin only. ReDoc (which FastAPI would load from a CDN) is not offered.
"""

from __future__ import annotations

from html import escape
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse

from api.problems import Problem

DOCS_URL = "/docs"
ASSETS = f"{DOCS_URL}/assets"
#: Swagger UI sets style attributes from script; everything else comes from this origin.
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_SWAGGER = Path(str(resources.files("fastapi_swagger.resources")))
#: The files of the Swagger UI wheel that are served, and their media types.
SWAGGER_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" href="{assets}/favicon-32x32.png">
</head>
<body data-openapi-url="{openapi}">
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="/static/docs-init.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Add ``/docs`` and its assets to ``app`` (built with ``docs_url=None``)."""
    page = _PAGE.format(
        title=escape(f"{app.title} — API"),
        assets=ASSETS,
        openapi=escape(app.openapi_url or "/openapi.json"),
    )

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_POLICY})

    @app.get(ASSETS + "/{name}", include_in_schema=False)
    def swagger_asset(name: str) -> FileResponse:
        if name not in SWAGGER_FILES:
            raise Problem(404, "not-found", "Not found", f"no documentation asset {name!r}")
        return FileResponse(
            _SWAGGER / name,
            media_type=SWAGGER_FILES[name],
            headers={"Cache-Control": "public, max-age=86400"},
        )
