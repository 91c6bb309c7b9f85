"""Cursor pagination: ``?limit=&cursor=`` in, ``{items, next_cursor}`` out.

Lists are ordered **newest first** by ``(created_at, id)`` — both descending, the id
breaking ties between rows created in the same microsecond. The cursor is an opaque
base64url string naming the last row of the previous page; the next page holds the rows
strictly after it in that order (keyset pagination), so rows inserted meanwhile never
shift a page nor appear twice. ``next_cursor`` is ``null`` on the last page.

Use it with any table that has a timezone-aware ``created_at`` and a string ``id``::

    @router.get("", response_model=Page[ProductPublic])
    def list_products(session: SessionDep, page: PageParamsDep, ...) -> Page[ProductPublic]:
        statement = select(Product).where(Product.organization_id == ...)
        return paginate(session, statement, Product, page, ProductPublic.model_validate)
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, Protocol, TypeVar

import sqlalchemy as sa
from fastapi import Depends, Query
from pydantic import BaseModel
from sqlmodel import Session
from sqlmodel.sql.expression import SelectOfScalar

from api.problems import Problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_MAX_CURSOR_LENGTH = 512

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[T]
    next_cursor: str | None = None


class _Keyed(Protocol):
    @property
    def id(self) -> Any: ...

    @property
    def created_at(self) -> datetime: ...


Row = TypeVar("Row", bound=_Keyed)


@dataclass(frozen=True)
class PageParams:
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


def page_params(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1 to 200).")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            max_length=_MAX_CURSOR_LENGTH,
            description="The `next_cursor` of the previous page; omit for the first page.",
        ),
    ] = None,
) -> PageParams:
    """The ``limit`` and ``cursor`` query parameters (the cursor is decoded by ``paginate``,
    after authentication and authorisation have run)."""
    return PageParams(limit=limit, cursor=cursor)


PageParamsDep = Annotated[PageParams, Depends(page_params)]


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def _invalid_cursor() -> Problem:
    return Problem(
        422,
        "invalid-cursor",
        "Invalid cursor",
        "the cursor is not one this API issued; use next_cursor from the previous page",
    )


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``(created_at, id)`` a cursor names; a 422 Problem when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8"))
        at_text, row_id = value
        if not isinstance(at_text, str) or not isinstance(row_id, str) or not row_id:
            raise ValueError("cursor fields have the wrong types")
        created_at = datetime.fromisoformat(at_text)
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise _invalid_cursor() from None
    if created_at.tzinfo is None:
        raise _invalid_cursor()
    return created_at, row_id


def paginate(
    session: Session,
    statement: SelectOfScalar[Row],
    model: type[Row],
    params: PageParams,
    convert: Callable[[Row], T],
) -> Page[T]:
    """Apply keyset ordering, ``params.cursor`` and ``params.limit`` to ``statement`` (a
    ``select(model)`` with any filters), run it and build the page with ``convert``."""
    created_col: Any = model.created_at
    id_col: Any = model.id
    if params.cursor is not None:
        after_at, after_id = decode_cursor(params.cursor)
        statement = statement.where(
            sa.tuple_(created_col, id_col)
            < sa.tuple_(
                sa.literal(after_at, type_=created_col.type),
                sa.literal(after_id, type_=id_col.type),
            )
        )
    statement = statement.order_by(created_col.desc(), id_col.desc()).limit(params.limit + 1)
    rows: Sequence[Row] = session.exec(statement).all()
    next_cursor = None
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        last = rows[-1]
        next_cursor = encode_cursor(last.created_at, str(last.id))
    return Page(items=[convert(row) for row in rows], next_cursor=next_cursor)
