"""Soak: many concurrent streaming clients for a while, recording to a fresh Postgres database.

    .venv/bin/python bench/soak.py [--duration 60] [--clients 500]

Starts `airuns mock-upstream` and `airuns serve` as their own processes, drives them from this
one with an aiohttp client (one connection per client, calls back to back), samples the proxy's
RSS every few seconds, then checks that every request sent became exactly one stored task and
that run aggregates equal the sums over their tasks. Prints a report (and `--json` writes it).
The database is dropped at the end unless `--keep-database`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
STREAM = {"x-mock-chunks": "20", "x-mock-chunk-delay-ms": "10"}  # ~200 ms a call
RUNS = 50  # calls spread over this many runs, so aggregates see concurrent increments


@dataclass
class Load:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)

    def failed(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


@dataclass
class Report:
    clients: int
    duration_s: float
    requests_sent: int
    requests_ok: int
    errors: int
    error_kinds: dict[str, int]
    calls_per_s: float
    p50_ms: float
    p99_ms: float
    tasks_stored: int
    tasks_by_status: dict[str, int]
    runs_with_wrong_aggregates: int
    settle_s: float
    samples: list[tuple[float, float, int, int]]  # (s since start, RSS MB, backlog, spooled)
    airuns_exit_code: int | None


def main() -> int:
    args = _arguments()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        report = runner.run(soak(args))
    _print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(report), indent=2))
    equal = report.requests_sent == report.tasks_stored
    return 0 if equal and not report.runs_with_wrong_aggregates else 1


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=500, help="concurrent streaming clients")
    parser.add_argument("--postgres", default=DEFAULT_SERVER, help="server to create the DB on")
    parser.add_argument("--sample-every", type=float, default=5.0, help="RSS sampling, seconds")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--json", help="also write the report to this file")
    return parser.parse_args()


async def soak(args: argparse.Namespace) -> Report:
    name = f"airuns_soak_{uuid.uuid4().hex[:8]}"
    await _admin(args.postgres, f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory(prefix="airuns-soak-") as folder:
            return await _soak_in(Path(folder), _database_url(args.postgres, name), args)
    finally:
        if not args.keep_database:
            await _admin(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _soak_in(folder: Path, database_url: str, args: argparse.Namespace) -> Report:
    mock_port, port = _free_port(), _free_port()
    config = folder / "config.yaml"
    config.write_text(
        f"""
