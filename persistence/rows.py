"""Call records → the column values of their `runs` and `tasks` rows. Pure but for pricing.

Cost is computed here, in the writer, off the request path: the first of the response, upstream
and client model names that has a price wins, and the price used is frozen on the task.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from persistence.naming import generate_run_name
from persistence.types import quantize_money
from pricing.cost import compute_cost, price_dict
from pricing.table import PriceTable
from pricing.usage import Usage
from proxy.recording import CallRecord

log = logging.getLogger(__name__)

_GENERATION_EXCLUDED = ("messages", "input")


def coalesce(records: Iterable[CallRecord]) -> list[CallRecord]:
    """One record per task, in order of first appearance: the first final one (the database
    keeps the first final too), else the latest; with the earliest `started_at` seen."""
    chosen: dict[str, CallRecord] = {}
    for record in records:
        previous = chosen.get(record.task_id)
        if previous is None:
            chosen[record.task_id] = record
            continue
        keep = previous if previous.is_final else record
        earliest = min(previous.started_at, record.started_at)
        if keep.started_at != earliest:
            keep = replace(keep, started_at=earliest)
        chosen[record.task_id] = keep
    return list(chosen.values())


def run_row(record: CallRecord) -> dict[str, Any]:
    """The run a record creates when its `X-Run-Id` is new."""
    assert record.run is not None
    request = record.request if isinstance(record.request, dict) else {}
    return {
        "id": record.run.id,
        "name": record.run.name or generate_run_name(record.request, record.started_at),
        "source_type": record.run.source_type,
        "source_id": record.run.source_id,
        "metadata": record.run.metadata or {},
        "user_id": record.user_id,
        "owner": record.owner,
        "settings": {k: v for k, v in request.items() if k not in _GENERATION_EXCLUDED},
        "tags": [],
        "messages": [],
        "created_at": record.started_at,
        "updated_at": record.started_at,
        "last_message_at": record.started_at,
    }


def task_row(record: CallRecord, prices: PriceTable) -> dict[str, Any]:
    """Every column of the task, so rows of one batch share their keys (executemany)."""
    usage = record.usage or Usage()
    return {
        "id": record.task_id,
        "run_id": record.run.id if record.run else None,
        "task_name": record.task_name,
        "endpoint": record.endpoint,
        "provider": record.provider,
        "model": record.model,
        "upstream_model": record.upstream_model,
        "response_model": record.response_model,
        "stream": record.stream,
        "status": record.status,
        "http_status": record.http_status,
        "request": record.request,
        "response_text": record.response_text,
        "tool_calls": record.tool_calls,
        "finish_reason": record.finish_reason,
        "error_message": record.error_message,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "total_tokens": usage.total_tokens,
        "usage_source": record.usage_source,
        "upstream_latency_ms": record.upstream_latency_ms,
        "time_to_first_token_ms": record.ttft_ms,
        "total_time_ms": record.total_time_ms,
        "overhead_ms": record.overhead_ms,
        **price_columns(record, prices),
        "user_id": record.user_id,
        "owner": record.owner,
        "instance_id": record.instance_id,
        "created_at": record.started_at,
        "completed_at": record.completed_at,
    }


def price_columns(record: CallRecord, prices: PriceTable) -> dict[str, Any]:
    """cost, input_cost, output_cost, price: None when unknown (never a made-up 0)."""
    columns: dict[str, Any] = dict.fromkeys(("cost", "input_cost", "output_cost", "price"))
    if not record.is_final:
        return columns
    try:
        names = [record.response_model, record.upstream_model, record.model]
        quote = prices.lookup_first(names, record.provider, at=record.started_at)
        if quote is None:
            return columns
        columns["price"] = price_dict(quote)
        cost = compute_cost(record.usage, quote) if record.usage else None
    except Exception:  # a pricing bug must not cost us the record: it stays unpriced
        log.exception("pricing failed for task %s", record.task_id)
        return dict.fromkeys(columns)
    if cost is not None:
        columns["cost"] = quantize_money(cost.total_cost)
        columns["input_cost"] = quantize_money(cost.input_cost)
        columns["output_cost"] = quantize_money(cost.output_cost)
    return columns
