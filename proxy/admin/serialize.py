"""Database rows → the JSON shapes of SPEC "Data model". Pure.

Money is stored as exact `Decimal` and leaves here as a JSON number (a float whose shortest
repr is the stored decimal: at most 10 places and well under 15 significant digits).
Timestamps are ISO 8601 UTC with `Z`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from persistence.queries.keyset import Page
from persistence.queries.usage import UsageRow
from pricing.table import PriceQuote

RUN_FIELDS = (
    "id", "name", "description", "status", "is_starred", "source_type", "source_id",
    "user_id", "owner", "metadata", "tags", "settings", "message_count", "task_count",
    "error_count", "prompt_tokens", "completion_tokens", "total_tokens", "total_cost",
    "unpriced_task_count", "created_at", "updated_at", "last_message_at",
)  # fmt: skip
TASK_FIELDS = (
    "id", "run_id", "task_name", "endpoint", "provider", "model", "upstream_model",
    "response_model", "stream", "status", "http_status", "request", "response_text",
    "tool_calls", "finish_reason", "error_message", "prompt_tokens", "completion_tokens",
    "cached_tokens", "reasoning_tokens", "total_tokens", "usage_source", "upstream_latency_ms",
    "time_to_first_token_ms", "total_time_ms", "overhead_ms", "cost", "input_cost", "output_cost",
    "price",
    "user_id", "created_at", "completed_at", "attempt", "attempt_of", "retried",
)  # fmt: skip
PRICE_FIELDS = ("input", "output", "cached_input", "cache_write")


def run_json(row: Any, *, with_messages: bool = False) -> dict[str, Any]:
    """A run; `messages` only in detail views."""
    fields = row._mapping
    body = {name: _value(fields[name]) for name in RUN_FIELDS}
    body["metadata"] = body["metadata"] or {}
    body["tags"] = body["tags"] or []
    body["settings"] = body["settings"] or {}
    if with_messages:
        body["messages"] = fields["messages"] or []
    return body


def task_json(row: Any) -> dict[str, Any]:
    """A task; `attempts` (its call's attempts, first to last) when the row carries them."""
    fields = row._mapping
    body = {name: _value(fields[name]) for name in TASK_FIELDS}
    body["price"] = stored_price_json(fields["price"])
    if "attempts" in fields:
        body["attempts"] = sorted(fields["attempts"] or [], key=_attempt_order)
    return body


def _attempt_order(attempt: Mapping[str, Any]) -> tuple[Any, ...]:
    return attempt["attempt"], attempt["id"]


def stored_price_json(price: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A task's frozen price (decimal strings in storage) with numbers for the prices."""
    if price is None:
        return None
    return {key: _number(value) if key in PRICE_FIELDS else value for key, value in price.items()}


def page_json(page: Page, item: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    data = [item(row) for row in page.rows]
    return {"data": data, "has_more": page.has_more, "next_cursor": page.next_cursor}


def usage_json(rows: list[UsageRow]) -> dict[str, Any]:
    return {"data": [{f.name: _value(getattr(row, f.name)) for f in fields(row)} for row in rows]}


def quote_json(quote: PriceQuote) -> dict[str, Any]:
    return {
        "model": quote.model,
        "provider": quote.provider,
        **{name: _value(getattr(quote, name)) for name in PRICE_FIELDS},
        "source": quote.source,
    }


def timestamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def decimal_text(value: Decimal) -> str:
    """Exact, without exponent or trailing zeros: 0.0037000000 → "0.0037"."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def money(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return money(value)
    if isinstance(value, datetime):
        return timestamp(value)
    return value


def _number(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return float(Decimal(value))
    except InvalidOperation:
        return value
