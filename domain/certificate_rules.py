"""Certificate arithmetic (SPEC section 5): validity dates, numbers and report digests.

Pure and deterministic (no I/O, no clock), so a workflow may call it directly.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

# The shape of centre codes (models.reference.CODE_PATTERN), for the prefix too.
_NUMBER_PART = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,63}", re.ASCII)
MAX_SEQUENCE = 999_999


def add_months(day: date, months: int) -> date:
    """``day`` moved by ``months`` calendar months, clamped to the last day of the month
    when that day does not exist (2028-01-31 + 1 month → 2028-02-29)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month0 = divmod(index, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last))


def valid_until(issued_on: date, validity_months: int) -> date:
    """The last day a certificate is valid (SPEC section 5).

    (issue date + ``validity_months``, clamped to the month's last day when that day does
    not exist) − 1 day: issued 2026-11-29 for 36 months → 2029-11-28; issued 2028-02-29
    for 12 months → 2029-02-28 (clamped) − 1 day = 2029-02-27.
    """
    if validity_months < 1:
        raise ValueError(f"validity must be at least one month, not {validity_months}")
    return add_months(issued_on, validity_months) - timedelta(days=1)


def certificate_number(prefix: str, centre: str, year: int, seq: int) -> str:
    """``<PREFIX>-<CENTRE>-<YEAR>-<SEQ6>``, e.g. ``MA-CTTH-2026-000001``.

    ``seq`` is the gap-free sequence within the centre and year, from 1 to 999999.
    """
    for name, part in (("prefix", prefix), ("centre", centre)):
        if not _NUMBER_PART.fullmatch(part):
            raise ValueError(f"certificate {name} {part!r} must look like a centre code")
    if not 1000 <= year <= 9999:
        raise ValueError(f"certificate year must have four digits, not {year}")
    if not 1 <= seq <= MAX_SEQUENCE:
        raise ValueError(f"certificate sequence must lie in 1 … {MAX_SEQUENCE}, not {seq}")
    return f"{prefix}-{centre}-{year:04d}-{seq:06d}"


def to_canonical_value(obj: Any) -> Any:
    """``obj`` as plain JSON values made only of strings, booleans, null, lists and objects.

    - ``Decimal`` → ``str(d)``, which keeps the value as written: ``Decimal("6")`` → ``"6"``,
      ``Decimal("0.70")`` → ``"0.70"`` (the trailing zero is the stated resolution);
      very small or large values keep their exponent form (``Decimal("1E-7")`` → ``"1E-7"``).
      NaN and infinities are refused.
    - ``datetime`` (timezone-aware) → ISO 8601 in UTC (``2026-11-29T09:30:00+00:00``);
      naive datetimes are refused. ``date`` → ``YYYY-MM-DD``.
    - ``Enum`` → its value; tuples and lists → lists; mappings → objects (keys must be
      strings or string enums).
    - ``int`` and ``float`` are refused: every number must already be a decimal string (or a
      ``Decimal``), so a digest never depends on how a JSON library prints numbers.
    """
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, Enum):
        return to_canonical_value(obj.value)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise ValueError(f"cannot put {obj} in a canonical document")
        return str(obj)
    if isinstance(obj, datetime):
        if obj.tzinfo is None or obj.utcoffset() is None:
            raise ValueError(f"naive datetime {obj.isoformat()} has no place in a canonical form")
        return obj.astimezone(UTC).isoformat()
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            name = key.value if isinstance(key, Enum) else key
            if not isinstance(name, str):
                raise TypeError(f"object keys must be strings, not {type(key).__name__}")
            out[name] = to_canonical_value(value)
        return out
    if isinstance(obj, list | tuple):
        return [to_canonical_value(item) for item in obj]
    if isinstance(obj, int | float):
        raise TypeError(f"numbers must be decimal strings in a canonical document, not {obj!r}")
    raise TypeError(f"{type(obj).__name__} has no canonical JSON form")


def search_text(payload: Mapping[str, Any]) -> str:
    """What the public directory matches a search against, from a certificate's signed
    payload: its number, the holder's names and the product's name, brand and model, case-
    folded (a search is case-folded the same way and matched as a substring)."""
    holder = payload.get("holder") or {}
    product = payload.get("product") or {}
    parts = [
        payload.get("number"),
        holder.get("name"),
        holder.get("name_ar"),
        product.get("name"),
        product.get("brand"),
        product.get("model"),
    ]
    return "\n".join(str(part) for part in parts if part).casefold()
