"""Usage report: requests, errors, tokens, cost and TTFT percentiles per day/model/provider/
user/run over a window of task `created_at`.

A request is a logical call: a call a client retried counts once, in the group of its last
attempt, and is an error when that attempt failed (`persistence/attempts.py`); tokens and cost
add up every attempt, as the provider billed them.

TTFT percentiles use the continuous definition (linear interpolation between the two nearest
ranks), computed by the database where it can: Postgres `percentile_cont(..) WITHIN GROUP`;
SQLite has no such aggregate, so there the group's TTFTs are fetched in order and
`percentile_cont()` below does the same arithmetic. Only streaming tasks have a TTFT.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, String, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.models import tasks_table as tasks
from persistence.queries.bounds import EARLIEST_INSTANT
from persistence.queries.scope import Principal, visible

GROUPS = ("day", "model", "provider", "user", "run")
DEFAULT_WINDOW = timedelta(days=30)
ERROR_STATUSES = ("error", "timeout")  # as in the runs' error_count
_TTFT = tasks.c.time_to_first_token_ms
Percentiles = dict[Any, tuple[float | None, float | None]]  # group key → (p50, p95)


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
    key = _key(group_by, postgres).label("key")
    where = [visible(tasks, principal), tasks.c.created_at >= since]
    if until is not None:
        where.append(tasks.c.created_at < until)
    query = select(key, *_totals()).where(*where).group_by(key)
    if postgres:
        query = query.add_columns(*_percentile_columns())
        percentiles = None
    else:
        percentiles = await _percentiles_in_python(conn, key, where)
    rows = [_usage_row(row, percentiles) for row in (await conn.execute(query)).all()]
    return _ordered(rows, group_by)


def _key(group_by: str, postgres: bool) -> ColumnElement[Any]:
    if group_by == "day":
        if postgres:
            utc = func.timezone("UTC", tasks.c.created_at)
            return func.to_char(utc, "YYYY-MM-DD", type_=String)
        return func.substr(tasks.c.created_at, 1, 10, type_=String)  # stored as UTC text
    columns = {
        "model": tasks.c.upstream_model,
        "provider": tasks.c.provider,
        "user": tasks.c.user_id,
        "run": tasks.c.run_id,
    }
    return columns[group_by]


def _totals() -> list[ColumnElement[Any]]:
    def total(column: Any, name: str) -> ColumnElement[Any]:
        return func.coalesce(func.sum(column), 0).label(name)

    last_attempt = tasks.c.retried.is_(False)
    failed = case((last_attempt & tasks.c.status.in_(ERROR_STATUSES), 1), else_=0)
    return [
        total(case((last_attempt, 1), else_=0), "requests"),
        total(failed, "errors"),
        total(tasks.c.prompt_tokens, "prompt_tokens"),
        total(tasks.c.completion_tokens, "completion_tokens"),
        total(tasks.c.total_tokens, "total_tokens"),
        func.sum(tasks.c.cost).label("cost"),
    ]


def _percentile_columns() -> list[ColumnElement[Any]]:
    return [
        func.percentile_cont(0.5).within_group(_TTFT).label("ttft_p50_ms"),
        func.percentile_cont(0.95).within_group(_TTFT).label("ttft_p95_ms"),
    ]


async def _percentiles_in_python(
    conn: AsyncConnection, key: ColumnElement[Any], where: list[ColumnElement[bool]]
) -> Percentiles:
    query: Select[Any] = select(key, _TTFT).where(*where, _TTFT.is_not(None)).order_by(_TTFT)
    values: dict[Any, list[float]] = defaultdict(list)
    for group, ttft in (await conn.execute(query)).all():
        values[group].append(ttft)
    return {
        group: (percentile_cont(ordered, 0.5), percentile_cont(ordered, 0.95))
        for group, ordered in values.items()
    }


def percentile_cont(ordered: Sequence[float], fraction: float) -> float | None:
    """SQL's percentile_cont over ascending `ordered`: interpolate between nearest ranks."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def _usage_row(row: Any, percentiles: Percentiles | None) -> UsageRow:
    fields = row._mapping
    if percentiles is None:
        p50, p95 = fields["ttft_p50_ms"], fields["ttft_p95_ms"]
    else:
        p50, p95 = percentiles.get(fields["key"], (None, None))
    return UsageRow(
        key=fields["key"],
        requests=int(fields["requests"]),
        errors=int(fields["errors"]),
        prompt_tokens=int(fields["prompt_tokens"]),
        completion_tokens=int(fields["completion_tokens"]),
        total_tokens=int(fields["total_tokens"]),
        cost=fields["cost"],
        ttft_p50_ms=p50,
        ttft_p95_ms=p95,
    )


def _ordered(rows: list[UsageRow], group_by: str) -> list[UsageRow]:
    if group_by == "day":
        return sorted(rows, key=lambda r: r.key or "")
    return sorted(rows, key=lambda r: (-r.requests, r.key is None, r.key or ""))
