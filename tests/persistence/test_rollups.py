"""Usage rollups on SQLite and Postgres: `usage_hourly` equals the sums over the tasks after
concurrent writers, replays, retries, purges and the backfill; the usage report built from it
equals the exact sums over the tasks of any window (percentiles within the histogram's bound).
(Every apply, attempt and recovery test checks the rollups too:
`Probe.assert_aggregates_match_tasks`.)
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.apply import apply_batch
from persistence.models import usage_hourly_table
from persistence.queries.runs import purge_run
from persistence.queries.scope import Principal
from persistence.queries.usage import usage_report
from persistence.record import CallRecord
from persistence.rollups import backfill, key_digest
from persistence.ttft_histogram import RELATIVE_ERROR, bucket_of
from pricing.usage import Usage
from tests.support.percentiles import percentile_cont

MODELS = ("airuns-test-priced", "airuns-test-unknown-model")
STATUSES = ("completed", "completed", "completed", "error", "timeout", "cancelled")


def calls(records, count: int, seed: int, prefix: str = "t") -> list[list[CallRecord]]:
    """`count` calls spread over ~5 hours, across 3 runs and 2 users, some streaming with a
    TTFT, some retried: per call its records (start, then final), for writers to store."""
    rng = random.Random(seed)
    made = []
    for n in range(count):
        task_id = f"{prefix}{n}"
        common = {
            "run": rng.choice(["run-1", "run-2", "run-3", None]),
            "started": rng.uniform(0, 5 * 3600),
            "model": rng.choice(MODELS),
            "user_id": rng.choice(["u1", "u2", None]),
        }
        status = rng.choice(STATUSES)
        usage = Usage(rng.randint(1, 500), rng.randint(1, 90), 0) if status != "error" else None
        if usage is not None:
            usage = Usage(usage.prompt_tokens, usage.completion_tokens,
                          usage.prompt_tokens + usage.completion_tokens)  # fmt: skip
        ttft = rng.lognormvariate(math.log(300), 0.8) if rng.random() < 0.7 else None
        final = records.make(task_id, status=status, usage=usage, ttft_ms=ttft, **common)
        made.append([records.make(task_id, status="pending", **common), final])
        if rng.random() < 0.15:  # the client retried it
            retry = records.make(f"{task_id}-r", attempt=2, attempt_of=task_id, usage=None,
                                 **common | {"started": common["started"] + 1})  # fmt: skip
            made.append([retry])
    return made


async def store(engine: AsyncEngine, records, batches: list[list[CallRecord]]) -> None:
    for batch in batches:
        async with engine.begin() as conn:
            await apply_batch(conn, batch, records.prices)


async def test_rollups_equal_the_tasks_after_concurrent_writers(records, probe, engine) -> None:
    made = calls(records, 120, seed=1)
    starts = [call[0] for call in made]
    finals = [call[-1] for call in made]
    writers = [starts[i::4] + finals[(i + 1) % 4 :: 4] for i in range(4)]
    batches = [[w[i : i + 7] for i in range(0, len(w), 7)] for w in writers]
    await asyncio.gather(*(store(engine, records, b) for b in batches))
    await store(engine, records, [[call[-1] for call in made]])  # every final, at last
    await probe.assert_rollups_match_tasks()
    rollups = await probe.rollups()
    assert sum(row["tasks"] for row in rollups.values()) == len(made)
    assert any(row["errors"] for row in rollups.values())
    assert sum(row[name] for row in rollups.values() for name in row if name[:5] == "ttft_")


async def test_replaying_batches_changes_nothing(records, probe, engine) -> None:
    batch = [record for call in calls(records, 40, seed=2) for record in call]
    await store(engine, records, [batch])
    before = await probe.rollups()
    await store(engine, records, [batch, batch[::-1]])
    assert await probe.rollups() == before
    await probe.assert_rollups_match_tasks()


async def test_purging_a_run_takes_its_tasks_out(records, probe, engine) -> None:
    same_key = {"started": 60.0, "ttft_ms": 120.0, "user_id": "u1"}
    await probe.apply(records.make("a", run="run-1", **same_key),
                      records.make("b", run="run-2", **same_key),
                      records.make("c", run="run-2", started=7200.0))  # fmt: skip
    async with engine.begin() as conn:
        assert await purge_run(conn, Principal.admin(), "run-2")
    await probe.assert_rollups_match_tasks()
    (row,) = (await probe.rollups()).values()  # the emptied hour's row is gone
    assert (row["tasks"], row[f"ttft_{bucket_of(120.0):02d}"]) == (1, 1)
    async with engine.begin() as conn:
        assert await purge_run(conn, Principal.admin(), "run-1")
    assert await probe.rollups() == {}


async def test_a_purge_waits_for_a_writer_of_the_run(records, probe, engine, backend) -> None:
    """A writer holds the run's key-share lock until it commits: the purge takes a lock that
    waits for it, so the writer's tasks are subtracted too, not deleted uncounted."""
    if backend != "postgres":
        pytest.skip("several writers sharing one database is a Postgres deployment")
    await probe.apply(records.make("a", run="run-2"))
    async with engine.connect() as writer, engine.connect() as purger:
        await writer.begin()
        await apply_batch(writer, [records.make("b", run="run-2", started=5)], records.prices)
        await purger.begin()
        purge = asyncio.create_task(purge_run(purger, Principal.admin(), "run-2"))
        await asyncio.sleep(0.2)
        assert not purge.done()
        await writer.commit()
        async with asyncio.timeout(10):
            assert await purge
        await purger.commit()
    assert await probe.rollups() == {}
    assert await probe.tasks() == []


