"""apply_batch with retried calls: a run counts a call once, by its last attempt, and every
attempt's tokens and cost, whatever order the records come in, however often, and with several
writers at once."""

from __future__ import annotations

import asyncio
import itertools
import random
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from persistence.apply import apply_batch
from persistence.models import tasks_table
from persistence.queries.scope import Principal
from persistence.queries.tasks import get_task
from persistence.queries.usage import usage_report
from persistence.recovery import orphan_record
from pricing.usage import Usage

SMALL = Usage(prompt_tokens=1000, completion_tokens=10, total_tokens=1010)
SMALL_COST = Decimal("0.00307")  # 1000 × 3/1M + 10 × 7/1M


def sdk_retries(records, *, last: str = "completed", first: str = "t1") -> list:
    """What an SDK call that failed twice leaves: three attempts, each a pending and a final
    record; the second failure came with usage (a stream that broke off), the 502 without."""
    ids = [first, f"{first}-2", f"{first}-3"]
    finals = [
        records.make(ids[0], status="error", http_status=502, usage=None, started=0),
        records.make(ids[1], status="error", usage=SMALL, started=1, attempt=2, attempt_of=first),
        records.make(ids[2], status=last, started=2, attempt=3, attempt_of=first),
    ]
    pendings = [
        records.make(f.task_id, status="pending", started=i, attempt=f.attempt,
                     attempt_of=f.attempt_of)
        for i, f in enumerate(finals)
    ]  # fmt: skip
    return [record for pair in zip(pendings, finals, strict=True) for record in pair]


def one_call_of_three_attempts(records) -> dict:
    """The run of `sdk_retries`: one call, no error (its last attempt succeeded), every
    attempt's tokens and cost; the 502 had no usage, so nothing to price."""
    return {
        "task_count": 1,
        "error_count": 0,
        "prompt_tokens": 2000,
        "completion_tokens": 110,
        "total_tokens": 2110,
        "total_cost": records.usage_cost + SMALL_COST,
        "unpriced_task_count": 0,
    }


async def test_a_retried_call_is_one_request_with_every_attempts_cost(records, probe) -> None:
    for record in sdk_retries(records):
        await probe.apply(record)
    tasks = await probe.tasks()
    assert [(t.id, t.attempt, t.attempt_of, t.retried) for t in tasks] == [
        ("t1", 1, None, True),
        ("t1-2", 2, "t1", True),
        ("t1-3", 3, "t1", False),
    ]
    assert await probe.aggregates() == one_call_of_three_attempts(records)
    await probe.assert_aggregates_match_tasks()


async def test_the_last_attempt_decides_whether_the_call_failed(records, probe) -> None:
    for record in sdk_retries(records, last="timeout"):
        await probe.apply(record)
    run = await probe.run()
    assert (run.task_count, run.error_count) == (1, 1)
    await probe.assert_aggregates_match_tasks()


async def test_a_call_under_way_again_is_not_an_error_until_its_retry_fails(records, probe) -> None:
    retries = sdk_retries(records)
    await probe.apply(*retries[:2])  # the first attempt failed
    assert ((await probe.run()).task_count, (await probe.run()).error_count) == (1, 1)
    await probe.apply(retries[2])  # its retry started
    assert ((await probe.run()).task_count, (await probe.run()).error_count) == (1, 0)
    await probe.assert_aggregates_match_tasks()


ORDERS = [
    "forward",
    "reverse",
    "one batch",
    "finals first",
    *(f"shuffled {seed}" for seed in range(4)),
]


@pytest.mark.parametrize("order", ORDERS)
async def test_any_arrival_order_and_replay_give_the_same_run(records, probe, order) -> None:
    batch = sdk_retries(records)
    if order == "reverse":
        batch.reverse()
    elif order == "finals first":
        batch = batch[1::2] + batch[0::2]
    elif order.startswith("shuffled"):
        random.Random(int(order.split()[1])).shuffle(batch)
    groups = [batch] if order == "one batch" else [[record] for record in batch]
    for group in groups:
        await probe.apply(*group)
    expected = one_call_of_three_attempts(records)
    assert await probe.aggregates() == expected
    for group in groups:  # replayed: a spool read again, a batch after a lost commit
        await probe.apply(*group)
    await probe.apply(*batch)
    assert await probe.aggregates() == expected
    await probe.assert_aggregates_match_tasks()


