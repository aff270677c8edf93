"""Persistence test fixtures: `records` builds call records with hand-checkable prices, and
`probe` reads a database back, including the check that a run's aggregates equal the sums over
its tasks (calls counted once, by their last attempt: `persistence/attempts.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.apply import apply_batch
from persistence.models import TTFT_COLUMNS, USAGE_COUNTERS, Run, Task, usage_hourly_table
from persistence.record import COMPLETED, FINAL_STATUSES, CallRecord, RunInfo
from persistence.rollups import KEY_NAMES, key_digest
from persistence.ttft_histogram import bucket_of
from pricing.price import Price
from pricing.table import PriceTable
from pricing.usage import Usage

PRICED_MODEL = "airuns-test-priced"  # an override: 3 USD per 1M input, 7 per 1M output
AGGREGATES = [
    "task_count",
    "error_count",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "total_cost",
    "unpriced_task_count",
]


class Records:
    t0 = datetime(2026, 11, 21, 9, 5, tzinfo=UTC)
    chat = "/v1/chat/completions"
    unknown_model = "airuns-test-unknown-model"
    usage = Usage(prompt_tokens=1000, completion_tokens=100, total_tokens=1100)
    usage_cost = Decimal("0.0037")  # 1000 × 3/1M + 100 × 7/1M
    prices = PriceTable({PRICED_MODEL: Price(input=Decimal("3"), output=Decimal("7"))})

    def make(
        self,
        task_id: str,
        *,
        run: str | RunInfo | None = "run-1",
        status: str = COMPLETED,
        started: float = 0.0,
        duration: float = 1.0,
        usage: Usage | None | str = "default",
        model: str = PRICED_MODEL,
        endpoint: str = chat,
        request: dict[str, Any] | None = None,
        **fields: Any,
    ) -> CallRecord:
        """A record of a call `started` seconds after t0 that took `duration` seconds."""
        started_at = self.t0 + timedelta(seconds=started)
        final = status in FINAL_STATUSES
        usage = self.usage if usage == "default" else usage
        return CallRecord(
            task_id=task_id,
            run=RunInfo(id=run) if isinstance(run, str) else run,
            task_name=fields.pop("task_name", None),
            user_id=fields.pop("user_id", None),
            owner=None,
            endpoint=endpoint,
            provider="mock",
            model=model,
            upstream_model=model,
            stream=False,
            status=status,
            started_at=started_at,
            request=request if request is not None else {"model": model, "messages": []},
            usage=usage if final else None,
            usage_source="provider" if final and usage else "missing",
            completed_at=started_at + timedelta(seconds=duration) if final else None,
            **fields,
        )


class Probe:
    """Reads back what was written."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def apply(self, *records: CallRecord) -> None:
        async with self.engine.begin() as conn:
            await apply_batch(conn, records, Records.prices)

    async def run(self, run_id: str = "run-1") -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(Run.__table__).where(Run.id == run_id))).one()

    async def run_count(self) -> int:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(func.count()).select_from(Run))).scalar_one()

    async def tasks(self) -> Sequence[Any]:
        query = select(Task.__table__).order_by(Task.created_at, Task.id)
        async with self.engine.connect() as conn:
            return list(await conn.execute(query))

    async def aggregates(self, run_id: str = "run-1") -> dict[str, Any]:
        run = await self.run(run_id)
        return {name: getattr(run, name) for name in AGGREGATES}

    async def sums_over_tasks(self, run_id: str = "run-1") -> dict[str, Any]:
        """The run's aggregates as computed from its task rows, plus its latest final time."""
        final = Task.status.in_(FINAL_STATUSES)
        last = Task.retried.is_(False)
        query = select(
            func.count().filter(last).label("task_count"),
            func.count().filter(last, Task.status.in_(["error", "timeout"])).label("error_count"),
            func.coalesce(func.sum(Task.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(Task.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(Task.total_tokens), 0).label("total_tokens"),
            func.sum(Task.cost).label("total_cost"),
            func.count()
            .filter(
                final,
                Task.cost.is_(None),
                or_(Task.total_tokens.is_not(None), Task.status.not_in(["error", "timeout"])),
            )
            .label("unpriced_task_count"),
            func.max(case((final, func.coalesce(Task.completed_at, Task.created_at)))).label(
                "last_final_at"
            ),
        ).where(Task.run_id == run_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).one()._asdict()
        row["total_cost"] = row["total_cost"] or Decimal(0)
        return row

    async def rollups(self) -> dict[tuple, dict[str, Any]]:
        """`usage_hourly` by key (hour, model, provider, user, owner) → its counters."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(usage_hourly_table))).all()
        rollups = {}
        for row in rows:
            fields = row._asdict()
            key = (fields.pop("hour"), *(fields.pop(name) for name in KEY_NAMES))
            assert fields.pop("key_digest") == key_digest(key)
            rollups[key] = fields
        return rollups

    async def sums_per_rollup_key(self) -> dict[tuple, dict[str, Any]]:
        """What `usage_hourly` must hold, summed here from the task rows."""
        sums: dict[tuple, dict[str, Any]] = {}
        for task in await self.tasks():
            created = _utc(task.created_at).replace(minute=0, second=0, microsecond=0)
            key = (created, task.upstream_model, task.provider, task.user_id, task.owner)
            row = sums.setdefault(key, dict.fromkeys(USAGE_COUNTERS, 0) | {"cost": Decimal(0)})
            counted = not task.retried
            row["tasks"] += 1
            row["requests"] += counted
            row["errors"] += counted and task.status in ("error", "timeout")
            for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
                row[name] += getattr(task, name) or 0
            if task.cost is not None:
                row["cost"] += task.cost
                row["priced"] += 1
            if task.time_to_first_token_ms is not None:
                row[TTFT_COLUMNS[bucket_of(task.time_to_first_token_ms)]] += 1
        return sums

    async def assert_rollups_match_tasks(self) -> None:
        assert await self.rollups() == await self.sums_per_rollup_key()

    async def assert_aggregates_match_tasks(self, run_id: str = "run-1") -> None:
        await self.assert_rollups_match_tasks()
        await self.assert_last_attempts_are_not_retried(run_id)
        expected = await self.sums_over_tasks(run_id)
        last = expected.pop("last_final_at")
        assert await self.aggregates(run_id) == expected
        if last is not None:
            assert (await self.run(run_id)).last_message_at == _utc(last)

    async def assert_last_attempts_are_not_retried(self, run_id: str = "run-1") -> None:
        """Recomputed here from the rows, not with the code under test: of each call (its
        first attempt's id), exactly the highest (attempt, created_at, id) is not retried."""
        rows = [t for t in await self.tasks() if t.run_id == run_id]
        calls: dict[str, list[Any]] = {}
        for row in rows:
            calls.setdefault(row.attempt_of or row.id, []).append(row)
        for attempts in calls.values():
            last = max(attempts, key=lambda t: (t.attempt, t.created_at, t.id))
            assert {t.id: t.retried for t in attempts} == {t.id: t is not last for t in attempts}, (
                attempts
            )


def _utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite: max() over the stored text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@pytest.fixture
def records() -> Records:
    return Records()


@pytest.fixture
def probe(engine: AsyncEngine) -> Probe:
    return Probe(engine)


@pytest.fixture
def probe_for() -> type[Probe]:
    """`probe_for(engine)`: a probe of an engine the test made itself."""
    return Probe
