"""Fault injection with real processes: `airuns serve` and `airuns mock-upstream` as
subprocesses, Postgres behind a TCP forwarder the test cuts and restores (the shared Postgres
server itself is never stopped), a fresh database per test, and a streaming load generator.

Select these tests with `-m faults`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.servers import free_port, wait_until_up

STOPPED_MESSAGE = "airuns process stopped before the call finished"
STREAM_HEADERS = {"x-mock-chunks": "12", "x-mock-chunk-delay-ms": "100"}  # ~1.2 s a call


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault injection with real processes")


class Forwarder:
    """A TCP forwarder to Postgres, on an event loop of its own thread so a busy test loop
    cannot slow it. `cut()` aborts every connection and stops listening (new connections are
    refused); `restore()` listens again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    def start(self) -> Forwarder:
        self._thread.start()
        self.restore()
        return self

    def cut(self) -> None:
        self._run(self._cut())

    def restore(self) -> None:
        self._run(self._listen())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self, coroutine: Any) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer, upstream_writer}
        self._open |= pair
        await asyncio.gather(
            _pipe(reader, upstream_writer), _pipe(upstream_reader, writer), return_exceptions=True
        )
        self._open -= pair


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.transport.abort()


class Airuns:
    """One `airuns serve` process on a config of the test's own; `start` again after a stop
    or kill starts a new process (a new instance) with the same config and spool."""

    def __init__(
        self,
        folder: Path,
        database_url: str,
        mock_url: str,
        extra: str = "",
        spool_dir: Path | None = None,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.spool_dir = spool_dir or folder / "spool"
        self.config = folder / "config.yaml"
        self.config.write_text(
            f"""
database: {{url: "{database_url}"}}
providers:
  mock: {{base_url: "{mock_url}/v1"}}
default_provider: mock
recording: {{spool_dir: "{self.spool_dir}", flush_interval: 0.05, spool_after: 0.2,
             heartbeat_interval: 1}}
shutdown: {{grace_period: 10}}
{extra}
"""
        )
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Airuns:
        self.port = free_port()
        self.starts += 1
        log = (self.folder / f"serve-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "proxy.cli", "serve", "--config", str(self.config)]
            + ["--port", str(self.port)],
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait_until_up(f"{self.url}/healthz", self.process)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        return "".join(p.read_text() for p in sorted(self.folder.glob("serve-*.log")))


@pytest.fixture(scope="module")
def mock_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "mock-upstream", "--port", str(port)],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/v1/models", process)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class Database:
    url: str  # straight to the server: what the test reads with

    @property
    def dsn(self) -> str:
        return make_url(self.url).set(drivername="postgresql").render_as_string(False)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self.dsn)
        try:
            return await connection.fetch(query, *args)
        finally:
            await connection.close()

    async def tasks(self) -> dict[str, asyncpg.Record]:
        rows = await self.fetch("SELECT * FROM tasks")
        return {row["id"]: row for row in rows}

    async def runs_whose_aggregates_differ_from_their_tasks(self) -> list[asyncpg.Record]:
        return await self.fetch(_AGGREGATE_CHECK)


_AGGREGATE_CHECK = """
SELECT r.id, r.task_count, s.task_count AS tasks_counted
FROM runs r LEFT JOIN (
    SELECT run_id,
           count(*) AS task_count,
           count(*) FILTER (WHERE status IN ('error', 'timeout')) AS error_count,
           coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
           coalesce(sum(completion_tokens), 0) AS completion_tokens,
           coalesce(sum(total_tokens), 0) AS total_tokens,
           coalesce(sum(cost), 0) AS total_cost,
           count(*) FILTER (WHERE status IN ('completed', 'error', 'cancelled', 'timeout')
                            AND cost IS NULL AND NOT (total_tokens IS NULL
                                AND status IN ('error', 'timeout')))
               AS unpriced_task_count
    FROM tasks GROUP BY run_id
) s ON s.run_id = r.id
WHERE (r.task_count, r.error_count, r.prompt_tokens, r.completion_tokens, r.total_tokens,
       r.total_cost, r.unpriced_task_count)
      IS DISTINCT FROM
      (s.task_count, s.error_count, s.prompt_tokens, s.completion_tokens, s.total_tokens,
       s.total_cost, s.unpriced_task_count)
"""


@pytest.fixture
def database(postgres_server) -> Iterator[Database]:
    """A fresh, empty Postgres database (airuns migrates it at start)."""
    url = postgres_server.create_database()
    yield Database(url)
    postgres_server.drop_database(url)


@pytest.fixture
def forwarder(database: Database) -> Iterator[Forwarder]:
    target = make_url(database.url)
    running = Forwarder(target.host or "127.0.0.1", target.port or 5432).start()
    yield running
    running.close()


@pytest.fixture
def airuns_factory(tmp_path: Path, mock_upstream: str, database: Database) -> Iterator:
    """`airuns_factory(name, via=forwarder, extra=config, spool_dir=path)`: a stopped `Airuns`
    on the test's database (through `via` when given)."""
    made: list[Airuns] = []

    def make(
        name: str = "airuns",
        via: Forwarder | None = None,
        extra: str = "",
        spool_dir: Path | None = None,
    ) -> Airuns:
        url = make_url(database.url)
        if via is not None:
            url = url.set(host="127.0.0.1", port=via.port)
        database_url = url.render_as_string(False)
        airuns = Airuns(tmp_path / name, database_url, mock_upstream, extra, spool_dir)
        made.append(airuns)
        return airuns

    yield make
    for airuns in made:
        airuns.stop()


@dataclass
class Call:
    """One streaming call as the client saw it (monotonic times)."""

    started: float
    ended: float = 0.0
    task_id: str | None = None
    ok: bool = False
    error: str | None = None


async def stream_call(
    client: httpx.AsyncClient, url: str, run_id: str, headers: dict[str, str] | None = None
) -> Call:
    """A streaming chat completion; ok when the whole stream, `[DONE]` included, arrived."""
    call = Call(started=time.monotonic())
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": f"Tell me about {run_id}"}],
    }
    try:
        async with client.stream(
            "POST",
            f"{url}/v1/chat/completions",
            json=body,
            headers={"X-Run-Id": run_id, **STREAM_HEADERS, **(headers or {})},
        ) as response:
            call.task_id = response.headers.get("x-task-id")
            lines = [line async for line in response.aiter_lines() if line]
        call.ok = response.status_code == 200 and lines[-1:] == ["data: [DONE]"]
        if not call.ok:
            call.error = f"status {response.status_code}, last line {lines[-1:]}"
    except httpx.HTTPError as exc:
        call.error = repr(exc)
    call.ended = time.monotonic()
    return call


async def wait_for(condition: Any, timeout: float = 30.0, every: float = 0.2) -> None:
    """Until the async `condition()` is true."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(every)