async def test_a_retry_whose_first_attempt_was_never_stored_counts_the_call(records, probe) -> None:
    await probe.apply(records.make("r2", status="error", usage=None, attempt=2, attempt_of="gone"))
    run = await probe.run()
    assert (run.task_count, run.error_count) == (1, 1)
    await probe.apply(records.make("r3", started=1, attempt=3, attempt_of="gone"))
    run = await probe.run()
    assert (run.task_count, run.error_count, run.total_tokens) == (1, 0, 1100)
    await probe.assert_aggregates_match_tasks()


async def test_a_first_attempt_stored_after_its_retry_joins_its_call(records, probe) -> None:
    await probe.apply(records.make("t1-2", started=1, attempt=2, attempt_of="t1"))
    await probe.apply(records.make("t1", status="error", usage=None, started=0))
    (first, retry) = await probe.tasks()
    assert (first.retried, retry.retried) == (True, False)
    run = await probe.run()
    assert (run.task_count, run.error_count, run.unpriced_task_count) == (1, 0, 0)
    await probe.assert_aggregates_match_tasks()


async def test_recovery_closing_a_retried_attempt_adds_no_error(records, probe) -> None:
    """A first attempt left open by a dead process (or drained long after its client
    retried) is closed as `error`: its call is counted by the retry, which succeeded."""
    await probe.apply(records.make("t1", status="streaming", started=0))
    await probe.apply(records.make("t1-2", started=1, attempt=2, attempt_of="t1"))
    (open_first, _) = await probe.tasks()
    await probe.apply(orphan_record(open_first))
    (first, retry) = await probe.tasks()
    assert (first.status, first.retried, retry.retried) == ("error", True, False)
    run = await probe.run()
    assert (run.task_count, run.error_count) == (1, 0)
    await probe.assert_aggregates_match_tasks()


async def test_attempts_in_another_run_are_a_call_of_their_own(records, probe) -> None:
    await probe.apply(records.make("t1", status="error", usage=None))
    await probe.apply(records.make("t1-2", run="run-2", started=1, attempt=2, attempt_of="t1"))
    assert [t.retried for t in await probe.tasks()] == [False, False]
    for run_id in ("run-1", "run-2"):
        assert (await probe.run(run_id)).task_count == 1
        await probe.assert_aggregates_match_tasks(run_id)


async def test_attempts_without_a_run_are_settled_too(records, probe, engine) -> None:
    await probe.apply(records.make("t1", run=None, status="error", usage=None))
    await probe.apply(records.make("t1-2", run=None, started=1, attempt=2, attempt_of="t1"))
    assert [(t.id, t.retried) for t in await probe.tasks()] == [("t1", True), ("t1-2", False)]
    async with engine.connect() as conn:
        (row,) = await usage_report(conn, Principal.admin(), "run", records.t0)
    assert (row.key, row.requests, row.errors, row.total_tokens) == (None, 1, 0, 1100)


async def test_usage_counts_requests_and_errors_once_per_call(records, probe, engine) -> None:
    for record in [*sdk_retries(records), *sdk_retries(records, last="error", first="u1")]:
        await probe.apply(record)
    async with engine.connect() as conn:
        (row,) = await usage_report(conn, Principal.admin(), "run", records.t0)
    assert (row.requests, row.errors) == (2, 1)
    assert (row.total_tokens, row.cost) == (2 * 2110, 2 * (records.usage_cost + SMALL_COST))


async def test_a_task_lists_the_attempts_of_its_call(records, probe, engine) -> None:
    for record in sdk_retries(records):
        await probe.apply(record)
    await probe.apply(records.make("other", started=9))
    async with engine.connect() as conn:
        for task_id in ("t1", "t1-2", "t1-3"):
            task = await get_task(conn, Principal.admin(), task_id)
            attempts = sorted(task.attempts, key=lambda a: a["attempt"])
            assert attempts == [
                {"id": "t1", "attempt": 1, "status": "error", "http_status": 502, "retried": True},
                {"id": "t1-2", "attempt": 2, "status": "error", "http_status": None,
                 "retried": True},
                {"id": "t1-3", "attempt": 3, "status": "completed", "http_status": None,
                 "retried": False},
            ]  # fmt: skip
        alone = await get_task(conn, Principal.admin(), "other")
        assert [a["id"] for a in alone.attempts] == ["other"]


