"""Judging laboratory results against a test item's limits (SPEC section 3, ILAC-G8).

Pure and deterministic: no I/O, no clock, no randomness, so workflows and activities can
both call it and always agree. Every comparison is exact: decimals are compared as
rationals (``fractions.Fraction``), so neither binary floating point nor a decimal
context's rounding can move a value across a limit.

Errors form a small tree under ``ValueError``::

    InvalidValues            the values, uncertainty or limits cannot be judged (HTTP 422)
    └── UncertaintyRequired  the guarded rule was asked to judge without U (HTTP 422)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from fractions import Fraction
from functools import reduce
from typing import Protocol

from domain.results import AggregateResult, Verdict
from domain.statuses import Aggregation, DecisionRule

#: At most this many significant digits in a value, an uncertainty or a limit.
MAX_DIGITS = 30
#: Decimal exponents are kept within ±MAX_EXPONENT (1E-40 … 9.99E+40): far beyond any
#: measurement, and it keeps exact arithmetic on the values small and fast.
MAX_EXPONENT = 40

#: Significant digits of a mean that has no finite decimal expansion (e.g. 1/3).
MEAN_DIGITS = 28
# Wide enough that sums of bounded values are always exact (see _mean).
_EXACT_PREC = 400

_DECIMAL_STRING = re.compile(r"[+-]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)

# Worst first: the verdict of ``all`` is the first of these among the specimens.
_SEVERITY = {Verdict.PASS: 0, Verdict.INCONCLUSIVE: 1, Verdict.FAIL: 2}


class InvalidValues(ValueError):
    """Values, an uncertainty or limits that cannot be judged; the message says why."""


class UncertaintyRequired(InvalidValues):
    """The ``guarded`` decision rule needs the expanded uncertainty U (k=2)."""

    def __init__(self) -> None:
        super().__init__("the guarded decision rule needs the expanded uncertainty U")


# --- decimal input -------------------------------------------------------------------------


def check_decimal(value: Decimal, what: str = "value") -> Decimal:
    """Return ``value`` unchanged if it is a finite decimal within the accepted bounds.

    Accepted: finite, at most ``MAX_DIGITS`` significant digits, exponent within
    ±``MAX_EXPONENT``. Raises ``InvalidValues`` naming ``what`` otherwise.
    """
    if not isinstance(value, Decimal):
        raise InvalidValues(f"{what} must be a decimal number")
    if not value.is_finite():
        raise InvalidValues(f"{what} must be a finite number, not {value}")
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if len(digits) > MAX_DIGITS:
        raise InvalidValues(f"{what} has more than {MAX_DIGITS} significant digits")
    if exponent < -MAX_EXPONENT or value.adjusted() > MAX_EXPONENT:
        raise InvalidValues(f"{what} needs a decimal exponent within ±{MAX_EXPONENT}")
    return value


def parse_decimal(x: str | int | float | Decimal, what: str = "value") -> Decimal:
    """Turn a JSON number or a decimal string into an exact ``Decimal``.

    - ``str``: plain ASCII decimal notation (``"6"``, ``"-0.70"``, ``"1.5e3"``), kept
      exactly as written: ``"6.0"`` stays ``Decimal("6.0")``. No spaces, underscores,
      non-ASCII digits, ``NaN`` or ``Infinity``.
    - ``float``: through its shortest repr, so ``5.99`` becomes ``Decimal("5.99")``, never
      the binary expansion ``Decimal(5.99)``.
    - ``int`` and ``Decimal``: as they are. Booleans are refused.

    The result must pass ``check_decimal``. Raises ``InvalidValues`` (a ``ValueError``).
    """
    if isinstance(x, bool):
        raise InvalidValues(f"{what} must be a number, not a boolean")
    if isinstance(x, Decimal):
        result = x
    elif isinstance(x, int):
        result = Decimal(x)
    elif isinstance(x, float):
        text = repr(x)
        if not _DECIMAL_STRING.fullmatch(text):
            raise InvalidValues(f"{what} must be a finite number, not {text}")
        result = Decimal(text)
    elif isinstance(x, str):
        if not _DECIMAL_STRING.fullmatch(x):
            raise InvalidValues(f"{what} must be a decimal number such as 5.99, not {x!r}")
        result = Decimal(x)
    else:
        raise InvalidValues(f"{what} must be a number or a decimal string")
    return check_decimal(result, what)


# --- limits and a single judgement -----------------------------------------------------------


class HasLimits(Protocol):
    """Anything carrying a test item's limits (``TestItem``, ``TestItemPublic``, …)."""

    @property
    def lower_limit(self) -> Decimal | None: ...
    @property
    def lower_inclusive(self) -> bool: ...
    @property
    def upper_limit(self) -> Decimal | None: ...
    @property
    def upper_inclusive(self) -> bool: ...


