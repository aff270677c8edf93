"""BatchWriter against real databases: an unreachable one is a closed port or a missing file,
a hanging one a forwarder that holds connections without forwarding them."""

import asyncio
import json
import random
import shutil
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.deadletter import dead_letter_path
from persistence.engine import create_engine
from persistence.record import CallRecord, RunInfo
from persistence.settings import WriterSettings
from persistence.spool import SUFFIX, DeadSpool, Spool, claim_dead_spools, spool_path
from persistence.writer import BatchWriter
from pricing.usage import Usage

FAST_RETRY = {"first_backoff": 0.01, "max_backoff": 0.05}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unreachable_engine() -> AsyncEngine:
    return create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/airuns")


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


def writer_for(engine: AsyncEngine, records, spool_dir: Path, **settings) -> BatchWriter:
    settings = {"spool_dir": str(spool_dir), "heartbeat_interval": 0.2} | settings
    return BatchWriter(engine, records.prices, WriterSettings(**FAST_RETRY | settings))


def spooled_records(spool_dir: Path) -> list[CallRecord]:
    """What the spools in `spool_dir` hold, read as a replaying process would (the writer must
    be stopped: a live spool is locked)."""
    spools: list[DeadSpool] = claim_dead_spools(spool_dir)
    try:
        return [r for spool in spools for batch in spool.batches(1000) for r in batch]
    finally:
        for spool in spools:
            spool.release()


async def test_submit_never_blocks_and_drops_nothing_when_the_database_is_down(
    records, spool_dir
) -> None:
    engine = unreachable_engine()
    writer = writer_for(
        engine, records, spool_dir, queue_size=100, batch_size=10, flush_interval=0.001
    )
    await writer.start()
    made = [records.make(f"t{i}") for i in range(10_000)]
    started = time.perf_counter()
    for record in made:  # no I/O, no wait: 10,000 in well under a second even on a busy box
        writer.submit(record)
    assert time.perf_counter() - started < 1.0
    await wait_until(lambda: writer.status()["spooled"] >= 9_900)
    assert len(writer._backlog.memory) <= 100
    await writer.stop(timeout=0.1)
    await engine.dispose()
    assert writer.status() == {"backlog": 10_000, "spooled": 10_000, "dropped": 0, "rejected": 0}
    assert [r.task_id for r in spooled_records(spool_dir)] == [f"t{i}" for i in range(10_000)]


async def test_records_that_wait_longer_than_spool_after_are_on_disk(records, spool_dir) -> None:
    engine = unreachable_engine()
    writer = writer_for(engine, records, spool_dir, spool_after=0.1)
    await writer.start()
    writer.submit(records.make("early"))
    await asyncio.sleep(0.25)
    writer.submit(records.make("late"))
    assert writer.status()["spooled"] == 1  # "early" waited 0.25s > spool_after; "late" did not
    spool = next(spool_dir.glob(f"*{SUFFIX}"))
    assert b'"task_id":"early"' in spool.read_bytes()
    await writer.stop(timeout=0.1)
    await engine.dispose()


async def test_a_healthy_database_never_touches_the_spool(records, engine, probe, spool_dir):
    writer = writer_for(engine, records, spool_dir, batch_size=50, flush_interval=0.005)
    await writer.start()
    for i in range(200):
        writer.submit(records.make(f"t{i:03}", status="pending", started=i))
        writer.submit(records.make(f"t{i:03}", started=i))
        if i % 20 == 0:
            await asyncio.sleep(0.01)
    spool = next(spool_dir.glob(f"*{SUFFIX}"))
    await writer.stop()
    assert (writer.spooled, writer.written, writer.backlog) == (0, 400, 0)
    assert not spool.exists()  # an empty spool is removed on a clean stop
    assert (await probe.run()).task_count == 200


