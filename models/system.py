"""Payloads of the operational parts: health report and the stack canary workflow."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

CheckStatus = Literal["ok", "down"]


class HealthReport(BaseModel):
    """``GET /health``: each dependency checked for real; ``degraded`` answers 503.

    ``errors`` (why a dependency is down) is shown to admins only; others get ``None``
    (left out of the answer)."""

    status: Literal["ok", "degraded"]
    checks: dict[str, CheckStatus]
    errors: dict[str, str] | None = None

    def public(self) -> HealthReport:
        """What anyone may see: the status and ok/down per dependency, nothing else."""
        return HealthReport(status=self.status, checks=self.checks)


class CanaryInput(BaseModel):
    """Start a canary: wait ``delay_seconds`` on a durable timer, then check the stack."""

    delay_seconds: float = Field(ge=0, le=7 * 24 * 3600)
    note: str = ""


class StackCheckResult(BaseModel):
    database: CheckStatus
    object_store: CheckStatus
    errors: dict[str, str] = Field(default_factory=dict)


class CanaryResult(BaseModel):
    started_at: datetime
    fired_at: datetime
    note: str
    stack: StackCheckResult
