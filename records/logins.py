"""The login throttling counters in the database, shared by every API process.

Each function is one short write transaction of its own (the caller opens it, e.g.
``AppContext.write``); nothing here hashes or awaits. The rules are ``domain/logins.py``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, delete, select

from domain.logins import (
    Counter,
    LoginPolicy,
    Scope,
    account_delay,
    charge,
    give_back,
    wait_seconds,
)
from models.audit import SECURITY_CHAIN
from models.logins import SUBJECT_MAX_LENGTH, LoginThrottle
from records.audit import append_event

log = logging.getLogger("mutabaqa.logins")

#: Counters untouched for this long are deleted (far beyond any window or delay).
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Refusal:
    """An attempt refused before its password was checked."""

    scope: Scope
    retry_after: int
    #: True when this refusal opened the window's audit event.
    audited: bool


def subject_of(value: str) -> str:
    return value[:SUBJECT_MAX_LENGTH]


def _locked(session: Session, scope: Scope, subject: str, now: datetime) -> LoginThrottle:
    """The counter's row, created if missing and locked until the transaction ends."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    inserted = session.execute(
        insert(LoginThrottle)
        .values(scope=scope.value, subject=subject, window_started=now, last_failure=now)
        .on_conflict_do_nothing(index_elements=["scope", "subject"])
    )
    if getattr(inserted, "rowcount", 0) == 1:
        # A new counter: a good moment to drop the ones nobody has used for a day.
        session.execute(
            delete(LoginThrottle).where(col(LoginThrottle.last_failure) < now - FORGET_AFTER)
        )
    return session.exec(
        select(LoginThrottle)
        .where(LoginThrottle.scope == scope.value, LoginThrottle.subject == subject)
        .with_for_update()
    ).one()


def _counter(row: LoginThrottle) -> Counter | None:
    if row.failures == 0 and row.blocked_until is None:
        return None
    return Counter(row.window_started, row.last_failure, row.failures, row.blocked_until)


def _store(row: LoginThrottle, counter: Counter) -> None:
    if counter.window_started != row.window_started:
        row.audited_window = None
    row.window_started = counter.window_started
    row.last_failure = counter.last_failure
    row.failures = counter.failures
    row.blocked_until = counter.blocked_until


def admit(
    session: Session, email: str, address: str, now: datetime, policy: LoginPolicy
) -> Refusal | None:
    """Judge an attempt before its password is hashed: a ``Refusal`` (nothing charged), or
    None after charging it as a failure to the account and the address (the caller gives
    the charge back with :func:`succeeded` or :func:`not_judged`)."""
    rows = {
        Scope.ADDRESS: _locked(session, Scope.ADDRESS, subject_of(address), now),
        Scope.ACCOUNT: _locked(session, Scope.ACCOUNT, subject_of(email), now),
    }
    for scope, row in rows.items():
        wait = wait_seconds(_counter(row), scope, now, policy)
        if wait:
            audited = row.audited_window != row.window_started
            if audited:
                _audit(session, scope, row, email, address, wait)
                row.audited_window = row.window_started
                session.add(row)
            log.warning(
                "login refused: too many failures for the %s (account %r, address %s, "
                "%d failures, retry in %d s)",
                scope.value,
                email,
                address,
                row.failures,
                wait,
            )
            return Refusal(scope, wait, audited)
    for scope, row in rows.items():
        _store(row, charge(_counter(row), scope, now, policy))
        session.add(row)
    return None


def _audit(
    session: Session, scope: Scope, row: LoginThrottle, email: str, address: str, wait: int
) -> None:
    append_event(
        session,
        chain=SECURITY_CHAIN,
        actor=None,
        actor_role="system",
        action="login.throttled",
        object_type=scope.value,
        object_id=row.subject[:64],
        detail={
            "account": email,
            "address": address,
            "failures": row.failures,
            "window_started": row.window_started.isoformat(),
            "retry_after_seconds": wait,
        },
    )


def _give_back(session: Session, scope: Scope, subject: str, policy: LoginPolicy) -> None:
    row = session.get(LoginThrottle, (scope.value, subject_of(subject)), with_for_update=True)
    if row is not None and (counter := _counter(row)) is not None:
        _store(row, give_back(counter, policy))
        session.add(row)


def succeeded(session: Session, email: str, address: str, policy: LoginPolicy) -> None:
    """The right password: the account's streak is over; the address gets its charge back
    (a right password is not a failure, but it does not wipe the address's failures).
    Rows are locked in the order :func:`admit` locks them: address, then account."""
    _give_back(session, Scope.ADDRESS, address, policy)
    session.execute(
        delete(LoginThrottle).where(
            col(LoginThrottle.scope) == Scope.ACCOUNT.value,
            col(LoginThrottle.subject) == subject_of(email),
        )
    )


def failed(session: Session, email: str, now: datetime, policy: LoginPolicy) -> None:
    """A wrong password: the account's wait, if any, runs from now (the end of the check),
    not from the charge before the hash."""
    row = session.get(LoginThrottle, (Scope.ACCOUNT.value, subject_of(email)), with_for_update=True)
    if row is not None and (delay := account_delay(row.failures, policy)) > 0:
        row.last_failure = now
        row.blocked_until = now + timedelta(seconds=delay)
        session.add(row)


def not_judged(session: Session, email: str, address: str, policy: LoginPolicy) -> None:
    """The password was never checked (the server was too busy to hash): both charges back."""
    _give_back(session, Scope.ADDRESS, address, policy)
    _give_back(session, Scope.ACCOUNT, email, policy)
