"""Call records → the column values of their `runs` and `tasks` rows. Pure but for pricing.

Cost is computed here, in the writer, off the request path: the first of the response, upstream
and client model names that has a price wins, and the price used is frozen on the task.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from persistence.naming import generate_run_name
from persistence.record import CONVERSATION_ENDPOINTS, ERROR, CallRecord, RunInfo
from persistence.types import quantize_money
from pricing.cost import compute_cost, price_dict
from pricing.table import PriceTable

log = logging.getLogger(__name__)

# No single call costs a million dollars: usage priced at that much is not believed (and a few
# such costs would overflow a run's total). The task is recorded unpriced instead.
MAX_CALL_COST = Decimal(1_000_000)

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


# The one mapping between a record's fields and its task row's columns: the fields stored as
# they are, and those whose column has another name. Usage, run, prices and the row's own
# bookkeeping are mapped by hand below.
_STORED_AS_IS = (
    "task_name", "endpoint", "provider", "model", "upstream_model", "response_model", "stream",
    "status", "http_status", "request", "response_text", "tool_calls", "finish_reason",
    "error_message", "usage_source", "upstream_latency_ms", "total_time_ms", "overhead_ms",
    "user_id", "owner", "instance_id", "completed_at", "attempt", "attempt_of",
)  # fmt: skip
_RENAMED = {"task_id": "id", "ttft_ms": "time_to_first_token_ms", "started_at": "created_at"}
_USAGE_COLUMNS = (
    "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "total_tokens"
)  # fmt: skip
# Read in one C call per record: the writer builds a row for every record it stores.
_FIELDS = (*_STORED_AS_IS, *_RENAMED)
_COLUMNS = (*_STORED_AS_IS, *_RENAMED.values())
_read_fields = operator.attrgetter(*_FIELDS)
_read_usage = operator.attrgetter(*_USAGE_COLUMNS)
_NO_USAGE = dict.fromkeys(_USAGE_COLUMNS)


def record_from_row(row: Any, **changes: Any) -> CallRecord:
    """A task row read back as a record (recovery closes orphaned tasks through these), with
    `changes` applied; usage is left out: a record that is read back is never re-priced."""
    fields = dict(zip(_FIELDS, operator.attrgetter(*_COLUMNS)(row), strict=True))
    run = RunInfo(row.run_id) if row.run_id is not None else None
    record = CallRecord(**fields, run=run, usage=None)
    return replace(record, **changes) if changes else record


def closing_record(record: CallRecord, reason: str) -> CallRecord:
    """What is stored of a final record the database refused: the task closed as `error` with
    `reason`, keeping only identity and timings, each within what a column holds (no bodies,
    no usage, no run metadata: one of them is what was refused)."""
    http_status = record.http_status
    return replace(
        record,
        run=RunInfo(record.run.id) if record.run is not None else None,
        status=ERROR,
        request=None,
        response_model=None,
        response_text=None,
        tool_calls=None,
        finish_reason=None,
        usage=None,
        usage_source="missing",
        http_status=http_status if http_status is not None and 100 <= http_status < 600 else None,
        error_message=f"airuns could not store this call's record: {reason}",
        upstream_latency_ms=_duration(record.upstream_latency_ms),
        ttft_ms=_duration(record.ttft_ms),
        total_time_ms=_duration(record.total_time_ms),
        overhead_ms=_duration(record.overhead_ms),
    )


def _duration(ms: float | None) -> float | None:
    return ms if ms is not None and 0 <= ms < 1e12 else None


def run_row(record: CallRecord) -> dict[str, Any]:
    """The run a record creates when its `X-Run-Id` is new."""
    assert record.run is not None
    request = record.request if isinstance(record.request, dict) else {}
    return {
        "id": record.run.id,
        "name": record.run.name or generate_run_name(_naming_request(record), record.started_at),
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


def _naming_request(record: CallRecord) -> dict[str, Any] | None:
    return record.request if record.endpoint in CONVERSATION_ENDPOINTS else None


def task_row(record: CallRecord, prices: PriceTable) -> dict[str, Any]:
    """Every column of the task, so rows of one batch share their keys (executemany)."""
    row = dict(zip(_COLUMNS, _read_fields(record), strict=True))
    usage = record.usage
    counts = _read_usage(usage) if usage is not None else None
    row |= _NO_USAGE if counts is None else dict(zip(_USAGE_COLUMNS, counts, strict=True))
    row["run_id"] = record.run.id if record.run else None
    row["retried"] = False  # until a later attempt of its call is stored (`apply.py`)
    row |= price_columns(record, prices)
    return row


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
    if cost is not None and cost.total_cost >= MAX_CALL_COST:
        log.warning("task %s would cost $%s: impossible usage, left unpriced", record.task_id,
                    cost.total_cost)  # fmt: skip
        cost = None
    if cost is not None:
        columns["cost"] = quantize_money(cost.total_cost)
        columns["input_cost"] = quantize_money(cost.input_cost)
        columns["output_cost"] = quantize_money(cost.output_cost)
    return columns
