"""Keyset pagination: order by (sort column, id), continue strictly after the last row seen.

Unlike OFFSET, a page boundary is a *value*, so rows inserted or deleted elsewhere never shift
later pages: no row is skipped or repeated. The sort column and id always run in the same
direction, which lets one row-value comparison `(col, id) < (:v, :id)` use the (col, id) index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Column, ColumnElement, Row, Select, literal, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.queries.bounds import column_holds
from persistence.queries.cursor import CursorError, decode_cursor, encode_cursor


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row[Any]]
    has_more: bool
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Ordering:
    """One list order; `kind` is what its cursors are stamped with."""

    kind: str
    column: Column[Any]
    id_column: Column[Any]
    descending: bool

    def order_by(self) -> list[ColumnElement[Any]]:
        columns = (self.column, self.id_column)
        return [c.desc() if self.descending else c.asc() for c in columns]

    def after(self, key: Sequence[Any]) -> ColumnElement[bool]:
        """Rows that come after `key` in this order."""
        left = tuple_(self.column, self.id_column)
        right = tuple_(literal(key[0], self.column.type), literal(key[1], self.id_column.type))
        return left < right if self.descending else left > right

    def encode(self, row: Row[Any]) -> str:
        mapping = row._mapping
        key = [_to_json(mapping[self.column.name]), mapping[self.id_column.name]]
        return encode_cursor(self.kind, key)

    def decode(self, token: str) -> tuple[Any, Any]:
        """The typed key in `token`; raises `CursorError` if it is not one of ours."""
        key = decode_cursor(token, self.kind)
        if len(key) != 2:
            raise CursorError("cursor is not a valid pagination cursor")
        return _from_json(key[0], self.column), _from_json(key[1], self.id_column)


async def fetch_page(
    conn: AsyncConnection,
    query: Select[Any],
    ordering: Ordering,
    after: tuple[Any, Any] | None,
    limit: int,
) -> Page:
    """Up to `limit` rows of `query` after the key `after` (None: from the start)."""
    if after is not None:
        query = query.where(ordering.after(after))
    query = query.order_by(*ordering.order_by()).limit(limit + 1)
    rows = list((await conn.execute(query)).all())
    has_more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, has_more, ordering.encode(rows[-1]) if has_more else None)


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def _from_json(value: Any, column: Column[Any]) -> Any:
    """The key as the column's Python type, refused unless the column could hold it: a key we
    never made (a forged date-time, amount or id) must be a bad cursor, not a driver error."""
    column_type = getattr(column.type, "impl", column.type)  # Money, UTCDateTime: decorators
    parse = _PARSERS[column_type.python_type]
    try:
        parsed = parse(value)
    except (TypeError, ValueError, InvalidOperation):
        parsed = None
    if parsed is None or not column_holds(column.type, parsed):
        raise CursorError("cursor is not a valid pagination cursor")
    return parsed


def _parse_datetime(value: Any) -> datetime | None:
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _parse_decimal(value: Any) -> Decimal | None:
    amount = Decimal(value) if isinstance(value, str) else None
    return amount if amount is not None and amount.is_finite() else None


def _parse_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _parse_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


_PARSERS = {datetime: _parse_datetime, Decimal: _parse_decimal, int: _parse_int, str: _parse_str}