async def test_concurrent_writers_count_each_call_once(records, probe, engine) -> None:
    """Attempts of the same calls stored by writers at once (several processes on one
    Postgres; on SQLite they queue for the write lock)."""
    calls = 12
    attempts = [
        [
            records.make(f"c{call}" if n == 1 else f"c{call}-{n}", started=n,
                         status="error" if n < 3 else "completed", usage=None if n < 3 else SMALL,
                         attempt=n, attempt_of=None if n == 1 else f"c{call}")
            for call in range(calls)
        ]
        for n in (1, 2, 3)
    ]  # fmt: skip
    writers = [probe.apply(*batch) for batch in itertools.chain(attempts, reversed(attempts))]
    await asyncio.gather(*writers)
    run = await probe.run()
    assert (run.task_count, run.error_count, run.total_tokens) == (calls, 0, calls * 1010)
    await probe.assert_aggregates_match_tasks()
    async with engine.connect() as conn:
        not_retried = select(tasks_table.c.id).where(tasks_table.c.retried.is_(False))
        assert len((await conn.execute(not_retried)).all()) == calls


async def _waiting_on_a_lock(engine) -> None:
    """Until some other session of this database waits on a lock (Postgres)."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(10), engine.connect() as conn:
        while not (await conn.execute(waiting)).scalar_one():
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("run", ["run-1", None])
async def test_two_writers_storing_retries_of_one_call_at_once(
    records, probe, engine, backend, run
) -> None:
    """Two processes store attempts 2 and 3 of one call in overlapping transactions: the one
    that settles second must see the other's row, in a run (its lock) or outside any (a lock
    of the call's own)."""
    if backend != "postgres":
        pytest.skip("several writers sharing one database is a Postgres deployment")
    await probe.apply(records.make("x", run=run, status="error", usage=None))
    second = records.make(
        "x-2", run=run, status="error", started=1, attempt=2, attempt_of="x", usage=None
    )
    third = records.make("x-3", run=run, started=2, attempt=3, attempt_of="x")
    async with engine.connect() as one, engine.connect() as other:
        await one.begin()
        await apply_batch(one, [second], records.prices)
        await other.begin()
        blocked = asyncio.create_task(apply_batch(other, [third], records.prices))
        await _waiting_on_a_lock(engine)
        await one.commit()
        await blocked
        await other.commit()
    not_retried = [t.id for t in await probe.tasks() if not t.retried]
    assert not_retried == ["x-3"]
    if run is not None:
        await probe.assert_aggregates_match_tasks(run)
    async with engine.connect() as conn:
        (row,) = await usage_report(conn, Principal.admin(), "run", records.t0)
    assert (row.requests, row.errors) == (1, 0)


async def test_an_attempt_naming_a_task_of_another_run_touches_nothing_of_that_run(
    records, probe, engine, backend
) -> None:
    """Stored at the same moment as that run's own retry: the other run's rows are neither
    read nor locked, so that run's writer alone settles its call. (Another user: writers that
    add to one usage-rollup row queue on it, as they do on one run.)"""
    if backend != "postgres":
        pytest.skip("several writers sharing one database is a Postgres deployment")
    await probe.apply(records.make("x", status="error", usage=None))
    own = records.make("x-2", status="error", started=1, attempt=2, attempt_of="x", usage=None)
    stray = records.make("z", run="run-2", started=2, attempt=2, attempt_of="x", user_id="u2")
    async with engine.connect() as one, engine.connect() as other:
        await one.begin()
        await apply_batch(one, [own], records.prices)
        await other.begin()
        async with asyncio.timeout(10):  # does not wait for run-1's writer
            await apply_batch(other, [stray], records.prices)
        await other.commit()
        await one.commit()
    assert {t.id: t.retried for t in await probe.tasks()} == {"x": True, "x-2": False, "z": False}
    for run_id in ("run-1", "run-2"):
        assert (await probe.run(run_id)).task_count == 1
        await probe.assert_aggregates_match_tasks(run_id)
