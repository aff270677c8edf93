"""What a value must be for our columns to hold it on SQLite and on Postgres alike. Pure.

Filters, cursor keys and an admin's changes are held to these rules before any query runs,
because past them the driver or the database fails (a 500), or worse, answers wrongly:

- text: Postgres `text` and JSONB refuse NUL, and no driver can encode a lone surrogate (UTF-8
  has no such character); SQLite's `LIKE` stops at a NUL, so a search for "\\0" matched all runs.
- date-times: an offset can move a valid local time past 9999-12-31 or before 0001-01-01 UTC,
  which Python, and so both drivers, cannot represent.
- integers: `Integer` is 32-bit on Postgres, `BigInteger` 64-bit everywhere.
- money: SQLite stores `BigInteger` units of 1e-10 USD, the narrower of the two ranges
  (Postgres's NUMERIC(20,10) reaches 1e10 USD), and both keep 10 decimal places.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.types import TypeEngine

from persistence.storable import UNSTORABLE
from persistence.types import MONEY_SCALE, Money, UTCDateTime, quantize_money

EARLIEST_INSTANT = datetime.min.replace(tzinfo=UTC)
LATEST_INSTANT = datetime.max.replace(tzinfo=UTC)
INT32_RANGE = (-(2**31), 2**31 - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)
MONEY_LIMIT = Decimal(2**63 - 1).scaleb(-MONEY_SCALE)  # 922337203.6854775807 USD

# The part of the text rule a URL or a JSON string can break: a regular expression that means
# the same to Python's `re` (msgspec and litestar validate with it) and to JSON Schema tools (the
# OpenAPI schema publishes it). Lone surrogates stay out of it: UTF-8 cannot spell them, so only
# a JSON escape makes one, and a surrogate range in a pattern breaks Rust-based schema tools.
NUL_FREE_PATTERN = r"^[^\x00]*$"


def text_problem(text: str) -> str | None:
    """Why the databases cannot store `text`, or None when they can."""
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    return "contains a NUL character" if found.group() == "\x00" else "contains a lone surrogate"


def json_problem(value: Any, max_depth: int) -> str | None:
    """Why `value` (decoded JSON) cannot be stored as JSON, or is nested more than `max_depth`
    objects and arrays deep (a scalar is depth 0); None when it is fine."""
    return _json_problem(value, max_depth, max_depth)


def _json_problem(value: Any, levels_left: int, max_depth: int) -> str | None:
    """Stops at the first problem, so a hostile nesting costs at most `max_depth` frames."""
    if isinstance(value, str):
        return text_problem(value)
    if not isinstance(value, Mapping | list):
        return None
    if levels_left < 1:
        return f"is nested more than {max_depth} levels deep"
    children = value
    if isinstance(value, Mapping):
        for key in value:
            if (problem := text_problem(str(key))) is not None:
                return f"has a key that {problem}"
        children = value.values()
    for child in children:
        if (problem := _json_problem(child, levels_left - 1, max_depth)) is not None:
            return problem
    return None


def utc_instant(moment: datetime) -> datetime | None:
    """`moment` in UTC (naive means UTC already); None when its offset moves it outside the
    years 1–9999."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None


def money_fits(amount: Decimal) -> bool:
    """Within both backends' range and exact at 10 decimal places (storage would round).
    `copy_abs` and comparison are exact, so `1E+999999999` cannot overflow the context."""
    in_range = amount.is_finite() and amount.copy_abs() <= MONEY_LIMIT
    return in_range and quantize_money(amount) == amount


def column_holds(column_type: TypeEngine[Any], value: Any) -> bool:
    """Whether a column of `column_type` can hold `value` on both backends, so comparing the
    column with it is a query and not a driver error (cursor keys)."""
    if isinstance(column_type, Money):
        return isinstance(value, Decimal) and money_fits(value)
    if isinstance(column_type, UTCDateTime):
        return isinstance(value, datetime) and utc_instant(value) is not None
    if isinstance(column_type, Integer):  # BigInteger is an Integer
        low, high = INT64_RANGE if isinstance(column_type, BigInteger) else INT32_RANGE
        return type(value) is int and low <= value <= high
    if isinstance(column_type, String):
        limit = column_type.length
        fits = isinstance(value, str) and (limit is None or len(value) <= limit)
        return fits and text_problem(value) is None
    return False
