"""A database outage does not touch proxying, and loses or double-counts no record."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.faults.conftest import stream_call, wait_for

pytestmark = pytest.mark.faults

CALLS, CONCURRENCY, RUNS = 200, 20, 10
CUT_AT, CUT_FOR = 1.0, 10.0


async def test_ten_second_outage_during_200_streams_loses_and_doubles_nothing(
    airuns_factory, forwarder, database
) -> None:
    airuns = airuns_factory(via=forwarder).start()
    limit = asyncio.Semaphore(CONCURRENCY)
    readiness: list[dict] = []

    async with httpx.AsyncClient(timeout=30) as client:

        async def one(i: int):
            async with limit:
                return await stream_call(client, airuns.url, f"run-{i % RUNS}")

        async def outage() -> None:
            await asyncio.sleep(CUT_AT)
            forwarder.cut()
            await asyncio.sleep(CUT_FOR / 2)
            readiness.append((await client.get(f"{airuns.url}/readyz")).json())
            await asyncio.sleep(CUT_FOR / 2)
            forwarder.restore()

        started = time.monotonic()
        calls, _ = await asyncio.gather(asyncio.gather(*(one(i) for i in range(CALLS))), outage())
        elapsed = time.monotonic() - started

        async def all_stored() -> bool:
            ready = (await client.get(f"{airuns.url}/readyz")).json()
            return ready["backlog"] == 0 and len(await database.tasks()) == CALLS

        await wait_for(all_stored)

    assert [c.error for c in calls if not c.ok] == []
    assert elapsed > CUT_AT + CUT_FOR  # the calls really ran through the outage
    assert max(c.ended - c.started for c in calls) < 5  # ~1.2 s each, outage or not
    [during] = readiness
    assert during["status"] == "unavailable" and during["spooled"] > 0 and during["dropped"] == 0
    tasks = await database.tasks()
    assert set(tasks) == {c.task_id for c in calls}
    assert {t["status"] for t in tasks.values()} == {"completed"}
    runs = await database.fetch("SELECT sum(task_count) AS n, count(*) AS runs FROM runs")
    assert (runs[0]["n"], runs[0]["runs"]) == (CALLS, RUNS)
    assert await database.runs_whose_aggregates_differ_from_their_tasks() == []
    [spool] = airuns.spool_dir.iterdir()  # the live process's own, back to its header
    assert spool.read_bytes().count(b"\n") == 1
