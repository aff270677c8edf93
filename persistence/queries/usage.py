"""Usage report: requests, errors, tokens, cost and TTFT percentiles per day/model/provider/
user/run over a window of task `created_at`.

A request is a logical call: a call a client retried counts once, in the group of its last
attempt, and is an error when that attempt failed (`persistence/attempts.py`); tokens and cost
add up every attempt, as the provider billed them.

The whole hours of the window are read from the usage rollups (`usage_hourly`), and only its
partial first and last hours from the tasks, with the same sums: so counts, tokens and cost are
exact, and a 30-day report reads a few thousand rollup rows instead of every task. `run` is not
a rollup key: by run, the tasks themselves are summed. TTFT percentiles come from the TTFT
histogram (`persistence/ttft_histogram.py`): within 8.6% of SQL's `percentile_cont` over the
tasks. Only streaming tasks have a TTFT.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, String, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.models import USAGE_COUNTERS
from persistence.models import tasks_table as tasks
from persistence.models import usage_hourly_table as usage_hourly
from persistence.queries.bounds import EARLIEST_INSTANT
from persistence.queries.scope import Principal, visible
from persistence.rollups import RollupDelta, hour_of, task_sums, task_ttfts
from persistence.ttft_histogram import percentile

GROUPS = ("day", "model", "provider", "user", "run")
DEFAULT_WINDOW = timedelta(days=30)
_HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class UsageRow:
    key: str | None
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Decimal | None  # None when no task of the group has a price
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None


def default_window(
    since: datetime | None, until: datetime | None, now: datetime | None = None
) -> tuple[datetime, datetime | None]:
    """An absent `since` is 30 days before `until` (or before now); never before year 1, which
    a subtraction from an `until` early in year 1 would overflow."""
    if since is None:
        end = until or now or datetime.now(UTC)
        since = max(end, EARLIEST_INSTANT + DEFAULT_WINDOW) - DEFAULT_WINDOW
    return since, until


async def usage_report(
    conn: AsyncConnection,
    principal: Principal,
    group_by: str,
    since: datetime,
    until: datetime | None = None,
) -> list[UsageRow]:
    """Rows by day (oldest first), or by the other keys (most requests first)."""
    postgres = conn.dialect.name == "postgresql"
    groups: dict[Any, RollupDelta] = {}
    whole_hours = None if group_by == "run" else _whole_hours(since, until)
    if whole_hours is None:
        task_parts = [(since, until)]
    else:
        first, last = whole_hours
        task_parts = [(since, first)] + ([(last, until)] if last is not None else [])
        rollups = _rollup_sums(group_by, postgres, principal, first, last)
        for row in (await conn.execute(rollups)).all():
            groups.setdefault(row.key, RollupDelta()).add_sums(row)
    for start, end in task_parts:
        window = [tasks.c.created_at >= start]
        if end is not None:
            if end <= start:
                continue
            window.append(tasks.c.created_at < end)
        group, where = [_task_key(group_by, postgres)], [visible(tasks, principal), *window]
        for row in (await conn.execute(task_sums(group, *where))).all():
            groups.setdefault(row.key, RollupDelta()).add_sums(row)
        for key, ttft in (await conn.execute(task_ttfts(group, *where))).all():
            groups[key].add_ttft(ttft)
    rows = [_usage_row(key, sums) for key, sums in groups.items() if sums.tasks > 0]
    return _ordered(rows, group_by)


def _whole_hours(
    since: datetime, until: datetime | None
) -> tuple[datetime, datetime | None] | None:
    """The whole UTC hours [first, last) inside the window (`last` None: no end), or None when
    it holds none."""
    first = hour_of(since)
    try:
        first = first if first == since else first + _HOUR
    except OverflowError:
        return None
    last = hour_of(until) if until is not None else None
    if last is not None and last <= first:
        return None
    return first, last


def _rollup_sums(
    group_by: str, postgres: bool, principal: Principal, first: datetime, last: datetime | None
) -> Any:
    columns = {"model": "model", "provider": "provider", "user": "user_id"}
    hour = usage_hourly.c.hour
    key = _day(hour, postgres) if group_by == "day" else usage_hourly.c[columns[group_by]]
    sums = [func.sum(usage_hourly.c[name]).label(name) for name in USAGE_COUNTERS]
    where = [visible(usage_hourly, principal), hour >= first]
    if last is not None:
        where.append(hour < last)
    return select(key.label("key"), *sums).where(*where).group_by(key)


def _task_key(group_by: str, postgres: bool) -> Any:
    """The group of a task, as a function of the task columns `task_sums` hands it."""
    if group_by == "day":
        return lambda t: _day(t.created_at, postgres).label("key")
    column = {"model": "upstream_model", "provider": "provider", "user": "user_id", "run": "run_id"}
    return lambda t: t[column[group_by]].label("key")


def _day(at: Any, postgres: bool) -> ColumnElement[Any]:
    """`YYYY-MM-DD` of a timestamp column, in UTC."""
    if postgres:
        return func.to_char(func.timezone("UTC", at), "YYYY-MM-DD", type_=String)
    return func.substr(at, 1, 10, type_=String)  # SQLite stores UTC text


def _usage_row(key: str | None, sums: RollupDelta) -> UsageRow:
    return UsageRow(
        key=key,
        requests=sums.requests,
        errors=sums.errors,
        prompt_tokens=sums.prompt_tokens,
        completion_tokens=sums.completion_tokens,
        total_tokens=sums.total_tokens,
        cost=Decimal(sums.cost) if sums.priced else None,
        ttft_p50_ms=percentile(sums.ttft, 0.5),
        ttft_p95_ms=percentile(sums.ttft, 0.95),
    )


def _ordered(rows: list[UsageRow], group_by: str) -> list[UsageRow]:
    if group_by == "day":
        return sorted(rows, key=lambda r: r.key or "")
    return sorted(rows, key=lambda r: (-r.requests, r.key is None, r.key or ""))
