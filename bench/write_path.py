"""The write path alone: CPU per recorded call in `apply_batch`, off any request loop.

    .venv/bin/python bench/write_path.py                       # SQLite and Postgres
    .venv/bin/python bench/write_path.py --calls 20000 --profile sqlite

Each call is what the proxy submits: a `pending` record when it starts and its final record
(a chat completion with usage, 70% streamed with a TTFT) when it ends, in runs of ~10 calls,
written in batches of 500 records as the writer takes them (most calls' two records land in
one batch, some are split across two). The database is fresh for each backend. Reported: the
process's CPU (user + system, the driver's thread included) per call, and wall time; with
`--profile`, the top of a cProfile of the same loop. This is the part of "recording on" that
does not depend on the request loop; `bench/overhead.py` measures the whole proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from persistence.apply import apply_batch  # noqa: E402
from persistence.engine import create_engine  # noqa: E402
from persistence.migrate import migrate  # noqa: E402
from persistence.record import CallRecord, RunInfo  # noqa: E402
from pricing.table import PriceTable  # noqa: E402
from pricing.usage import Usage  # noqa: E402

POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/airuns_write_bench"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Summarize the quarterly report in three bullet points."},
]


def call_records(calls: int, seed: int = 1) -> list[CallRecord]:
    """Two records per call, in the order a busy proxy submits them."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=1)
    records: list[tuple[float, CallRecord]] = []
    for n in range(calls):
        begun = start + timedelta(milliseconds=n * 5)
        stream = rng.random() < 0.7
        common = {
            "task_id": f"task-{n:09d}",
            "run": RunInfo(f"run-{n // 10:07d}"),
            "task_name": None,
            "user_id": f"user-{n % 50}",
            "owner": None,
            "endpoint": "/v1/chat/completions",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "upstream_model": "gpt-4o-mini",
            "stream": stream,
            "started_at": begun,
            "request": {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": stream},
            "instance_id": "bench",
        }
        pending = CallRecord(**common, status="pending")
        final = CallRecord(
            **common,
            status="completed",
            http_status=200,
            response_model="gpt-4o-mini-2024-07-18",
            response_text="- Revenue grew 12%.\n- Costs held flat.\n- Outlook raised.",
            finish_reason="stop",
            usage=Usage(prompt_tokens=31, completion_tokens=24, total_tokens=55),
            usage_source="provider",
            upstream_latency_ms=210.0,
            ttft_ms=rng.lognormvariate(5.7, 0.5) if stream else None,
            total_time_ms=640.0,
            overhead_ms=0.4,
            completed_at=begun + timedelta(milliseconds=640),
        )
        records.append((n * 5, pending))
        records.append((n * 5 + rng.expovariate(1 / 300), final))
    return [record for _, record in sorted(records, key=lambda pair: pair[0])]


async def write(url: str, records: list[CallRecord], batch: int, profile: bool) -> dict:
    await migrate(url)
    engine = create_engine(url)
    prices = PriceTable({})
    profiler = cProfile.Profile() if profile else None
    try:
        async with engine.begin() as conn:  # connect and warm up outside the measurement
            await apply_batch(conn, records[:batch], prices)
        rest = records[batch:]
        cpu, wall = _cpu(), time.perf_counter()
        if profiler:
            profiler.enable()
        for start in range(0, len(rest), batch):
            async with engine.begin() as conn:
                await apply_batch(conn, rest[start : start + batch], prices)
        if profiler:
            profiler.disable()
        cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    finally:
        await engine.dispose()
    calls = len(rest) / 2
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
    return {"cpu_us_per_call": cpu / calls * 1e6, "wall_us_per_call": wall / calls * 1e6}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def recreate_postgres() -> bool:
    import asyncpg

    try:
        admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres", timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        await admin.execute("DROP DATABASE IF EXISTS airuns_write_bench WITH (FORCE)")
        await admin.execute("CREATE DATABASE airuns_write_bench")
    finally:
        await admin.close()
    return True


async def main(options: argparse.Namespace) -> None:
    records = call_records(options.calls)
    for backend in options.backends:
        if backend == "postgres":
            if not await recreate_postgres():
                print("postgres: no server on 127.0.0.1:5432, skipped")
                continue
            url = POSTGRES
        else:
            url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/write.db"
        figures = await write(url, records, options.batch, options.profile)
        print(
            f"{backend:9} {options.calls:,} calls: {figures['cpu_us_per_call']:6.1f} µs CPU/call"
            f"  {figures['wall_us_per_call']:6.1f} µs wall/call"
        )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("backends", nargs="*", default=["sqlite", "postgres"])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500, help="records per batch")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the writes")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
