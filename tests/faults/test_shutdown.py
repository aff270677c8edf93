"""SIGTERM: stop accepting, let in-flight calls finish, flush records (to the database, else to
the spool, quickly), exit 0."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.faults.conftest import stream_call, wait_for

pytestmark = pytest.mark.faults

SLOW = {"x-mock-chunks": "25", "x-mock-chunk-delay-ms": "100"}  # ~2.5 s


async def test_sigterm_lets_a_stream_in_flight_finish_then_exits_0(airuns_factory, database):
    airuns = airuns_factory().start()
    async with httpx.AsyncClient(timeout=30) as client:
        call = asyncio.create_task(stream_call(client, airuns.url, "graceful", SLOW))
        await wait_for(lambda: _has_task(database, "streaming"), timeout=10, every=0.05)
        airuns.terminate()
        await asyncio.sleep(0.5)
        with pytest.raises(httpx.ConnectError):  # no longer accepting
            await client.get(f"{airuns.url}/healthz")
        finished = await call
    assert finished.ok, finished.error
    assert await asyncio.to_thread(airuns.wait, 15) == 0
    [task] = (await database.tasks()).values()
    assert (task["id"], task["status"]) == (finished.task_id, "completed")
    assert await database.runs_whose_aggregates_differ_from_their_tasks() == []
    assert list(airuns.spool_dir.iterdir()) == []  # nothing left over


async def test_sigterm_during_an_outage_spools_quickly_and_the_next_start_replays(
    airuns_factory, forwarder, database
):
    airuns = airuns_factory(via=forwarder).start()
    forwarder.cut()
    async with httpx.AsyncClient(timeout=30) as client:
        calls = await asyncio.gather(*(stream_call(client, airuns.url, "cut") for _ in range(10)))
    assert all(c.ok for c in calls)
    started = time.monotonic()
    airuns.terminate()
    assert await asyncio.to_thread(airuns.wait, 15) == 0
    assert time.monotonic() - started < 5  # it did not wait for the database
    [spool] = airuns.spool_dir.iterdir()
    assert spool.read_bytes().count(b"\n") > 10  # header + 10 calls' records
    forwarder.restore()
    airuns.start()

    async def replayed() -> bool:
        tasks = await database.tasks()
        return len(tasks) == 10 and {t["status"] for t in tasks.values()} == {"completed"}

    await wait_for(replayed)
    assert set(await database.tasks()) == {c.task_id for c in calls}
    assert await database.runs_whose_aggregates_differ_from_their_tasks() == []
    assert not spool.exists()


async def _has_task(database, status: str) -> bool:
    try:
        rows = await database.fetch("SELECT status FROM tasks")
    except Exception:  # not migrated yet
        return False
    return [r["status"] for r in rows] == [status]