@dataclass(frozen=True)
class Limits:
    """A test item's acceptance interval; a missing limit is open on that side."""

    lower: Decimal | None = None
    lower_inclusive: bool = True
    upper: Decimal | None = None
    upper_inclusive: bool = True

    def __post_init__(self) -> None:
        if self.lower is not None:
            check_decimal(self.lower, "lower limit")
        if self.upper is not None:
            check_decimal(self.upper, "upper limit")

    @classmethod
    def of(cls, item: HasLimits) -> Limits:
        return cls(
            lower=item.lower_limit,
            lower_inclusive=item.lower_inclusive,
            upper=item.upper_limit,
            upper_inclusive=item.upper_inclusive,
        )

    def admits(self, x: Fraction) -> bool:
        """Whether the point ``x`` lies within the limits."""
        if self.lower is not None:
            lower = Fraction(self.lower)
            if x < lower or (x == lower and not self.lower_inclusive):
                return False
        if self.upper is not None:
            upper = Fraction(self.upper)
            if x > upper or (x == upper and not self.upper_inclusive):
                return False
        return True

    def meets(self, low: Fraction, high: Fraction) -> bool:
        """Whether some point of the closed interval [low, high] lies within the limits."""
        start, start_closed = low, True
        if self.lower is not None:
            lower = Fraction(self.lower)
            if lower > start or (lower == start and not self.lower_inclusive):
                start, start_closed = lower, self.lower_inclusive
        end, end_closed = high, True
        if self.upper is not None:
            upper = Fraction(self.upper)
            if upper < end or (upper == end and not self.upper_inclusive):
                end, end_closed = upper, self.upper_inclusive
        return start < end or (start == end and start_closed and end_closed)


def _required_uncertainty(rule: DecisionRule, uncertainty: Decimal | None) -> Fraction:
    """U as a rational under ``guarded``; zero under ``simple`` (where U is ignored)."""
    if DecisionRule(rule) is DecisionRule.SIMPLE:
        return Fraction(0)
    if uncertainty is None:
        raise UncertaintyRequired()
    check_decimal(uncertainty, "uncertainty")
    if uncertainty < 0:
        raise InvalidValues("uncertainty must not be negative")
    return Fraction(uncertainty)


def _judge(value: Fraction, limits: Limits, u: Fraction) -> Verdict:
    """Judge the interval value ± u: inside → pass, wholly outside → fail, else inconclusive.

    Under ``simple`` u is zero, so the interval is a point and never straddles a limit.
    """
    low, high = value - u, value + u
    if limits.admits(low) and limits.admits(high):  # the acceptance zone is an interval
        return Verdict.PASS
    if not limits.meets(low, high):
        return Verdict.FAIL
    return Verdict.INCONCLUSIVE


def judge(
    value: Decimal, limits: Limits, rule: DecisionRule, uncertainty: Decimal | None
) -> Verdict:
    """Judge one value against ``limits`` under ``rule`` (SPEC section 3).

    - ``simple``: pass when the value lies within the limits, else fail; U is ignored.
    - ``guarded``: pass when all of value ± U lies within the limits, fail when all of it
      lies outside (an exclusive limit is itself outside: with ``< 6``, value − U = 6 fails),
      otherwise inconclusive. Without U it raises ``UncertaintyRequired``.
    """
    check_decimal(value)
    return _judge(Fraction(value), limits, _required_uncertainty(rule, uncertainty))


# --- several specimens ----------------------------------------------------------------------


