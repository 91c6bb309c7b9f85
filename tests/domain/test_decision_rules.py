"""Verdicts on laboratory results (SPEC section 3): the worked cases, aggregation, decimals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from domain.decision_rules import (
    InvalidValues,
    Limits,
    UncertaintyRequired,
    aggregate,
    judge,
    parse_decimal,
)
from domain.results import Verdict
from models.reference import Aggregation, DecisionRule
from models.reference import TestItemCreate as ItemCreate

D = Decimal
SIMPLE, GUARDED = DecisionRule.SIMPLE, DecisionRule.GUARDED
PASS, FAIL, INCONCLUSIVE = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE

UP_TO_6 = Limits(upper=D("6"))
BELOW_6 = Limits(upper=D("6"), upper_inclusive=False)


# --- SPEC section 3, the ten worked cases --------------------------------------------------

WORKED_CASES = [
    # rule, value, U, limits, expected verdict (or the refusal)
    (SIMPLE, "6.0", None, UP_TO_6, PASS),
    (SIMPLE, "6.0", None, BELOW_6, FAIL),
    (SIMPLE, "5.99", "0.5", UP_TO_6, PASS),  # U ignored
    (GUARDED, "5.0", "0.5", UP_TO_6, PASS),
    (GUARDED, "5.5", "0.5", UP_TO_6, PASS),  # 5.5 + 0.5 = 6.0 meets an inclusive limit
    (GUARDED, "5.5", "0.5", BELOW_6, INCONCLUSIVE),
    (GUARDED, "5.8", "0.5", UP_TO_6, INCONCLUSIVE),
    (GUARDED, "6.5", "0.5", UP_TO_6, INCONCLUSIVE),  # 6.0 still inside
    (GUARDED, "6.6", "0.5", UP_TO_6, FAIL),
    (GUARDED, "5.0", None, UP_TO_6, UncertaintyRequired),  # refused (422)
]


@pytest.mark.parametrize(("rule", "value", "u", "limits", "expected"), WORKED_CASES)
def test_spec_worked_cases(
    rule: DecisionRule,
    value: str,
    u: str | None,
    limits: Limits,
    expected: Verdict | type[Exception],
) -> None:
    uncertainty = None if u is None else D(u)
    if isinstance(expected, Verdict):
        assert judge(D(value), limits, rule, uncertainty) is expected
        # The same case through aggregate(single) gives the same verdict.
        single = aggregate([D(value)], Aggregation.SINGLE, None, limits, rule, uncertainty)
        assert single.verdict is expected
        assert single.value == D(value)
    else:
        with pytest.raises(expected):
            judge(D(value), limits, rule, uncertainty)
        with pytest.raises(expected):
            aggregate([D(value)], Aggregation.SINGLE, None, limits, rule, uncertainty)


def test_uncertainty_required_is_a_value_error() -> None:
    assert issubclass(UncertaintyRequired, ValueError)
    assert issubclass(InvalidValues, ValueError)


def test_guarded_exclusive_limit_touching_from_outside_fails() -> None:
    # value − U = 6: outside "< 6", still inside "≤ 6".
    assert judge(D("6.5"), BELOW_6, GUARDED, D("0.5")) is FAIL
    assert judge(D("6.5"), UP_TO_6, GUARDED, D("0.5")) is INCONCLUSIVE


def test_guarded_zero_uncertainty_behaves_like_simple() -> None:
    assert judge(D("6"), UP_TO_6, GUARDED, D("0")) is PASS
    assert judge(D("6.01"), UP_TO_6, GUARDED, D("0")) is FAIL


def test_negative_uncertainty_is_refused() -> None:
    with pytest.raises(InvalidValues, match="negative"):
        judge(D("5"), UP_TO_6, GUARDED, D("-0.1"))


def test_lower_limit_bfe_at_least_98() -> None:
    bfe = Limits(lower=D("98"))
    assert judge(D("98"), bfe, SIMPLE, None) is PASS
    assert judge(D("97.99"), bfe, SIMPLE, None) is FAIL
    assert judge(D("98.4"), bfe, GUARDED, D("0.5")) is INCONCLUSIVE
    assert judge(D("97.4"), bfe, GUARDED, D("0.5")) is FAIL
    assert judge(D("98.5"), bfe, GUARDED, D("0.5")) is PASS


def test_exclusive_upper_breathing_resistance_below_60() -> None:
    dp = Limits(upper=D("60"), upper_inclusive=False)
    assert judge(D("60"), dp, SIMPLE, None) is FAIL
    assert judge(D("59.9"), dp, SIMPLE, None) is PASS


def test_exclusive_lower_limit() -> None:
    above_2 = Limits(lower=D("2"), lower_inclusive=False)
    assert judge(D("2"), above_2, SIMPLE, None) is FAIL
    assert judge(D("2.001"), above_2, SIMPLE, None) is PASS
    assert judge(D("1.5"), above_2, GUARDED, D("0.5")) is FAIL  # 1.5 + 0.5 = 2 is outside
    assert judge(D("2.5"), above_2, GUARDED, D("0.5")) is INCONCLUSIVE


def test_two_sided_interval() -> None:
    between = Limits(lower=D("2"), upper=D("5"))
    assert judge(D("3"), between, GUARDED, D("0.5")) is PASS
    assert judge(D("1.8"), between, GUARDED, D("0.5")) is INCONCLUSIVE
    assert judge(D("4.8"), between, GUARDED, D("0.5")) is INCONCLUSIVE
    assert judge(D("1.4"), between, GUARDED, D("0.5")) is FAIL
    assert judge(D("5.6"), between, GUARDED, D("0.5")) is FAIL
    # U wider than the whole interval: never a pass, never a fail.
    assert judge(D("3.5"), between, GUARDED, D("10")) is INCONCLUSIVE
    assert judge(D("5"), between, SIMPLE, None) is PASS
    assert judge(D("5.0001"), between, SIMPLE, None) is FAIL


def test_limits_of_a_scheme_test_item() -> None:
    item = ItemCreate.model_validate(
        {
            "code": "DP-INH",
            "title": "Breathing resistance",
            "titles": {"fr": "Résistance respiratoire", "ar": "مقاومة التنفس"},
            "method": "EN 149 8.9",
            "unit": "Pa",
            "upper_limit": "60",
            "upper_inclusive": False,
        }
    )
    limits = Limits.of(item)
    assert limits == Limits(lower=None, upper=D("60"), upper_inclusive=False)
    assert judge(D("60"), limits, SIMPLE, None) is FAIL


# --- aggregation -------------------------------------------------------------------------------

TIL_IND = Limits(upper=D("11"))  # FFP2: ≥ 46 of 50 exercise results ≤ 11 %
TIL_MEAN = Limits(upper=D("8"))  # FFP2: ≥ 8 of 10 wearer means ≤ 8 %


def test_til_individual_46_of_50_within_passes() -> None:
    values = [D("5.0")] * 45 + [D("11.0")] + [D("12.0")] * 4
    result = aggregate(values, Aggregation.COUNT_WITHIN, 46, TIL_IND, SIMPLE, None)
    assert (result.verdict, result.passing, result.failing) == (PASS, 46, 4)
    assert result.value is None
    assert len(result.specimen_verdicts) == 50
    assert result.specimen_verdicts[45] is PASS and result.specimen_verdicts[46] is FAIL


def test_til_individual_45_of_50_within_fails() -> None:
    values = [D("5.0")] * 45 + [D("11.1")] * 5
    result = aggregate(values, Aggregation.COUNT_WITHIN, 46, TIL_IND, SIMPLE, None)
    assert (result.verdict, result.passing, result.failing) == (FAIL, 45, 5)


def test_til_individual_guarded_undecided_specimen_is_inconclusive() -> None:
    # 45 clear passes, 4 clear failures, one specimen straddling 11 with U = 0.5.
    values = [D("5.0")] * 45 + [D("10.8")] + [D("13")] * 4
    result = aggregate(values, Aggregation.COUNT_WITHIN, 46, TIL_IND, GUARDED, D("0.5"))
    assert (result.verdict, result.passing, result.failing) == (INCONCLUSIVE, 45, 4)
    # The same undecided specimen with five clear failures can no longer reach 46: fail.
    values = [D("5.0")] * 44 + [D("10.8")] + [D("13")] * 5
    result = aggregate(values, Aggregation.COUNT_WITHIN, 46, TIL_IND, GUARDED, D("0.5"))
    assert result.verdict is FAIL
    # And with 46 clear passes it passes whatever the rest.
    values = [D("5.0")] * 46 + [D("10.8")] * 4
    result = aggregate(values, Aggregation.COUNT_WITHIN, 46, TIL_IND, GUARDED, D("0.5"))
    assert result.verdict is PASS


def test_til_mean_8_of_10() -> None:
    passes = [D("7.9")] * 8 + [D("8.1")] * 2
    fails = [D("7.9")] * 7 + [D("8.1")] * 3
    assert aggregate(passes, Aggregation.COUNT_WITHIN, 8, TIL_MEAN, SIMPLE, None).verdict is PASS
    assert aggregate(fails, Aggregation.COUNT_WITHIN, 8, TIL_MEAN, SIMPLE, None).verdict is FAIL


def test_all_takes_the_worst_specimen() -> None:
    limits, u = UP_TO_6, D("0.5")
    clean = aggregate([D("4"), D("5"), D("5.5")], Aggregation.ALL, None, limits, GUARDED, u)
    assert clean.verdict is PASS and clean.value is None
    doubtful = aggregate([D("4"), D("5.8"), D("5")], Aggregation.ALL, None, limits, GUARDED, u)
    assert doubtful.verdict is INCONCLUSIVE
    assert doubtful.specimen_verdicts == (PASS, INCONCLUSIVE, PASS)
    failing = aggregate([D("4"), D("5.8"), D("7")], Aggregation.ALL, None, limits, GUARDED, u)
    assert failing.verdict is FAIL
    assert (failing.passing, failing.failing) == (1, 1)
    one_bad = aggregate([D("4"), D("6.1"), D("5")], Aggregation.ALL, None, limits, SIMPLE, None)
    assert one_bad.verdict is FAIL


def test_mean_is_exact_decimal() -> None:
    values = [D("0.1"), D("0.2")]  # in binary floating point the mean exceeds 0.15
    inclusive = aggregate(values, Aggregation.MEAN, None, Limits(upper=D("0.15")), SIMPLE, None)
    assert inclusive.value == D("0.15") and str(inclusive.value) == "0.15"
    assert inclusive.verdict is PASS
    exclusive = Limits(upper=D("0.15"), upper_inclusive=False)
    assert aggregate(values, Aggregation.MEAN, None, exclusive, SIMPLE, None).verdict is FAIL


def test_mean_keeps_the_resolution_of_the_values() -> None:
    result = aggregate([D("6.0"), D("6.0")], Aggregation.MEAN, None, UP_TO_6, SIMPLE, None)
    assert str(result.value) == "6.0"
    result = aggregate([D("5.1"), D("5.2")], Aggregation.MEAN, None, UP_TO_6, SIMPLE, None)
    assert str(result.value) == "5.15"


def test_mean_is_judged_on_the_exact_mean_not_its_rounded_form() -> None:
    values = [D("1"), D("1"), D("2")]  # mean 4/3, no finite decimal expansion
    shown = aggregate(values, Aggregation.MEAN, None, Limits(upper=D("2")), SIMPLE, None).value
    assert shown == D("1.333333333333333333333333333")
    # A limit equal to the rounded mean is still below the true mean 4/3.
    at_rounded = Limits(upper=shown)
    assert aggregate(values, Aggregation.MEAN, None, at_rounded, SIMPLE, None).verdict is FAIL


def test_mean_with_uncertainty_and_specimen_verdicts() -> None:
    values = [D("5.0"), D("6.0")]  # mean 5.5; 5.5 + 0.5 = 6 meets "≤ 6"
    result = aggregate(values, Aggregation.MEAN, None, UP_TO_6, GUARDED, D("0.5"))
    assert result.value == D("5.5") and result.verdict is PASS
    assert result.specimen_verdicts == (PASS, INCONCLUSIVE)
    result = aggregate(values, Aggregation.MEAN, None, BELOW_6, GUARDED, D("0.5"))
    assert result.verdict is INCONCLUSIVE


@pytest.mark.parametrize(
    ("values", "aggregation", "min_count", "message"),
    [
        ([], Aggregation.SINGLE, None, "at least one"),
        ([], Aggregation.MEAN, None, "at least one"),
        ([D("1"), D("2")], Aggregation.SINGLE, None, "one value"),
        ([D("1"), D("2")], Aggregation.COUNT_WITHIN, 3, "at least 3"),
        ([D("1"), D("2")], Aggregation.COUNT_WITHIN, None, "min_count"),
        ([D("1"), D("NaN")], Aggregation.ALL, None, "finite"),
    ],
)
def test_values_that_cannot_be_aggregated_are_refused(
    values: list[Decimal], aggregation: Aggregation, min_count: int | None, message: str
) -> None:
    with pytest.raises(InvalidValues, match=message):
        aggregate(values, aggregation, min_count, UP_TO_6, SIMPLE, None)


def test_aggregate_under_guarded_needs_uncertainty() -> None:
    with pytest.raises(UncertaintyRequired):
        aggregate([D("1"), D("2")], Aggregation.ALL, None, UP_TO_6, GUARDED, None)


# --- decimal input ---------------------------------------------------------------------------


def test_parse_decimal_float_has_no_binary_error() -> None:
    assert parse_decimal(5.99) == D("5.99")
    assert str(parse_decimal(5.99)) == "5.99"
    assert parse_decimal(0.1) + parse_decimal(0.2) == D("0.3")


def test_parse_decimal_keeps_strings_as_written() -> None:
    assert str(parse_decimal("6.0")) == "6.0"
    assert str(parse_decimal("0.70")) == "0.70"
    assert str(parse_decimal("-1.5e3")) == "-1.5E+3"
    assert parse_decimal(6) == D("6")
    assert parse_decimal(D("6.00")) == D("6.00")


@pytest.mark.parametrize(
    "raw",
    [
        "NaN",
        "nan",
        "Infinity",
        "-inf",
        float("nan"),
        float("inf"),
        D("NaN"),
        D("-Infinity"),
        True,
        False,
        "",
        " 6",
        "6 ",
        "1_000",
        "٦",  # an Arabic-Indic digit: Decimal() would accept it, JSON does not
        "6.",
        "0x10",
        "1" * 31,
        10**30,
        "1e999999999",
        "1e-41",
        None,
        [6],
    ],
)
def test_parse_decimal_refuses(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_decimal(raw)  # type: ignore[arg-type]


def test_parse_decimal_accepts_thirty_digits() -> None:
    assert parse_decimal("1" * 30) == D("1" * 30)


# --- properties ------------------------------------------------------------------------------

amounts = st.decimals(
    min_value=D("-100"), max_value=D("100"), places=2, allow_nan=False, allow_infinity=False
)
uncertainties = st.decimals(min_value=D("0"), max_value=D("20"), places=2)


@st.composite
def limits_st(draw: st.DrawFn) -> Limits:
    lower = draw(st.none() | amounts)
    upper = draw(st.none() | amounts)
    if lower is not None and upper is not None and lower > upper:
        lower, upper = upper, lower
    return Limits(
        lower=lower,
        lower_inclusive=draw(st.booleans()),
        upper=upper,
        upper_inclusive=draw(st.booleans()),
    )


@given(value=amounts, limits=limits_st(), u=st.none() | uncertainties)
def test_simple_rule_is_never_inconclusive(
    value: Decimal, limits: Limits, u: Decimal | None
) -> None:
    assert judge(value, limits, SIMPLE, u) in (PASS, FAIL)


@given(value=amounts, limits=limits_st(), u1=uncertainties, u2=uncertainties)
def test_guarded_verdict_is_monotonic_in_uncertainty(
    value: Decimal, limits: Limits, u1: Decimal, u2: Decimal
) -> None:
    small, large = sorted((u1, u2))
    at_large = judge(value, limits, GUARDED, large)
    at_small = judge(value, limits, GUARDED, small)
    if at_large is PASS:
        assert at_small is PASS
    if at_large is FAIL:
        assert at_small is FAIL
    # A larger U can only move a verdict towards inconclusive, never straight across.
    assert {at_small, at_large} != {PASS, FAIL}


@given(value=amounts, limits=limits_st())
def test_guarded_with_zero_uncertainty_agrees_with_simple(value: Decimal, limits: Limits) -> None:
    assert judge(value, limits, GUARDED, D("0")) is judge(value, limits, SIMPLE, None)


_ORDER = {PASS: 0, INCONCLUSIVE: 1, FAIL: 2}


def _deep_inside(limits: Limits, u: Decimal) -> Decimal:
    """A value as far inside the limits as possible, to serve as a passing specimen."""
    if limits.lower is not None and limits.upper is not None:
        return (limits.lower + limits.upper) / 2
    if limits.lower is not None:
        return limits.lower + u + 1
    if limits.upper is not None:
        return limits.upper - u - 1
    return D("0")


@given(
    values=st.lists(amounts, min_size=1, max_size=12),
    limits=limits_st(),
    u=uncertainties,
    data=st.data(),
)
def test_count_within_a_further_passing_specimen_never_worsens_the_verdict(
    values: list[Decimal], limits: Limits, u: Decimal, data: st.DataObject
) -> None:
    min_count = data.draw(st.integers(min_value=1, max_value=len(values)))
    before = aggregate(values, Aggregation.COUNT_WITHIN, min_count, limits, GUARDED, u)
    extra = _deep_inside(limits, u)
    assume(judge(extra, limits, GUARDED, u) is PASS)  # the pass zone may be empty
    after = aggregate([*values, extra], Aggregation.COUNT_WITHIN, min_count, limits, GUARDED, u)
    assert _ORDER[after.verdict] <= _ORDER[before.verdict]
    assert after.passing == before.passing + 1
