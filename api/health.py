"""``GET /health``: the database, Temporal and the object store, each checked for real."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

from api.context import AppContext
from models.system import CheckStatus, HealthReport
from mutabaqa.checks import check_database, check_object_store

router = APIRouter(tags=["operations"])


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


@router.get(
    "/health",
    response_model=HealthReport,
    responses={503: {"model": HealthReport, "description": "a dependency is down"}},
)
async def health(request: Request) -> JSONResponse:
    report = await collect_health(request.app.state.ctx)
    return JSONResponse(
        report.model_dump(mode="json"),
        status_code=200 if report.status == "ok" else 503,
        headers={"Cache-Control": "no-store"},
    )
