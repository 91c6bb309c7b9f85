"""The FastAPI application: JSON under ``/api/v1``, permanent public URLs at the root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CollectorRegistry
from starlette.routing import compile_path
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.client import Client

from api import health
from api.body_limits import install_body_limits
from api.context import AppContext
from api.docs import install_docs
from api.headers import SecurityHeaders
from api.metrics import HttpMetrics, make_registry, metrics_endpoint
from api.nul_guard import refuse_nul
from api.openapi import install_openapi
from api.portal import admin as portal_admin
from api.portal import directory as portal_directory
from api.portal import lab as portal_lab
from api.portal import maker as portal_maker
from api.portal import officer as portal_officer
from api.portal import pages as portal_pages
from api.portal import webhook as portal_webhook
from api.problems import install_problem_handlers
from api.request_ids import RequestIds
from api.routes import (
    auth,
    certificates,
    credentials,
    evidence,
    files,
    gs1,
    keys,
    lab,
    organizations,
    products,
    public,
    reference,
    requests,
    users,
    webhooks,
)
from api.uploads import FORM_OVERHEAD
from mutabaqa import __version__
from mutabaqa.anchoring import install_audit_keys
from mutabaqa.bootstrap import start_first_admin
from mutabaqa.settings import Settings
from mutabaqa.tracing import setup_tracing

API_PREFIX = "/api/v1"
#: Style sheets and scripts of the portal and of /docs, served from the package.
STATIC_DIR = Path(__file__).with_name("static")


class _App(FastAPI):
    """FastAPI wrapped, outside its whole middleware stack — its error middleware included,
    so that a 500 carries them too — in the security headers (``api/headers.py``), the
    HTTP metrics (``api/metrics.py``) and, outermost, the request id (``api/request_ids.py``:
    every log line of the call has it). They wrap the application rather than its
    middleware stack, which the OpenTelemetry instrumentation rebuilds when tracing is on."""

    https = False
    #: The registry ``/metrics`` serves; the HTTP metrics are recorded into it.
    metrics_registry: CollectorRegistry | None = None
    _outer: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._outer is None:
            stack: ASGIApp = SecurityHeaders(partial(FastAPI.__call__, self), https=self.https)
            if self.metrics_registry is not None:
                stack = HttpMetrics(stack, self.metrics_registry)
            self._outer = RequestIds(stack)
        await self._outer(scope, receive, send)


def create_app(settings: Settings, *, temporal: Client | None = None) -> FastAPI:
    install_audit_keys(settings)
    setup_tracing(settings, "api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = AppContext.create(settings, temporal=temporal)
        app.state.ctx = ctx
        bootstrap = await start_first_admin(ctx.engine, settings)
        try:
            yield
        finally:
            if bootstrap is not None:
                bootstrap.cancel()
            ctx.close()

    app = _App(
        title="Mutabaqa",
        version=__version__,
        summary="Conformity certification: requests, laboratory testing, signed certificates.",
        lifespan=lifespan,
        # /docs is served by api/docs.py from local assets; no ReDoc (it needs a CDN).
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        # No U+0000 in a body, path or query: PostgreSQL text cannot hold it (api/nul_guard.py).
        dependencies=[Depends(refuse_nul)],
    )
    app.https = settings.public_https
    app.metrics_registry = make_registry(
        lambda: app.state.ctx.engine if hasattr(app.state, "ctx") else None,
        settings.metrics_db_cache_seconds,
    )
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(keys.router)
    app.include_router(credentials.router)
    app.include_router(public.root_router)
    app.include_router(gs1.router)
    app.include_router(portal_maker.router)  # before pages: /requests/new is not a request id
    app.include_router(portal_pages.router)
    app.include_router(portal_directory.router)
    app.include_router(portal_admin.router)
    app.include_router(portal_webhook.router)
    app.include_router(portal_lab.router)
    app.include_router(portal_officer.router)
    v1 = APIRouter(prefix=API_PREFIX)
    for module in (
        auth,
        organizations,
        users,
        reference,
        products,
        requests,
        files,
        lab,
        evidence,
        certificates,
        webhooks,
    ):
        v1.include_router(module.router)
    v1.include_router(public.api_router)
    app.include_router(v1)
    app.add_route("/metrics", metrics_endpoint(app.metrics_registry), include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_docs(app)
    install_openapi(app, API_PREFIX)
    install_body_limits(
        app,
        default_limit=settings.max_json_bytes,
        upload_limit=settings.max_upload_bytes + FORM_OVERHEAD,
        upload_paths=[
            compile_path(API_PREFIX + route.path)[0]
            for route in files.router.routes
            if isinstance(route, APIRoute) and route.endpoint in files.UPLOAD_ENDPOINTS
        ]
        + [compile_path(path)[0] for path in portal_lab.UPLOAD_PATHS]
        + [compile_path(portal_maker.UPLOAD_PATH)[0]],
        form_paths=[
            API_PREFIX + route.path
            for route in auth.router.routes
            if isinstance(route, APIRoute) and route.endpoint is auth.issue_token
        ],
    )
    if settings.otel_enabled:
        # The server span of each call; Temporal's spans (mutabaqa/tracing.py) are its children.
        FastAPIInstrumentor.instrument_app(app, excluded_urls="/metrics,/health,/static/.*")
    return app
