"""Cursor pagination: ``?limit=&cursor=`` in, ``{items, next_cursor}`` out.

Lists are ordered **newest first**, by ``(created_at, id)`` unless a list says otherwise
(the public directory: issue date, then number) — all descending, the last key unique so
it breaks ties. The cursor is an opaque
base64url string naming the last row of the previous page; the next page holds the rows
strictly after it in that order (keyset pagination), so rows inserted meanwhile never
shift a page nor appear twice. ``next_cursor`` is ``null`` on the last page.

Use it with any table, naming the sort columns (the last one unique)::

    @router.get("", response_model=Page[ProductPublic])
    def list_products(session: SessionDep, page: PageParamsDep, ...) -> Page[ProductPublic]:
        statement = select(Product).where(Product.organization_id == ...)
        return paginate(
            session, statement, page, ProductPublic.model_validate,
            order=(Product.created_at, Product.id),
        )
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

import sqlalchemy as sa
from fastapi import Depends, Query
from pydantic import BaseModel
from sqlmodel import Session, col
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


Row = TypeVar("Row")


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


#: A cursor names the last row's sort keys, each tagged with its type.
_TAGS: dict[str, Callable[[str], Any]] = {
    "t": datetime.fromisoformat,
    "d": date.fromisoformat,
    "s": str,
}


def _tagged(value: Any) -> list[str]:
    if isinstance(value, datetime):
        return ["t", value.isoformat()]
    if isinstance(value, date):
        return ["d", value.isoformat()]
    return ["s", str(value)]


def encode_cursor(*keys: Any) -> str:
    """The cursor after a row whose sort keys are ``keys``."""
    raw = json.dumps([_tagged(key) for key in keys], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def _invalid_cursor() -> Problem:
    return Problem(
        422,
        "invalid-cursor",
        "Invalid cursor",
        "the cursor is not one this API issued; use next_cursor from the previous page",
    )


def decode_cursor(cursor: str, count: int) -> list[Any]:
    """The ``count`` sort keys a cursor names; a 422 Problem when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8"))
        if not isinstance(value, list) or len(value) != count:
            raise ValueError("wrong number of keys")
        keys = []
        for tag, text in value:
            if tag not in _TAGS or not isinstance(text, str) or not text:
                raise ValueError("a key has the wrong type")
            key = _TAGS[tag](text)
            if isinstance(key, datetime) and key.tzinfo is None:
                raise ValueError("a cursor's instants are timezone-aware")
            keys.append(key)
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise _invalid_cursor() from None
    return keys


def page_of(
    session: Session,
    statement: SelectOfScalar[Row],
    params: PageParams,
    order: Sequence[Any],
    *,
    ascending: bool = False,
) -> tuple[list[Row], str | None]:
    """Apply keyset ordering by the columns ``order`` (all descending, or all ascending
    with ``ascending``; the last one unique, e.g. ``(created_at, id)``), ``params.cursor``
    and ``params.limit`` to ``statement`` (a ``select(model)`` with any filters) and run
    it: the page's rows and the next cursor. The only pagination of the API: every list
    uses it, through ``paginate`` when each row converts on its own."""
    columns: list[Any] = [col(column) for column in order]
    if params.cursor is not None:
        after = decode_cursor(params.cursor, len(columns))
        keys = sa.tuple_(*columns)
        last = sa.tuple_(
            *(sa.literal(v, type_=c.type) for c, v in zip(columns, after, strict=True))
        )
        statement = statement.where(keys > last if ascending else keys < last)
    ordered = [c.asc() if ascending else c.desc() for c in columns]
    statement = statement.order_by(*ordered).limit(params.limit + 1)
    rows = list(session.exec(statement).all())
    if len(rows) <= params.limit:
        return rows, None
    rows = rows[: params.limit]
    return rows, encode_cursor(*(getattr(rows[-1], c.key) for c in columns))


def paginate(
    session: Session,
    statement: SelectOfScalar[Row],
    params: PageParams,
    convert: Callable[[Row], T],
    order: Sequence[Any],
) -> Page[T]:
    """``page_of``, each row converted with ``convert``."""
    rows, next_cursor = page_of(session, statement, params, order)
    return Page(items=[convert(row) for row in rows], next_cursor=next_cursor)
