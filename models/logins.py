"""Login throttling counters, shared by every API process (``domain/logins.py`` says the
rules, ``records/logins.py`` reads and writes them)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.types import UTCDateTime

#: Longest subject kept: an e-mail address (254) or a client address.
SUBJECT_MAX_LENGTH = 254


class LoginThrottle(SQLModel, table=True):
    """One counter: failed logins of one account (``scope`` ``account``, the e-mail typed)
    or from one client address (``scope`` ``address``)."""

    __tablename__ = "login_throttle"

    scope: str = Field(primary_key=True, max_length=16)
    subject: str = Field(primary_key=True, max_length=SUBJECT_MAX_LENGTH)
    window_started: datetime = Field(sa_type=UTCDateTime)
    last_failure: datetime = Field(sa_type=UTCDateTime, index=True)
    failures: int = 0
    blocked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: ``window_started`` of the last throttled window written to the audit trail (one
    #: event per window, however many attempts it refused).
    audited_window: datetime | None = Field(default=None, sa_type=UTCDateTime)
