"""Column types shared by the tables, portable between SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import SQLModel

#: The largest value of an ``INTEGER`` column (4 bytes on PostgreSQL): integers a client
#: sends for such a column are bounded by it, so that a larger one is a 422, not a
#: database error.
SQL_INT_MAX = 2**31 - 1


class DecimalText(sa.types.TypeDecorator[Decimal]):
    """An exact decimal stored as its text form (SQLite has no exact numeric type)."""

    impl = sa.String(64)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; give a timezone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def text_enum(enum_cls: type[Enum]) -> sa.Enum:
    """Enums stored as text with a CHECK-free VARCHAR, so migrations stay portable."""
    return sa.Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda members: [m.value for m in members],
    )


def stable_id(*parts: str) -> str:
    """A row id derived from business keys, so a retried activity finds its earlier row."""
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:32]


def utcnow() -> datetime:
    return datetime.now(UTC)


def json_column(**kwargs: Any) -> sa.Column[Any]:
    return sa.Column(sa.JSON, nullable=False, **kwargs)


# Named constraints, so Alembic's batch mode can alter them on SQLite later.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
