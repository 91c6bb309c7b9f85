"""``GET /health``: the database, Temporal and the object store, each checked for real.

Anyone (a load balancer, a probe) gets ``ok``/``down`` per dependency and nothing else. The
reasons a dependency is down (exception texts, which may name hosts, ports or accounts) are
shown only to an admin — a caller whose bearer token names an enabled account with the
``admin`` role — and are always in the API's log for the operators.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import jwt
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

from api.context import AppContext
from api.security import decode_access_token
from domain.permissions import Role
from models.accounts import User
from models.system import CheckStatus, HealthReport
from mutabaqa.checks import check_database, check_object_store

router = APIRouter(tags=["operations"])
log = logging.getLogger(__name__)


async def _bounded(
    check: Callable[[], Awaitable[tuple[CheckStatus, str | None]]], limit: float
) -> tuple[CheckStatus, str | None]:
    try:
        async with asyncio.timeout(limit):
            return await check()
    except TimeoutError:
        return "down", f"no answer within {limit:g} s"
    except Exception as exc:
        return "down", f"{type(exc).__name__}: {exc}"[:300]


async def collect_health(ctx: AppContext) -> HealthReport:
    timeout = ctx.settings.health_timeout_seconds

    async def database() -> tuple[CheckStatus, str | None]:
        return await asyncio.to_thread(check_database, ctx.engine)

    async def object_store() -> tuple[CheckStatus, str | None]:
        return await asyncio.to_thread(
            check_object_store, ctx.health_store, ctx.settings.s3_evidence_bucket
        )

    async def temporal() -> tuple[CheckStatus, str | None]:
        client = await ctx.temporal()
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=ctx.settings.temporal_namespace),
            timeout=timedelta(seconds=timeout),
        )
        return "ok", None

    names = ("database", "temporal", "object_store")
    results = await asyncio.gather(
        *(_bounded(check, timeout) for check in (database, temporal, object_store))
    )
    checks = {name: status for name, (status, _) in zip(names, results, strict=True)}
    errors = {name: error for name, (_, error) in zip(names, results, strict=True) if error}
    status = "ok" if all(s == "ok" for s in checks.values()) else "degraded"
    return HealthReport(status=status, checks=checks, errors=errors)


def _is_admin(session: Session, user_id: str) -> bool:
    user = session.get(User, user_id)
    return user is not None and not user.disabled and Role.ADMIN.value in user.roles


async def _caller_is_admin(request: Request, ctx: AppContext) -> bool:
    """Whether the request carries a valid bearer token of an enabled admin. Never an
    error: a missing, bad or expired token (or a database that cannot tell) gets the public
    answer."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    try:
        claims = decode_access_token(token.strip(), ctx.settings)
    except jwt.InvalidTokenError:
        return False
    try:
        async with asyncio.timeout(ctx.settings.health_timeout_seconds):
            return await ctx.read(_is_admin, claims["sub"])
    except Exception:  # the database is down or slow: /health still answers
        return False


@router.get(
    "/health",
    response_model=HealthReport,
    response_model_exclude_none=True,
    responses={503: {"model": HealthReport, "description": "a dependency is down"}},
)
async def health(request: Request) -> JSONResponse:
    ctx: AppContext = request.app.state.ctx
    report = await collect_health(ctx)
    if report.errors:
        log.warning("health: %s", "; ".join(f"{k}: {v}" for k, v in report.errors.items()))
    shown = report if await _caller_is_admin(request, ctx) else report.public()
    return JSONResponse(
        shown.model_dump(mode="json", exclude_none=True),
        status_code=200 if report.status == "ok" else 503,
        headers={"Cache-Control": "no-store"},
    )
