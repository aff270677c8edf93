"""Crash recovery on SQLite and Postgres: dead processes' spools are replayed and the tasks they
left open are closed as `error`, with exact run aggregates; a live process's tasks are not."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from persistence.instances import beat
from persistence.models import instances_table
from persistence.recovery import STOPPED_MESSAGE, Recovery
from persistence.settings import WriterSettings
from persistence.spool import Spool
from persistence.writer import BatchWriter

ME, LIVE, DEAD, GONE = "me:1:aa", "live:2:bb", "dead:3:cc", "gone:4:dd"


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
async def instances(engine):
    """Register instances: `await instances(id, expired=bool)`; none are left from before."""
    async with engine.begin() as conn:
        await conn.execute(delete(instances_table))

    async def register(instance_id: str, expired: bool = False) -> None:
        now = datetime.now(UTC) - timedelta(minutes=10 if expired else 0)
        async with engine.begin() as conn:
            await beat(conn, instance_id, now, 5.0, now)

    return register


async def instance_ids(engine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(select(instances_table.c.id))).scalars())


def recovery(engine, records, spool_dir: Path | None = None) -> Recovery:
    return Recovery(engine, records.prices, ME, spool_dir, batch_size=2)


async def test_open_tasks_of_dead_instances_are_closed_and_live_ones_are_left_alone(
    engine, records, probe, instances
) -> None:
    await instances(ME)
    await instances(LIVE)
    await instances(DEAD, expired=True)
    await probe.apply(
        records.make("done", instance_id=DEAD),
        records.make("dead-pending", status="pending", started=1, instance_id=DEAD),
        records.make("dead-streaming", status="pending", started=2, instance_id=DEAD),
        records.make("no-row", status="pending", started=3, instance_id="never-registered"),
        records.make("no-instance", status="pending", started=4, instance_id=None),
        records.make("live", status="pending", started=5, instance_id=LIVE),
        records.make("mine", status="pending", started=6, instance_id=ME),
    )
    await probe.apply(
        records.make("dead-streaming", status="streaming", started=2, http_status=200)
    )
    closed = await recovery(engine, records).close_orphans(set())
    tasks = {t.id: t for t in await probe.tasks()}
    assert closed == 4
    assert {i for i, t in tasks.items() if t.status == "error"} == {
        "dead-pending",
        "dead-streaming",
        "no-row",
        "no-instance",
    }
    assert (tasks["live"].status, tasks["mine"].status) == ("pending", "pending")
    streaming = tasks["dead-streaming"]
    assert (streaming.error_message, streaming.http_status) == (STOPPED_MESSAGE, 200)
    assert streaming.request == {"model": records.make("x").model, "messages": []}
    assert (streaming.prompt_tokens, streaming.cost, streaming.usage_source) == (
        None,
        None,
        "missing",
    )
    run = await probe.run()
    assert (run.task_count, run.error_count, run.unpriced_task_count) == (7, 4, 0)
    await probe.assert_aggregates_match_tasks()
    assert await instance_ids(engine) == {ME, LIVE}  # the expired row is gone


async def test_closing_orphans_again_changes_nothing(engine, records, probe, instances) -> None:
    await probe.apply(records.make("a", status="pending", instance_id=DEAD))
    await recovery(engine, records).close_orphans(set())
    before = await probe.aggregates()
    assert await recovery(engine, records).close_orphans(set()) == 0
    assert await probe.aggregates() == before


async def test_concurrent_recoveries_close_each_task_once(engine, records, probe, instances):
    await probe.apply(
        *(records.make(f"t{i}", status="pending", started=i, instance_id=DEAD) for i in range(20))
    )
    rivals = [Recovery(engine, records.prices, f"r{i}:1:aa", None, batch_size=3) for i in range(3)]
    await asyncio.gather(*(r.close_orphans(set()) for r in rivals))
    run = await probe.run()
    assert (run.task_count, run.error_count) == (20, 20)
    await probe.assert_aggregates_match_tasks()


async def test_a_dead_spool_is_replayed_then_its_open_tasks_closed(
    engine, records, probe, instances, spool_dir
) -> None:
    await instances(GONE)  # a fresh heartbeat: only its free spool lock says it is gone
    await probe.apply(records.make("written", instance_id=GONE))
    spool = Spool.create(spool_dir, GONE)
    spool.append(
        [
            records.make("written", instance_id=GONE),  # written before the crash, too
            records.make("finished", status="pending", started=1, instance_id=GONE),
            records.make("finished", started=1, instance_id=GONE),
            records.make("cut-off", status="pending", started=2, instance_id=GONE),
        ]
    )
    spool.close()  # what kill -9 leaves: the records, no lock
    await recovery(engine, records, spool_dir).run()
    tasks = {t.id: t.status for t in await probe.tasks()}
    assert tasks == {"written": "completed", "finished": "completed", "cut-off": "error"}
    run = await probe.run()
    assert (run.task_count, run.error_count, run.total_cost) == (3, 1, 2 * records.usage_cost)
    await probe.assert_aggregates_match_tasks()
    assert list(spool_dir.iterdir()) == []  # replayed, then removed
    assert await instance_ids(engine) == set()


async def test_a_spool_replayed_twice_counts_nothing_twice(
    engine, records, probe, instances, spool_dir
) -> None:
    batch = [records.make(f"t{i}", started=i, instance_id=GONE) for i in range(5)]
    for _ in range(2):  # as after a crash between the replay and the spool's removal
        spool = Spool.create(spool_dir, GONE)
        spool.append(batch)
        spool.close()
        await recovery(engine, records, spool_dir).run()
    run = await probe.run()
    assert (run.task_count, run.total_cost) == (5, 5 * records.usage_cost)
    await probe.assert_aggregates_match_tasks()


async def test_a_live_writer_keeps_its_tasks_while_another_one_starts(
    engine, records, probe, instances, spool_dir
) -> None:
    # Beats 0.2 s apart hold a lease of several beats: a writer slowed by a busy machine (its
    # beat a few hundred ms late) is not taken for dead.
    settings = WriterSettings(spool_dir=str(spool_dir), heartbeat_interval=0.2)
    live = BatchWriter(engine, records.prices, settings, instance_id=LIVE)
    await live.start()
    live.submit(records.make("in-flight", status="pending"))
    while live.written < 1:
        await asyncio.sleep(0.01)
    newcomer = BatchWriter(engine, records.prices, settings, instance_id=ME)
    await newcomer.start()
    await asyncio.sleep(1.0)  # several heartbeats and recovery passes of both
    assert [t.status for t in await probe.tasks()] == ["pending"]
    live.submit(records.make("in-flight"))
    await live.stop()
    await newcomer.stop()
    assert [t.status for t in await probe.tasks()] == ["completed"]
    await probe.assert_aggregates_match_tasks()


async def test_a_writer_registers_its_instance_and_removes_it_on_a_clean_stop(
    engine, records, instances, spool_dir
) -> None:
    settings = WriterSettings(spool_dir=str(spool_dir), heartbeat_interval=0.05)
    writer = BatchWriter(engine, records.prices, settings, instance_id=ME)
    await writer.start()
    for _ in range(100):
        if await instance_ids(engine) == {ME}:
            break
        await asyncio.sleep(0.01)
    async with engine.connect() as conn:
        row = (await conn.execute(select(instances_table))).one()
    assert row.expires_at - row.heartbeat_at == timedelta(seconds=0.15)  # 3 heartbeats
    await writer.stop()
    assert await instance_ids(engine) == set()