async def test_overflow_is_spooled_and_replayed_in_order(
    records, database_url, tmp_path, spool_dir, probe_for
) -> None:
    async with database_appearing_later(database_url, tmp_path) as (url, appear):
        engine = create_engine(url)
        writer = writer_for(engine, records, spool_dir, queue_size=3, batch_size=2)
        await writer.start()
        for i in range(10):
            run = RunInfo("run-1", metadata={"last": i})
            request = {"model": "m", "messages": [{"role": "user", "content": f"call {i}"}]}
            writer.submit(records.make(f"t{i}", run=run, started=i, request=request))
        await wait_until(lambda: writer.status()["spooled"] >= 7)
        await appear()
        await writer.stop(timeout=10)
        probe = probe_for(engine)
        run = await probe.run()
        tasks = await probe.tasks()
        await probe.assert_aggregates_match_tasks()
        await engine.dispose()
    assert writer.status() == {"backlog": 0, "spooled": 0, "dropped": 0, "rejected": 0}
    assert [t.id for t in tasks] == [f"t{i}" for i in range(10)]
    # Written in submission order: the first call created the run, the last merged last.
    assert (run.name, run.metadata, run.task_count) == ("call 0", {"last": 9}, 10)


async def test_without_a_usable_spool_the_oldest_start_records_are_dropped_first(
    records, engine, probe, tmp_path
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    writer = writer_for(engine, records, not_a_directory, queue_size=3)
    await writer.start()
    writer.submit(records.make("a", status="pending"))
    writer.submit(records.make("b", status="pending", started=1))
    writer.submit(records.make("a"))
    writer.submit(records.make("b", started=1))  # drops a's start
    writer.submit(records.make("c", started=2))  # drops b's start
    assert writer.dropped == 2
    await writer.stop()
    assert [(t.id, t.status) for t in await probe.tasks()] == [
        ("a", "completed"),
        ("b", "completed"),
        ("c", "completed"),
    ]
    await probe.assert_aggregates_match_tasks()


async def test_without_a_usable_spool_a_full_buffer_of_finals_drops_the_oldest(
    records, engine, probe, tmp_path
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    writer = writer_for(engine, records, not_a_directory, queue_size=2)
    await writer.start()
    for i, task_id in enumerate(["x", "y", "z"]):
        writer.inflight.claim(task_id)
        writer.submit(records.make(task_id, started=i))
    assert writer.dropped == 1
    assert "x" not in writer.inflight and "y" in writer.inflight  # a lost record is not in flight
    await writer.stop()
    assert [t.id for t in await probe.tasks()] == ["y", "z"]


async def test_stop_drains_everything(records, engine, probe, spool_dir) -> None:
    writer = writer_for(engine, records, spool_dir, batch_size=7, flush_interval=60)
    await writer.start()
    for i in range(30):
        writer.submit(records.make(f"t{i:02}", status="pending", started=i))
        writer.submit(records.make(f"t{i:02}", started=i))
    await writer.stop()
    assert (writer.backlog, writer.written, writer.dropped) == (0, 60, 0)
    run = await probe.run()
    assert (run.task_count, run.total_cost) == (30, 30 * records.usage_cost)
    await probe.assert_aggregates_match_tasks()


async def test_flushes_after_the_interval_without_waiting_for_a_full_batch(
    records, engine, probe, spool_dir
) -> None:
    writer = writer_for(engine, records, spool_dir, batch_size=500, flush_interval=0.01)
    await writer.start()
    writer.submit(records.make("t1"))
    await wait_until(lambda: writer.written == 1)
    assert [t.id for t in await probe.tasks()] == ["t1"]
    await writer.stop()


async def test_start_and_final_in_one_batch_cost_one_row_write(
    records, engine, probe, spool_dir
) -> None:
    statements: list[str] = []
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *rest: statements.append(statement),
    )
    writer = writer_for(engine, records, spool_dir, flush_interval=60)
    for i in range(3):
        writer.submit(records.make(f"t{i}", status="pending", started=i))
        writer.submit(records.make(f"t{i}", started=i))
    await writer.stop()
    task_writes = [s for s in statements if s.startswith(("INSERT INTO tasks", "UPDATE tasks"))]
    assert len(task_writes) == 1 and task_writes[0].startswith("INSERT INTO tasks")
    assert [t.status for t in await probe.tasks()] == ["completed"] * 3


async def test_a_claimed_task_id_is_released_once_its_final_record_is_written(
    records, engine, spool_dir
) -> None:
    writer = writer_for(engine, records, spool_dir)
    for task_id in ("open", "done"):
        assert writer.inflight.claim(task_id)
    writer.submit(records.make("open", status="pending"))
    writer.submit(records.make("done", status="pending", started=1))
    writer.submit(records.make("done", started=1))
    assert "open" in writer.inflight and "done" in writer.inflight  # not stored yet
    await writer.stop()
    assert "open" in writer.inflight  # its call has not ended: still claimed
    assert "done" not in writer.inflight  # stored: the database answers for it now


async def test_a_spooled_final_record_releases_its_task_id(records, spool_dir) -> None:
    engine = unreachable_engine()
    writer = writer_for(engine, records, spool_dir, spool_after=0.05)
    await writer.start()
    writer.inflight.claim("t1")
    writer.submit(records.make("t1"))
    await wait_until(lambda: "t1" not in writer.inflight)
    assert writer.status()["spooled"] == 1
    await writer.stop(timeout=0.1)
    await engine.dispose()


async def test_a_record_the_database_refuses_does_not_block_the_others(
    records, engine, probe, spool_dir
) -> None:
    writer = writer_for(engine, records, spool_dir, flush_interval=60)
    writer.submit(records.make("good-1"))
    writer.submit(records.make("poison", started=1, http_status=2**70))
    writer.submit(records.make("good-2", started=2))
    await writer.stop()
    assert (writer.written, writer.rejected) == (2, 1)
    assert writer.status()["rejected"] == 1
    tasks = {t.id: t for t in await probe.tasks()}
    assert sorted(tasks) == ["good-1", "good-2", "poison"]
    closed = tasks["poison"]  # closed as an error, holding only what can be stored
    assert closed.status == "error" and closed.http_status is None and closed.cost is None
    assert closed.error_message.startswith("airuns could not store this call's record: ")
    await probe.assert_aggregates_match_tasks()
    (line,) = dead_letters(spool_dir)
    assert line["record"]["task_id"] == "poison" and line["record"]["http_status"] == 2**70
    assert line["error"] and line["instance_id"] == writer.instance_id


def dead_letters(spool_dir: Path) -> list[dict]:
    path = dead_letter_path(spool_dir)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


POISON_RECORDS = {
    # Values no validation upstream of the writer lets through, but which a record could still
    # carry: each makes the database itself refuse the statement, on both backends.
    "huge-status": {"http_status": 2**70},
    "huge-usage": {"usage": Usage(prompt_tokens=2**70, completion_tokens=1, total_tokens=2**70)},
    "negative-huge-status": {"http_status": -(2**65)},
}


@pytest.mark.parametrize("poison", sorted(POISON_RECORDS))
async def test_after_a_refused_record_the_next_one_is_written_without_delay(
    records, engine, probe, spool_dir, poison
) -> None:
    writer = writer_for(engine, records, spool_dir, flush_interval=0.01)
    await writer.start()
    writer.submit(records.make("bad", status="pending"))
    writer.submit(records.make("bad", started=0, **POISON_RECORDS[poison]))
    await wait_until(lambda: writer.rejected >= 1)
    written = writer.written  # the start record, when it was written in a batch of its own
    started = time.monotonic()
    writer.submit(records.make("innocent", started=3))
    await wait_until(lambda: writer.written > written)
    assert time.monotonic() - started < 2.0  # never retried: no backoff in the way
    await writer.stop()
    tasks = {t.id: t.status for t in await probe.tasks()}
    assert tasks == {"bad": "error", "innocent": "completed"}
    await probe.assert_aggregates_match_tasks()


async def test_a_refused_start_record_leaves_its_task_to_the_final_record(
    records, engine, probe, spool_dir
) -> None:
    writer = writer_for(engine, records, spool_dir, flush_interval=60)
    writer.submit(records.make("t1", status="pending", http_status=2**70))
    await writer.stop()
    assert writer.rejected == 1 and await probe.tasks() == []  # nothing half-stored
    writer = writer_for(engine, records, spool_dir, flush_interval=60)
    writer.submit(records.make("t1"))
    await writer.stop()
    ((task_id, status),) = [(t.id, t.status) for t in await probe.tasks()]
    assert (task_id, status) == ("t1", "completed")


async def test_a_spooled_record_the_database_refuses_is_dead_lettered_not_replayed_forever(
    records, engine, probe, spool_dir
) -> None:
    dead = Spool.create(spool_dir, "dead:1:ab")
    dead.append([records.make("bad", http_status=2**70), records.make("ok", started=1)])
    dead.sync()
    dead.close()  # its lock is free: a stopped process's spool
    writer = writer_for(engine, records, spool_dir, flush_interval=0.01)
    await writer.start()
    replayed = spool_path(spool_dir, "dead:1:ab")
    await wait_until(lambda: writer.rejected == 1 and not replayed.exists())
    await writer.stop()
    assert {t.id: t.status for t in await probe.tasks()} == {"bad": "error", "ok": "completed"}
    assert [line["record"]["task_id"] for line in dead_letters(spool_dir)] == ["bad"]
    replay = writer_for(engine, records, spool_dir, flush_interval=0.01)  # a restart
    await replay.start()
    await replay.stop()
    assert (replay.rejected, replay.written) == (0, 0)
    assert len(dead_letters(spool_dir)) == 1


async def pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event
) -> None:
    try:
        while data := await reader.read(65536):
            await flowing.wait()
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def forward(
    port: int, host: str, target_port: int, flowing: asyncio.Event | None = None
) -> asyncio.Server:
    """A TCP forwarder: the Postgres server appears on `port` once this is called. Clearing
    `flowing` holds every byte (a database that hangs); setting it lets them through again."""
    if flowing is None:
        flowing = asyncio.Event()
        flowing.set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, target_port)
        await asyncio.gather(
            pipe(reader, upstream_writer, flowing),
            pipe(upstream_reader, writer, flowing),
            return_exceptions=True,
        )

    return await asyncio.start_server(handle, "127.0.0.1", port)


