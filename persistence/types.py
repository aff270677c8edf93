"""Column types that behave the same on SQLite and Postgres.

- `Money`: exact USD. Postgres stores NUMERIC(20,10); SQLite (no decimal type) stores a
  BigInteger count of 1e-10 USD so SQL increments and SUM stay exact. Python sees `Decimal`.
- `UTCDateTime`: timezone-aware UTC in Python; SQLite keeps naive UTC text (sortable).
- `JSONType`: JSONB on Postgres (operators such as `||`), JSON elsewhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Numeric
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

MONEY_SCALE = 10
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)

# None is SQL NULL (not JSON `null`), so "not captured" stays distinguishable in queries.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def quantize_money(value: Decimal) -> Decimal:
    """Round to what storage keeps, so a task's cost and its run's sum use the same figure."""
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


class Money(TypeDecorator[Decimal]):
    impl = Numeric(20, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = quantize_money(Decimal(str(value)) if isinstance(value, float) else Decimal(value))
        if dialect.name == "sqlite":
            return int(amount.scaleb(MONEY_SCALE))
        return amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return quantize_money(Decimal(int(value)).scaleb(-MONEY_SCALE))
        return quantize_money(Decimal(value))

    def coerce_compared_value(self, op: Any, value: Any) -> TypeEngine[Any]:
        # `total_cost + :c` binds :c as Money too (units on SQLite), whatever Python type it has.
        return self


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