def worst(verdicts: Sequence[Verdict]) -> Verdict:
    """The worst of some verdicts: fail, then inconclusive, then pass."""
    if not verdicts:
        raise InvalidValues("no verdicts to combine")
    return max(verdicts, key=_SEVERITY.__getitem__)


def _mean(values: Sequence[Decimal]) -> tuple[Decimal, Fraction]:
    """The arithmetic mean: as a decimal to report, and exactly, to judge.

    The sum is exact (bounded values fit in ``_EXACT_PREC`` digits). The reported mean is
    exact whenever it has a finite decimal expansion, at the resolution of the values
    (5.1 and 5.2 → 5.15; 6.0 and 6.0 → 6.0); otherwise (e.g. a third) it is rounded
    half-even to ``MEAN_DIGITS`` significant digits. The verdict never uses the rounded
    form.
    """
    exact = Context(
        prec=_EXACT_PREC,
        rounding=ROUND_HALF_EVEN,
        traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
    )
    total = reduce(exact.add, values)
    count = Decimal(len(values))
    try:
        shown = exact.divide(total, count)
    except Inexact:
        shown = Context(prec=MEAN_DIGITS, rounding=ROUND_HALF_EVEN).divide(total, count)
    return shown, Fraction(total) / len(values)


def aggregate(
    values: Sequence[Decimal],
    aggregation: Aggregation,
    min_count: int | None,
    limits: Limits,
    rule: DecisionRule,
    uncertainty: Decimal | None,
) -> AggregateResult:
    """Judge a test item's specimen values as its aggregation says (SPEC section 3).

    Every specimen is judged (``specimen_verdicts``, ``passing``, ``failing``); then:

    - ``single``: exactly one value; its verdict.
    - ``all``: the worst specimen verdict (fail, then inconclusive, then pass).
    - ``mean``: the verdict on the exact arithmetic mean (± U under ``guarded``).
    - ``count_within``: pass when at least ``min_count`` specimens pass; fail when fewer
      than ``min_count`` are not failing; otherwise inconclusive. Needs
      ``1 <= min_count <= len(values)``. ``min_count`` is ignored by the other aggregations.

    The same U applies to each specimen and to the mean. ``value`` is the aggregate the
    verdict rests on: the value (``single``), the mean (``mean``), ``None`` otherwise (there
    is no one "worst" value when two limits are set). Raises ``InvalidValues`` for no
    values, a wrong count or an unusable ``min_count``, ``UncertaintyRequired`` for a
    missing U under ``guarded``.
    """
    aggregation = Aggregation(aggregation)
    if not values:
        raise InvalidValues("give at least one value")
    for index, value in enumerate(values):
        check_decimal(value, f"value {index + 1}" if len(values) > 1 else "value")
    if aggregation is Aggregation.SINGLE and len(values) != 1:
        raise InvalidValues(f"this test item takes one value, not {len(values)}")
    if aggregation is Aggregation.COUNT_WITHIN:
        if min_count is None or min_count < 1:
            raise InvalidValues("count_within needs a min_count of at least 1")
        if min_count > len(values):
            raise InvalidValues(
                f"this test item needs at least {min_count} specimen values, not {len(values)}"
            )
    u = _required_uncertainty(rule, uncertainty)

    specimens = tuple(_judge(Fraction(v), limits, u) for v in values)
    passing = specimens.count(Verdict.PASS)
    failing = specimens.count(Verdict.FAIL)
    shown: Decimal | None = None

    if aggregation is Aggregation.SINGLE:
        shown, verdict = values[0], specimens[0]
    elif aggregation is Aggregation.ALL:
        verdict = worst(specimens)
    elif aggregation is Aggregation.MEAN:
        shown, exact_mean = _mean(values)
        verdict = _judge(exact_mean, limits, u)
    else:  # COUNT_WITHIN; min_count was checked above
        assert min_count is not None
        if passing >= min_count:
            verdict = Verdict.PASS
        elif len(values) - failing < min_count:
            verdict = Verdict.FAIL
        else:
            verdict = Verdict.INCONCLUSIVE

    return AggregateResult(
        value=shown,
        verdict=verdict,
        specimen_verdicts=specimens,
        passing=passing,
        failing=failing,
    )
