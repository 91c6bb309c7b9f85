"""When may someone try a password? The login throttling rules, pure (no clock, no storage).

Two counters judge every attempt, before the password is hashed:

- **per account** (the e-mail address typed, whether or not such an account exists, so the
  answer does not reveal which addresses are registered): the first ``free_failures``
  failures cost nothing; after that each failure makes the next attempt wait
  ``2 ** (failures - free_failures)`` seconds, at most ``max_delay_seconds``. The delay is
  always bounded — an attacker can slow an officer down but never lock them out — and the
  streak is forgotten after ``quiet_seconds`` without a failure, or at once when the right
  password is given.
- **per client address**: at most ``address_failures_per_minute`` failures in a minute
  (fixed windows of 60 s); every further attempt in that minute is refused.

An attempt is *charged* as a failure before its password is checked, so that parallel
attempts cannot all slip past a counter that has not been written yet; a right password
(or an attempt that never got to hash) gives the charge back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

ADDRESS_WINDOW = timedelta(seconds=60)
#: The shortest password accepted: new users, password changes and the first admin.
PASSWORD_MIN_LENGTH = 12


class Scope(StrEnum):
    ACCOUNT = "account"
    ADDRESS = "address"


@dataclass(frozen=True)
class LoginPolicy:
    free_failures: int = 5
    quiet_seconds: float = 900.0
    max_delay_seconds: float = 300.0
    address_failures_per_minute: int = 20


@dataclass(frozen=True)
class Counter:
    """One counter's state: failures since ``window_started`` (the last at
    ``last_failure``) and, for an account, the time before which no attempt is judged."""

    window_started: datetime
    last_failure: datetime
    failures: int = 0
    blocked_until: datetime | None = None


def account_delay(failures: int, policy: LoginPolicy) -> float:
    """Seconds the next attempt must wait after ``failures`` failures in a row."""
    if failures < policy.free_failures:
        return 0.0
    return float(min(2 ** (failures - policy.free_failures), policy.max_delay_seconds))


def _current(counter: Counter | None, scope: Scope, now: datetime, policy: LoginPolicy) -> Counter:
    """The counter as it stands at ``now``: a fresh one when its window is over."""
    fresh = Counter(window_started=now, last_failure=now)
    if counter is None:
        return fresh
    if scope is Scope.ACCOUNT:
        quiet = now - counter.last_failure > timedelta(seconds=policy.quiet_seconds)
        blocked = counter.blocked_until is not None and now < counter.blocked_until
        return fresh if quiet and not blocked else counter
    return fresh if now - counter.window_started >= ADDRESS_WINDOW else counter


def wait_seconds(counter: Counter | None, scope: Scope, now: datetime, policy: LoginPolicy) -> int:
    """Whole seconds the caller must wait before an attempt is judged; 0: judge it now."""
    current = _current(counter, scope, now, policy)
    if scope is Scope.ACCOUNT:
        until = current.blocked_until
    elif current.failures >= policy.address_failures_per_minute:
        until = current.window_started + ADDRESS_WINDOW
    else:
        until = None
    if until is None or until <= now:
        return 0
    return max(1, math.ceil((until - now).total_seconds()))


def charge(counter: Counter | None, scope: Scope, now: datetime, policy: LoginPolicy) -> Counter:
    """The counter after one more failure at ``now``."""
    current = _current(counter, scope, now, policy)
    failures = current.failures + 1
    blocked_until = None
    if scope is Scope.ACCOUNT and (delay := account_delay(failures, policy)) > 0:
        blocked_until = now + timedelta(seconds=delay)
    return replace(current, failures=failures, last_failure=now, blocked_until=blocked_until)


def give_back(counter: Counter, policy: LoginPolicy) -> Counter:
    """The counter with one charged failure returned (the attempt was never judged)."""
    failures = max(0, counter.failures - 1)
    blocked_until = counter.blocked_until
    if account_delay(failures, policy) == 0:
        blocked_until = None
    return replace(counter, failures=failures, blocked_until=blocked_until)
