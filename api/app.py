"""The FastAPI application: JSON under ``/api/v1``, permanent public URLs at the root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from prometheus_client import make_asgi_app
from temporalio.client import Client

from api import health
from api.context import AppContext
from api.openapi import install_openapi
from api.problems import install_problem_handlers
from api.routes import (
    auth,
    certificates,
    evidence,
    files,
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
from mutabaqa import __version__
from mutabaqa.anchoring import install_audit_keys
from mutabaqa.bootstrap import start_first_admin
from mutabaqa.settings import Settings

API_PREFIX = "/api/v1"


def create_app(settings: Settings, *, temporal: Client | None = None) -> FastAPI:
    install_audit_keys(settings)

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

    app = FastAPI(
        title="Mutabaqa",
        version=__version__,
        summary="Conformity certification: requests, laboratory testing, signed certificates.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(keys.router)
    app.include_router(public.root_router)
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
    app.mount("/metrics", make_asgi_app())
    install_openapi(app, API_PREFIX)
    return app
