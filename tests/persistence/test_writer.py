"""BatchWriter against real databases: an unreachable one is a closed port or a missing file."""

import asyncio
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

from persistence.engine import create_engine
from persistence.writer import BatchWriter
from pricing.usage import Usage
from proxy.settings import RecordingSettings

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


def writer_for(engine: AsyncEngine, records, **settings) -> BatchWriter:
    return BatchWriter(engine, records.prices, RecordingSettings(**settings), **FAST_RETRY)


async def test_submit_never_blocks_when_the_database_is_down(records) -> None:
    engine = unreachable_engine()
    writer = writer_for(engine, records, queue_size=100, batch_size=10, flush_interval=0.001)
    await writer.start()
    started = time.perf_counter()
    for i in range(10_000):
        writer.submit(records.make(f"t{i}"))
    assert time.perf_counter() - started < 1.0
    assert writer.backlog <= 100 + 10
    assert writer.dropped >= 10_000 - 110
    await writer.stop(timeout=0.1)
    await engine.dispose()


async def test_full_buffer_drops_the_oldest_start_records_first(records, engine, probe) -> None:
    writer = writer_for(engine, records, queue_size=3)
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


async def test_full_buffer_of_finals_drops_the_oldest(records, engine, probe) -> None:
    writer = writer_for(engine, records, queue_size=2)
    for i, task_id in enumerate(["x", "y", "z"]):
        writer.submit(records.make(task_id, started=i))
    assert (writer.dropped, writer.is_task_active("x")) == (1, False)
    await writer.stop()
    assert [t.id for t in await probe.tasks()] == ["y", "z"]


async def test_stop_drains_everything(records, engine, probe) -> None:
    writer = writer_for(engine, records, batch_size=7, flush_interval=60)
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
    records, engine, probe
) -> None:
    writer = writer_for(engine, records, batch_size=500, flush_interval=0.01)
    await writer.start()
    writer.submit(records.make("t1"))
    await wait_until(lambda: writer.written == 1)
    assert [t.id for t in await probe.tasks()] == ["t1"]
    await writer.stop()


async def test_start_and_final_in_one_batch_cost_one_row_write(records, engine, probe) -> None:
    statements: list[str] = []
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *rest: statements.append(statement),
    )
    writer = writer_for(engine, records, flush_interval=60)
    for i in range(3):
        writer.submit(records.make(f"t{i}", status="pending", started=i))
        writer.submit(records.make(f"t{i}", started=i))
    await writer.stop()
    task_writes = [s for s in statements if s.startswith(("INSERT INTO tasks", "UPDATE tasks"))]
    assert len(task_writes) == 1 and task_writes[0].startswith("INSERT INTO tasks")
    assert [t.status for t in await probe.tasks()] == ["completed"] * 3


async def test_task_exists_sees_in_flight_and_written_tasks(records, engine) -> None:
    writer = writer_for(engine, records)
    writer.submit(records.make("open", status="pending"))
    writer.submit(records.make("done", status="pending", started=1))
    writer.submit(records.make("done", started=1))
    assert writer.is_task_active("open") and writer.is_task_active("done")
    await writer.stop()
    assert writer.is_task_active("open") and not writer.is_task_active("done")
    assert await writer.task_exists("open")
    assert await writer.task_exists("done")
    assert not await writer.task_exists("never-seen")


async def test_task_exists_fails_open_when_the_database_is_down(records) -> None:
    engine = unreachable_engine()
    writer = BatchWriter(engine, records.prices, lookup_timeout=0.2)
    started = time.perf_counter()
    assert not await writer.task_exists("t1")
    assert time.perf_counter() - started < 1.0
    await engine.dispose()


async def test_a_record_the_database_refuses_does_not_block_the_others(
    records, engine, probe
) -> None:
    writer = writer_for(engine, records, flush_interval=60)
    writer.submit(records.make("good-1"))
    writer.submit(records.make("poison", started=1, http_status=2**70))
    writer.submit(records.make("good-2", started=2))
    await writer.stop()
    assert (writer.written, writer.failed) == (2, 1)
    assert [t.id for t in await probe.tasks()] == ["good-1", "good-2"]
    await probe.assert_aggregates_match_tasks()


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def forward(port: int, host: str, target_port: int) -> asyncio.Server:
    """A TCP forwarder: the Postgres server appears on `port` once this is called."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, target_port)
        await asyncio.gather(
            pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True
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
    records, database_url, tmp_path
) -> None:
    async with database_appearing_later(database_url, tmp_path) as (url, appear):
        engine = create_engine(url)
        writer = writer_for(engine, records, batch_size=3, flush_interval=0.001)
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
    assert (writer.backlog, writer.written, writer.failed) == (0, 10, 0)
    assert task_count == 5


async def test_two_writers_on_one_postgres_keep_aggregates_exact(
    records, database_url, backend, probe
) -> None:
    if backend != "postgres":
        pytest.skip("several writers sharing one database is a Postgres deployment")
    engines = [create_engine(database_url) for _ in range(2)]
    writers = [writer_for(e, records, batch_size=4, flush_interval=0.002) for e in engines]
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