@asynccontextmanager
async def database_appearing_later(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[str, Callable[[], Awaitable[None]]]]:
    """A URL of `database_url` that fails to connect until the yielded function is awaited."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        later = tmp_path / "not-yet" / "airuns.db"

        async def copy() -> None:
            later.parent.mkdir()
            shutil.copyfile(str(url.database), later)

        yield f"sqlite+aiosqlite:///{later}", copy
        return
    port = closed_port()
    servers: list[asyncio.Server] = []

    async def listen() -> None:
        servers.append(await forward(port, url.host or "127.0.0.1", url.port or 5432))

    try:
        yield url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False), listen
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()


async def test_transient_errors_are_retried_without_losing_records(
    records, database_url, tmp_path, spool_dir
) -> None:
    async with database_appearing_later(database_url, tmp_path) as (url, appear):
        engine = create_engine(url)
        writer = writer_for(engine, records, spool_dir, batch_size=3, flush_interval=0.001)
        await writer.start()
        for i in range(5):
            writer.submit(records.make(f"t{i}", status="pending", started=i))
            writer.submit(records.make(f"t{i}", started=i))
        await wait_until(lambda: writer.retries >= 2)
        await appear()
        await writer.stop(timeout=10)
        async with engine.connect() as conn:
            task_count = (await conn.execute(text("SELECT task_count FROM runs"))).scalar_one()
        await engine.dispose()
    assert (writer.backlog, writer.written, writer.rejected) == (0, 10, 0)
    assert task_count == 5


async def test_two_writers_on_one_postgres_keep_aggregates_exact(
    records, database_url, backend, probe, spool_dir
) -> None:
    if backend != "postgres":
        pytest.skip("several writers sharing one database is a Postgres deployment")
    engines = [create_engine(database_url) for _ in range(2)]
    writers = [
        writer_for(e, records, spool_dir, batch_size=4, flush_interval=0.002) for e in engines
    ]
    for writer in writers:
        await writer.start()
    rng = random.Random(7)

    async def call(i: int) -> None:
        writer = writers[i % 2]
        writer.submit(records.make(f"t{i:02}", status="pending", started=i))
        await asyncio.sleep(rng.random() / 50)
        usage = Usage(prompt_tokens=100 * i, completion_tokens=i, total_tokens=101 * i)
        writer.submit(records.make(f"t{i:02}", started=i, usage=usage))

    await asyncio.gather(*(call(i) for i in range(50)))
    for writer in writers:
        await writer.stop()
    for each in engines:
        await each.dispose()
    run = await probe.run()
    expected_cost = sum(Decimal(100 * i * 3 + i * 7) / 1_000_000 for i in range(50))
    assert (run.task_count, run.total_tokens) == (50, sum(101 * i for i in range(50)))
    assert run.total_cost == expected_cost == Decimal("0.376075")
    await probe.assert_aggregates_match_tasks()


async def test_a_write_that_hangs_is_spooled_and_its_copy_skipped_once_written(
    records, database_url, backend, probe, spool_dir
) -> None:
    if backend != "postgres":
        pytest.skip("a hanging connection needs a network database")
    url = make_url(database_url)
    flowing = asyncio.Event()
    flowing.set()
    port = closed_port()
    server = await forward(port, url.host or "127.0.0.1", url.port or 5432, flowing)
    engine = create_engine(url.set(port=port).render_as_string(hide_password=False))
    writer = writer_for(engine, records, spool_dir, batch_size=5, spool_after=0.1)
    await writer.start()
    writer.submit(records.make("before"))
    await wait_until(lambda: writer.written == 1)
    flowing.clear()  # the database stops answering mid-conversation
    for i in range(12):
        writer.submit(records.make(f"t{i:02}", started=i))
    await wait_until(lambda: writer.status()["spooled"] == 12)
    assert (writer.written, writer.backlog) == (1, 12)  # the batch in flight was copied too
    flowing.set()
    await writer.stop(timeout=10)
    server.close()
    await engine.dispose()
    assert writer.written == 13  # the spooled copy of the batch in flight was not written again
    assert writer.status() == {"backlog": 0, "spooled": 0, "dropped": 0, "rejected": 0}
    run = await probe.run()
    assert (run.task_count, run.total_cost) == (13, 13 * records.usage_cost)
    await probe.assert_aggregates_match_tasks()


async def test_stop_spools_when_the_database_is_down_and_the_next_start_replays(
    records, database_url, tmp_path, spool_dir, probe_for
) -> None:
    async with database_appearing_later(database_url, tmp_path) as (url, appear):
        engine = create_engine(url)
        first = writer_for(engine, records, spool_dir)
        await first.start()
        first.submit(records.make("done", status="pending"))
        first.submit(records.make("done"))
        first.submit(records.make("unfinished", status="pending", started=1))
        started = time.monotonic()
        await first.stop(timeout=30)
        assert time.monotonic() - started < 3  # gives up soon once the database refuses
        assert first.status() == {"backlog": 3, "spooled": 3, "dropped": 0, "rejected": 0}
        await appear()
        second = writer_for(engine, records, spool_dir)
        await second.start()
        probe = probe_for(engine)
        first_spool = spool_path(spool_dir, first.instance_id)
        await wait_until(lambda: not first_spool.exists())  # replayed, orphans closed, removed
        await second.stop()
        tasks = {t.id: (t.status, t.error_message) for t in await probe.tasks()}
        await probe.assert_aggregates_match_tasks()
        await engine.dispose()
    assert tasks == {
        "done": ("completed", None),
        "unfinished": ("error", "airuns process stopped before the call finished"),
    }
    assert list(spool_dir.iterdir()) == []


async def test_batches_of_any_size_reuse_a_few_insert_statements(
    records, engine, probe, spool_dir
) -> None:
    """Each distinct statement is prepared and cached per connection: batch sizes must not
    mint one per size, or a long-running writer's memory grows with every new size."""
    inserts: set[str] = set()
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *rest: (
            inserts.add(statement) if statement.startswith("INSERT INTO tasks") else None
        ),
    )
    writer = writer_for(engine, records, spool_dir, batch_size=1000, flush_interval=0.01)
    await writer.start()
    task = 0
    for size in range(65, 145):  # 80 sizes, each one batch
        for _ in range(size):
            writer.submit(records.make(f"t{task:05}", started=task))
            task += 1
        await wait_until(lambda: writer.backlog == 0)
    await writer.stop()
    assert (await probe.run()).task_count == task
    assert len(inserts) <= 64