async def test_backfill_builds_what_the_writer_kept(records, probe, engine) -> None:
    await store(engine, records, calls(records, 80, seed=3))
    kept = await probe.rollups()
    async with engine.begin() as conn:
        await conn.execute(delete(usage_hourly_table))
        await conn.run_sync(backfill)
    assert await probe.rollups() == kept


async def test_long_and_wide_names_are_keys_of_their_own(records, probe) -> None:
    """A 100,000-character model and a 512-character user of 4-byte characters: the unique
    index is on a digest, so Postgres' index row limit never refuses the batch."""
    long_model, wide_user = "m" * 100_000, "\U0001d11e" * 512
    await probe.apply(records.make("a", model=long_model, user_id=wide_user),
                      records.make("b", model=long_model + "x", user_id=wide_user))  # fmt: skip
    await probe.assert_rollups_match_tasks()
    assert len(await probe.rollups()) == 2


def test_the_digest_tells_none_empty_and_shifted_values_apart() -> None:
    hour = datetime(2026, 1, 1, tzinfo=UTC)
    keys = [(hour, None, "p", "u", None), (hour, "", "p", "u", None),
            (hour, "ab", "c", None, None), (hour, "a", "bc", None, None)]  # fmt: skip
    assert len({key_digest(key) for key in keys}) == len(keys)


def exact_report(tasks: list[Any], group_by: str, since: datetime, until: datetime) -> dict:
    """The report computed here from the task rows, exact percentiles included."""
    groups: dict[Any, dict[str, Any]] = defaultdict(
        lambda: {"requests": 0, "errors": 0, "tokens": 0, "cost": None, "ttfts": []}
    )
    for task in tasks:
        created = task.created_at
        created = created if created.tzinfo else created.replace(tzinfo=UTC)
        if not since <= created < until:
            continue
        keys = {"day": created.strftime("%Y-%m-%d"), "model": task.upstream_model,
                "provider": task.provider, "user": task.user_id, "run": task.run_id}  # fmt: skip
        key = keys[group_by]
        group = groups[key]
        group["requests"] += not task.retried
        group["errors"] += not task.retried and task.status in ("error", "timeout")
        group["tokens"] += task.total_tokens or 0
        if task.cost is not None:
            group["cost"] = (group["cost"] or Decimal(0)) + task.cost
        if task.time_to_first_token_ms is not None:
            group["ttfts"].append(task.time_to_first_token_ms)
    return groups


@pytest.mark.parametrize("group_by", ["day", "model", "provider", "user", "run"])
async def test_report_equals_the_exact_sums_over_any_window(
    records, probe, engine, group_by: str
) -> None:
    await store(engine, records, calls(records, 150, seed=4))
    await store(engine, records, calls(records, 30, seed=5, prefix="late-"))
    tasks = await probe.tasks()
    t0 = records.t0
    windows = [
        (t0 - timedelta(days=1), t0 + timedelta(days=1)),  # whole hours, from the rollups
        (t0 + timedelta(minutes=17), t0 + timedelta(hours=3, minutes=41)),  # partial ends
        (t0 + timedelta(minutes=5), t0 + timedelta(minutes=50)),  # inside one hour
        (t0.replace(minute=0), t0 + timedelta(hours=2, seconds=1)),
    ]
    for since, until in windows:
        async with engine.connect() as conn:
            rows = await usage_report(conn, Principal.admin(), group_by, since, until)
        expected = exact_report(tasks, group_by, since, until)
        assert {row.key for row in rows} == set(expected), (since, until)
        for row in rows:
            want = expected[row.key]
            assert (row.requests, row.errors, row.total_tokens, row.cost) == (
                want["requests"], want["errors"], want["tokens"], want["cost"]
            )  # fmt: skip
            for fraction, got in ((0.5, row.ttft_p50_ms), (0.95, row.ttft_p95_ms)):
                exact = percentile_cont(want["ttfts"], fraction)
                assert got == (None if exact is None else pytest.approx(exact, rel=RELATIVE_ERROR))
