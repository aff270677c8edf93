"""`kill -9`: the next start replays the dead process's spool and closes the tasks it left open;
a process that is alive keeps its tasks.

The guarantee checked: while the database is down, a record submitted `recording.spool_after`
seconds before the kill (0.2 s here, plus an fsync) is on disk or in the database, so every call
the client saw complete by then is `completed` after the restart. Younger ones may be lost with
the process's memory.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.faults.conftest import STOPPED_MESSAGE, Call, stream_call, wait_for

pytestmark = pytest.mark.faults

CONCURRENCY, RUNS = 20, 10
SPOOL_AFTER = 0.2
FSYNC_SLACK = 0.3  # an fsync and the scheduling around it, on a busy test machine


async def keep_calling(url: str, stop: asyncio.Event, calls: list[Call]) -> None:
    """CONCURRENCY clients calling back to back until `stop` is set."""
    async with httpx.AsyncClient(timeout=30) as client:

        async def client_loop(n: int) -> None:
            await asyncio.sleep(n * 0.06)  # staggered, so calls end at every moment
            i = 0
            while not stop.is_set():
                calls.append(await stream_call(client, url, f"run-{(n + i) % RUNS}"))
                i += 1

        await asyncio.gather(*(client_loop(n) for n in range(CONCURRENCY)))


async def no_open_tasks(database) -> bool:
    rows = await database.fetch(
        "SELECT count(*) FROM tasks WHERE status IN ('pending', 'streaming')"
    )
    return rows[0][0] == 0


async def test_kill_during_an_outage_loses_nothing_older_than_spool_after_and_counts_once(
    airuns_factory, forwarder, database
) -> None:
    airuns = airuns_factory(via=forwarder).start()
    stop, calls = asyncio.Event(), []
    load = asyncio.create_task(keep_calling(airuns.url, stop, calls))
    await asyncio.sleep(1.5)
    forwarder.cut()
    await asyncio.sleep(3.0)
    killed_at = time.monotonic()
    airuns.kill()
    stop.set()
    await load
    forwarder.restore()
    airuns.start()  # a new process, same spool directory

    async def recovered() -> bool:
        spools = list(airuns.spool_dir.glob("*.spool"))
        return len(spools) == 1 and await no_open_tasks(database)

    await wait_for(recovered)

    tasks = await database.tasks()
    safe = [c for c in calls if c.ok and c.ended <= killed_at - SPOOL_AFTER - FSYNC_SLACK]
    recent = [c for c in calls if c.ok and c not in safe]
    during_outage = [c for c in safe if c.ended > killed_at - 3.0]
    assert len(during_outage) > 20  # plenty of calls completed while the database was cut
    assert [c.task_id for c in safe if c.task_id not in tasks] == []
    assert {tasks[c.task_id]["status"] for c in safe} == {"completed"}
    assert len(tasks) >= len(safe)
    # In flight at the kill: started long enough before it for the start record to be on disk.
    cut_off = [t for t in tasks.values() if t["status"] == "error"]
    assert cut_off and {t["error_message"] for t in cut_off} == {STOPPED_MESSAGE}
    assert {t["status"] for t in tasks.values()} <= {"completed", "error"}
    assert await database.runs_whose_aggregates_differ_from_their_tasks() == []
    runs = await database.fetch("SELECT sum(task_count) FROM runs")
    assert runs[0][0] == len(tasks)
    print(
        f"\ncalls completed before the kill: {len(safe) + len(recent)} "
        f"({len(recent)} in its last {SPOOL_AFTER + FSYNC_SLACK}s); "
        f"tasks stored: {len(tasks)}, of them closed as error: {len(cut_off)}"
    )


async def test_restarting_a_process_leaves_a_live_process_tasks_alone(
    airuns_factory, database
) -> None:
    live = airuns_factory("live").start()
    # One spool directory for both: the live process's lock must keep its spool its own.
    other = airuns_factory("other", spool_dir=live.spool_dir).start()
    slow = {"x-mock-chunks": "30", "x-mock-chunk-delay-ms": "100"}  # ~3 s
    async with httpx.AsyncClient(timeout=30) as client:
        live_calls = [
            asyncio.create_task(stream_call(client, live.url, "live-run", slow)) for _ in range(5)
        ]
        other_calls = [
            asyncio.create_task(stream_call(client, other.url, "other-run", slow)) for _ in range(5)
        ]
        await asyncio.sleep(1.0)
        other.kill()  # mid-stream
        other.start()  # recovers at once: the killed process's spool lock is free

        async def others_closed() -> bool:
            rows = await database.fetch(
                "SELECT count(*) FROM tasks WHERE run_id = 'other-run' AND status = 'error'"
            )
            return rows[0][0] == 5

        await wait_for(others_closed, timeout=15)
        open_live = await database.fetch(
            "SELECT status FROM tasks WHERE run_id = 'live-run' AND status = 'error'"
        )
        assert open_live == []  # still streaming, untouched
        finished = await asyncio.gather(*live_calls)
        await asyncio.gather(*other_calls)

    async def live_recorded() -> bool:
        rows = await database.fetch("SELECT status FROM tasks WHERE run_id = 'live-run'")
        return [r["status"] for r in rows] == ["completed"] * 5

    assert all(c.ok for c in finished)
    await wait_for(live_recorded, timeout=10)
    tasks = await database.tasks()
    assert {t["error_message"] for t in tasks.values() if t["run_id"] == "other-run"} == {
        STOPPED_MESSAGE
    }
    assert await database.runs_whose_aggregates_differ_from_their_tasks() == []
