"""Laboratory results: verdicts and aggregates (SPEC section 3)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

# --- verdicts and aggregates (pure values; judged by domain.decision_rules) ------------


class Verdict(StrEnum):
    """The outcome of judging a value against a test item's limits (ILAC-G8)."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class AggregateResult(BaseModel):
    """How one test item's specimen values came out, as ``decision_rules.aggregate`` says.

    ``value`` is the aggregate the verdict was taken on: the value itself for ``single``,
    the arithmetic mean for ``mean`` (exact when the mean has a finite decimal expansion,
    otherwise rounded half-even to 28 significant digits; the verdict is always taken on
    the exact mean), and ``None`` for ``all`` and ``count_within``, whose verdicts rest on
    the specimens themselves. ``specimen_verdicts`` holds each specimen's own verdict, in
    the order the values were given, for every aggregation.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: Decimal | None
    verdict: Verdict
    specimen_verdicts: tuple[Verdict, ...]
    passing: int
    failing: int