database: {{url: "{database_url.replace("postgresql://", "postgresql+asyncpg://")}"}}
providers:
  mock: {{base_url: "http://127.0.0.1:{mock_port}/v1"}}
default_provider: mock
recording: {{spool_dir: "{folder / "spool"}"}}
"""
    )
    cli = [sys.executable, "-m", "proxy.cli"]
    mock = _spawn([*cli, "mock-upstream", "--port", str(mock_port)], folder / "mock.log")
    airuns = _spawn(
        [*cli, "serve", "--config", str(config), "--port", str(port)], folder / "serve.log"
    )
    try:
        _wait_up(f"http://127.0.0.1:{mock_port}/v1/models", mock)
        _wait_up(f"http://127.0.0.1:{port}/healthz", airuns)
        return await _measure(f"http://127.0.0.1:{port}", airuns, database_url, args)
    finally:
        for process in (airuns, mock):
            _stop(process)


async def _measure(
    url: str, airuns: subprocess.Popen, database_url: str, args: argparse.Namespace
) -> Report:
    load, rss = Load(), []
    started = time.monotonic()
    sampler = asyncio.create_task(_sample(url, airuns.pid, started, args.sample_every, rss))
    await _drive(url, args.clients, started + args.duration, load)
    elapsed = time.monotonic() - started
    settle_started = time.monotonic()
    stored, by_status, wrong = await _settle(url, database_url, load.sent)
    settle = time.monotonic() - settle_started
    rss.append(await _sample_once(url, airuns.pid, started))
    sampler.cancel()
    latencies = sorted(load.latencies_ms) or [0.0]
    airuns.send_signal(signal.SIGTERM)
    try:
        exit_code: int | None = airuns.wait(60)
    except subprocess.TimeoutExpired:
        exit_code = None
    return Report(
        clients=args.clients,
        duration_s=round(elapsed, 1),
        requests_sent=load.sent,
        requests_ok=load.ok,
        errors=load.errors,
        error_kinds=load.error_kinds,
        calls_per_s=round(load.ok / elapsed, 1),
        p50_ms=round(statistics.median(latencies), 1),
        p99_ms=round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
        tasks_stored=stored,
        tasks_by_status=by_status,
        runs_with_wrong_aggregates=wrong,
        settle_s=round(settle, 1),
        samples=rss,
        airuns_exit_code=exit_code,
    )


async def _drive(url: str, clients: int, deadline: float, load: Load) -> None:
    """`clients` connections, each calling back to back until `deadline`; calls in flight then
    are allowed to finish, so every call sent is one the proxy saw through."""
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(
            *(_client(session, url, n, n / clients, deadline, load) for n in range(clients))
        )


async def _client(
    session: aiohttp.ClientSession, url: str, n: int, delay: float, deadline: float, load: Load
) -> None:
    await asyncio.sleep(delay)  # the first wave spread over a second, not all at once
    headers = {**STREAM, "X-Run-Id": f"soak-{n % RUNS}", "content-type": "application/json"}
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": f"Soak client {n}: say something."}],
        }
    ).encode()
    while time.monotonic() < deadline:
        load.sent += 1
        started = time.monotonic()
        try:
            async with session.post(f"{url}/v1/chat/completions", data=body, headers=headers) as r:
                tail = b""
                async for chunk in r.content.iter_any():
                    tail = (tail + chunk)[-64:]
                if r.status != 200 or b"[DONE]" not in tail:
                    load.failed(f"status {r.status}" if r.status != 200 else "no [DONE]")
                    continue
        except (aiohttp.ClientError, TimeoutError) as exc:
            load.failed(type(exc).__name__)
            continue
        load.ok += 1
        load.latencies_ms.append((time.monotonic() - started) * 1000)


async def _settle(url: str, database_url: str, expected: int) -> tuple[int, dict[str, int], int]:
    """Wait (up to 2 minutes) until the backlog is written and `expected` tasks are stored."""
    deadline = time.monotonic() + 120
    connection = await asyncpg.connect(database_url)
    try:
        while True:
            stored = await connection.fetchval("SELECT count(*) FROM tasks")
            backlog = await asyncio.to_thread(_backlog, url)
            if (stored >= expected and backlog == 0) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        rows = await connection.fetch("SELECT status, count(*) FROM tasks GROUP BY status")
        wrong = await connection.fetchval(_WRONG_AGGREGATES)
        return stored, {r["status"]: r["count"] for r in rows}, wrong
    finally:
        await connection.close()


_WRONG_AGGREGATES = """
SELECT count(*) FROM runs r LEFT JOIN (
    SELECT run_id, count(*) AS n, coalesce(sum(total_tokens), 0) AS tokens,
           coalesce(sum(cost), 0) AS cost,
           count(*) FILTER (WHERE status IN ('error', 'timeout')) AS errors
    FROM tasks GROUP BY run_id
) s ON s.run_id = r.id
WHERE (r.task_count, r.total_tokens, r.total_cost, r.error_count)
      IS DISTINCT FROM (s.n, s.tokens, s.cost, s.errors)
"""


def _backlog(url: str) -> int:
    return _readyz(url).get("backlog", -1)


def _readyz(url: str) -> dict:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            return json.loads(response.read())
    except Exception:  # 503 while the database is away, or a slow answer: unknown
        return {}


async def _sample(url: str, pid: int, started: float, every: float, samples: list) -> None:
    while True:
        samples.append(await _sample_once(url, pid, started))
        await asyncio.sleep(every)


async def _sample_once(url: str, pid: int, started: float) -> tuple[float, float, int, int]:
    ready = await asyncio.to_thread(_readyz, url)
    at = round(time.monotonic() - started, 1)
    return at, _rss_mb(pid), ready.get("backlog", -1), ready.get("spooled", -1)


def _rss_mb(pid: int) -> float:
    """Resident memory of the process and its children (uvicorn workers), in MB."""
    total = 0
    for each in [pid, *_children(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return round(total / 1024, 1)


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in text.split()]
    return []


def _print(report: Report) -> None:
    print(f"clients {report.clients}, {report.duration_s} s of load")
    print(f"requests sent {report.requests_sent}, ok {report.requests_ok}, errors {report.errors}")
    if report.error_kinds:
        print(f"  errors: {report.error_kinds}")
    print(
        f"throughput {report.calls_per_s} calls/s, p50 {report.p50_ms} ms, p99 {report.p99_ms} ms"
    )
    print(f"tasks stored {report.tasks_stored} {report.tasks_by_status}")
    print(f"  sent == stored: {report.requests_sent == report.tasks_stored}")
    print(f"  runs whose aggregates differ from their tasks: {report.runs_with_wrong_aggregates}")
    print(f"  backlog written {report.settle_s} s after the load stopped")
    print("  s    RSS MB   backlog  spooled   (- : /readyz did not answer within 5 s)")
    for at, mb, backlog, spooled in report.samples:
        print(f"{at:5.0f} {mb:8.1f} {_count(backlog):>9} {_count(spooled):>8}")
    print(f"airuns exit code after SIGTERM: {report.airuns_exit_code}")


def _count(value: int) -> str:
    return "-" if value < 0 else str(value)


async def _admin(server: str, statement: str) -> None:
    connection = await asyncpg.connect(server)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _database_url(server: str, name: str) -> str:
    base, _, _ = server.rpartition("/")
    return f"{base}/{name}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(argv: list[str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def _wait_up(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _loop_factory():
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main())
