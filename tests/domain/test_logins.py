"""The login throttling rules (pure): the account's delay doubles and stays bounded; the
address's minute; a charge given back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.logins import LoginPolicy, Scope, account_delay, charge, give_back, wait_seconds

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
POLICY = LoginPolicy()


def test_the_account_delay_doubles_after_five_failures_and_is_capped() -> None:
    delays = [account_delay(n, POLICY) for n in range(1, 16)]
    assert delays == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert account_delay(10_000, POLICY) == 300  # never a lockout


def test_an_account_waits_then_may_try_again() -> None:
    counter = None
    for _ in range(6):
        counter = charge(counter, Scope.ACCOUNT, NOW, POLICY)
    assert wait_seconds(counter, Scope.ACCOUNT, NOW, POLICY) == 2
    assert wait_seconds(counter, Scope.ACCOUNT, NOW + timedelta(seconds=2), POLICY) == 0
    # Forgotten after a quiet quarter of an hour.
    later = NOW + timedelta(seconds=POLICY.quiet_seconds + 1)
    assert charge(counter, Scope.ACCOUNT, later, POLICY).failures == 1


def test_an_address_is_refused_for_the_rest_of_its_minute_after_20_failures() -> None:
    counter = None
    for second in range(20):
        at = NOW + timedelta(seconds=second)
        assert wait_seconds(counter, Scope.ADDRESS, at, POLICY) == 0
        counter = charge(counter, Scope.ADDRESS, at, POLICY)
    assert wait_seconds(counter, Scope.ADDRESS, NOW + timedelta(seconds=20), POLICY) == 40
    assert wait_seconds(counter, Scope.ADDRESS, NOW + timedelta(seconds=60), POLICY) == 0
    assert counter is not None
    assert wait_seconds(give_back(counter, POLICY), Scope.ADDRESS, NOW, POLICY) == 0
