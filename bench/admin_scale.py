"""Admin API at scale: seed Postgres with 100,000 runs and 1,000,000 tasks, then time the admin
endpoints through the real app in-process (httpx over ASGI, litestar lifespan run, admin key).

    .venv/bin/python bench/admin_scale.py              # full size: seeds in ~35 s, times in ~6 min
    .venv/bin/python bench/admin_scale.py --runs 2000 --tasks 20000 --repeat 10   # smoke run
    .venv/bin/python bench/admin_scale.py --keep                # keep the database afterwards
    .venv/bin/python bench/admin_scale.py --reuse --keep        # time a kept database again

Seeding is server-side SQL (`INSERT … SELECT generate_series`), with the secondary indexes and
the foreign key dropped during the load and rebuilt after it, as a restore would. The data:
`last_message_at` spread over 60 days; 8 models from 6 providers (one without a price, so its
tasks are unpriced); 500 users; ~70% streaming tasks with a TTFT; 93% of tasks completed;
runs 90% active, 7% archived, 3% deleted; one run (`run-000001`) with 1,000 tasks and a
2,001-message conversation; the other runs with a long-tailed number of tasks (1 to ~150).
Run aggregates come from one `UPDATE … FROM (SELECT … GROUP BY run_id)` over the tasks, so they
equal the sums the writer would have kept. Then VACUUM ANALYZE.

Each case is a warm-up of `--warmup` requests then `--repeat` timed ones; p50 and p99 are of
those (with 40 samples p99 is close to the slowest). Target: p50 under 50 ms for every case.
A table is printed and the figures are written as JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import delete
from sqlalchemy.engine import make_url

from persistence.engine import create_engine
from persistence.memory_recorder import MemoryRecorder
from persistence.migrate import migrate
from persistence.models import usage_hourly_table
from persistence.queries.cursor import encode_cursor
from persistence.rollups import backfill
from proxy.app import create_app
from proxy.settings import parse_settings

ADMIN_KEY = "bench-admin-key"
TARGET_P50_MS = 50.0
BIG_RUN = "run-000001"
BIG_RUN_TASKS = 1000
RESULTS = Path(__file__).parent / "results"
SORTS = ("recent", "oldest", "name", "cost", "tokens", "messages")
# sort → (column, descending), as persistence.queries.runs orders them (then by id)
SORT_COLUMNS = {
    "recent": ("last_message_at", True),
    "oldest": ("last_message_at", False),
    "name": ("name", False),
    "cost": ("total_cost", True),
    "tokens": ("total_tokens", True),
    "messages": ("message_count", True),
}

# (model, provider, USD per 1M input, per 1M output, share of runs); NULL price: unpriced.
MODELS = [
    ("gpt-4o-mini", "openai", 0.15, 0.6, 0.30),
    ("gpt-4o", "openai", 2.5, 10, 0.20),
    ("claude-3-5-sonnet", "anthropic", 3, 15, 0.15),
    ("claude-3-5-haiku", "anthropic", 0.8, 4, 0.10),
    ("gemini-1.5-flash", "google", 0.075, 0.3, 0.10),
    ("o1-mini", "openai", 3, 12, 0.05),
    ("mistral-large", "mistral", 2, 6, 0.05),
    ("llama-3.1-70b", "local", None, None, 0.05),
]


def _models_sql() -> str:
    rows, cumulative = [], 0.0
    for index, (model, provider, price_in, price_out, share) in enumerate(MODELS, 1):
        cumulative += share
        prices = "NULL::numeric, NULL::numeric" if price_in is None else f"{price_in}, {price_out}"
        rows.append(f"({index}, '{model}', '{provider}', {prices}, {cumulative:.4f})")
    return (
        "SELECT * FROM (VALUES " + ", ".join(rows) + ") AS m(idx, model, provider, pin, pout, cum)"
    )


SEED_SQL = [
    "SELECT setseed(0.42)",
    "CREATE TEMP TABLE models AS " + _models_sql(),
    # One row per run: its start, the gap between its calls, its usual model, its user.
    """
    CREATE TEMP TABLE run_seed AS
    SELECT n,
           'run-' || lpad(n::text, 6, '0') AS id,
           CASE WHEN n = 1 THEN now() - interval '20 hours'
                ELSE now() - interval '6 hours'
                     - interval '60 days' * ((n::bigint * 7919) % __RUNS__) / __RUNS__::float8
           END AS started,
           CASE WHEN n = 1 THEN 60 ELSE 20 + (n * 131) % 100 END AS gap_s,
           (SELECT idx FROM models WHERE cum >= r ORDER BY cum LIMIT 1) AS model_idx,
           'user-' || lpad(((n * 31) % 500)::text, 3, '0') AS user_id,
           CASE WHEN n = 1 THEN 'active'
                WHEN random() < 0.90 THEN 'active'
                WHEN random() < 0.70 THEN 'archived' ELSE 'deleted' END AS status,
           n > 1 AND random() < 0.05 AS starred,
           (ARRAY['chat', 'agent', 'batch', 'eval', NULL])[1 + (n * 17) % 5] AS source_type,
           (ARRAY['Support chat', 'Refactor', 'Summarize', 'Translate', 'Code review',
                  'Research', 'Onboarding', 'Bug triage', 'Eval batch', 'Draft email'])[1 + n % 10]
               || ' ' || substr(md5(n::text), 1, 8) AS name
    FROM (SELECT n, random() AS r FROM generate_series(1, __RUNS__) AS n) AS s
    """,
    # Which run each task belongs to and its place in it: the big run first, then one task for
    # every other run, then the rest spread with a long tail (a permutation scatters the heavy
    # runs across ids and time).
    """
    CREATE TEMP TABLE slots AS
    SELECT t, run_n, row_number() OVER (PARTITION BY run_n ORDER BY t) AS pos
    FROM (
        SELECT t, CASE
            WHEN t <= __BIG__ THEN 1
            WHEN t < __BIG__ + __RUNS__ THEN t - __BIG__ + 1
            ELSE 2 + (floor((__RUNS__ - 1) * power(random(), 1.3))::bigint * 7919) % (__RUNS__ - 1)
        END AS run_n
        FROM generate_series(1, __TASKS__) AS t
    ) AS s
    """,
    """
    INSERT INTO runs (id, name, status, is_starred, source_type, source_id, user_id,
                      metadata, tags, settings, messages, created_at, updated_at, last_message_at)
    SELECT id, name, status, starred, source_type, 'src-' || (n % 1000), user_id,
           jsonb_build_object('team', 'team-' || (n % 7)),
           CASE WHEN n % 4 = 0 THEN '["prod"]'::jsonb ELSE '[]'::jsonb END,
           '{}'::jsonb, '[]'::jsonb, started, started, started
    FROM run_seed
    """,
    """
    INSERT INTO tasks (id, run_id, endpoint, provider, model, upstream_model, response_model,
                       stream, status, http_status, request, response_text, finish_reason,
                       error_message, prompt_tokens, completion_tokens, total_tokens,
                       usage_source, upstream_latency_ms, time_to_first_token_ms, total_time_ms,
                       overhead_ms, cost, input_cost, output_cost, user_id, created_at,
                       completed_at)
    SELECT id, run_id, '/v1/chat/completions', provider, model, model, model || '-2024',
           stream, status, CASE WHEN status = 'error' THEN 500 ELSE 200 END,
           jsonb_build_object('model', model, 'stream', stream, 'messages', jsonb_build_array(
               jsonb_build_object('role', 'user', 'content', 'Question ' || pos || ' of '
                                  || run_id || ': what should we look at next, and why?'))),
           CASE WHEN status IN ('completed', 'cancelled') THEN repeat('Answer text. ', 12) END,
           CASE WHEN status = 'completed' THEN 'stop' END,
           CASE WHEN status IN ('error', 'timeout') THEN 'upstream said no' END,
           prompt, completion, prompt + completion,
           CASE WHEN prompt IS NULL THEN 'missing' ELSE 'provider' END,
           total_ms - 1.5, ttft, total_ms, 0.3 + random(),
           round((prompt * pin + completion * pout) / 1e6, 10),
           round(prompt * pin / 1e6, 10), round(completion * pout / 1e6, 10),
           user_id, created, created + total_ms * interval '1 millisecond'
    FROM (
        SELECT 'task-' || lpad(s.t::text, 7, '0') AS id, r.id AS run_id, r.user_id, s.pos,
               m.model, m.provider, m.pin, m.pout, st.status,
               st.stream,
               CASE WHEN st.stream THEN 150 + 2500 * power(random(), 3) END AS ttft,
               CASE WHEN st.status IN ('completed', 'error')
                    THEN 50 + floor(8000 * power(random(), 2))::bigint END AS prompt,
               CASE WHEN st.status IN ('completed', 'error')
                    THEN 5 + floor(1500 * power(random(), 2))::bigint END AS completion,
               500 + 20000 * power(random(), 2) AS total_ms,
               r.started + (s.pos - 1) * r.gap_s * interval '1 second' AS created
        FROM slots AS s
        JOIN run_seed AS r ON r.n = s.run_n
        CROSS JOIN LATERAL (
            SELECT CASE WHEN random() < 0.85 THEN r.model_idx
                        ELSE 1 + floor(random() * 8)::int END AS idx, random() AS u,
                   random() < 0.7 AS stream
        ) AS pick
        JOIN models AS m ON m.idx = pick.idx
        CROSS JOIN LATERAL (
            SELECT pick.stream, CASE WHEN pick.u < 0.93 THEN 'completed'
                                     WHEN pick.u < 0.96 THEN 'error'
                                     WHEN pick.u < 0.98 THEN 'cancelled'
                                     ELSE 'timeout' END AS status
        ) AS st
    ) AS t
    """,
    # Aggregates as the writer keeps them, and each run's conversation (2 messages per task
    # plus the system prompt; only the 1,000-task run's is long) in one pass over the tasks.
    """
    UPDATE runs SET
        task_count = a.n, error_count = a.errors, prompt_tokens = a.prompt,
        completion_tokens = a.completion, total_tokens = a.total, total_cost = a.cost,
        unpriced_task_count = a.unpriced, last_message_at = a.last, updated_at = a.last,
        messages_started_at = a.first_at, message_count = 2 * a.n + 1,
        messages = (
            SELECT jsonb_agg(CASE
                WHEN k = 0 THEN jsonb_build_object('role', 'system', 'content', 'Be helpful.')
                WHEN k % 2 = 1 THEN jsonb_build_object('role', 'user', 'content',
                    'Question ' || (k + 1) / 2 || ': what should we look at next, and why?')
                ELSE jsonb_build_object('role', 'assistant', 'content', repeat('Answer. ', 16))
            END ORDER BY k)
            FROM generate_series(0, 2 * a.n) AS k
        )
    FROM (
        SELECT run_id, count(*) AS n,
               count(*) FILTER (WHERE status IN ('error', 'timeout')) AS errors,
               coalesce(sum(prompt_tokens), 0) AS prompt,
               coalesce(sum(completion_tokens), 0) AS completion,
               coalesce(sum(total_tokens), 0) AS total,
               coalesce(sum(cost), 0) AS cost,
               count(*) FILTER (WHERE cost IS NULL) AS unpriced,
               max(coalesce(completed_at, created_at)) AS last,
               max(created_at) AS first_at
        FROM tasks GROUP BY run_id
    ) AS a
    WHERE runs.id = a.run_id
    """,
]

SAVED_DDL = """
SELECT indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename IN ('runs', 'tasks') AND indexname NOT LIKE 'pk_%'
UNION ALL
SELECT format('ALTER TABLE %I ADD CONSTRAINT %I %s', conrelid::regclass, conname,
              pg_get_constraintdef(oid))
FROM pg_constraint WHERE contype = 'f' AND conrelid IN ('runs'::regclass, 'tasks'::regclass)
"""
DROPPED = """
SELECT format('DROP INDEX %I', indexname) FROM pg_indexes
WHERE schemaname = 'public' AND tablename IN ('runs', 'tasks') AND indexname NOT LIKE 'pk_%'
UNION ALL
SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', conrelid::regclass, conname)
FROM pg_constraint WHERE contype = 'f' AND conrelid IN ('runs'::regclass, 'tasks'::regclass)
"""


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def database_url(server: str, name: str) -> str:
    parsed = make_url(server).set(drivername="postgresql+asyncpg", database=name)
    return parsed.render_as_string(hide_password=False)


async def on_server(server: str, statement: str) -> Any:
    connection = await asyncpg.connect(asyncpg_dsn(server))
    try:
        return await connection.fetchval(statement)
    finally:
        await connection.close()


async def seed(url: str, runs: int, tasks: int) -> float:
    """Fill the migrated database at `url`; the seconds it took."""
    if tasks < BIG_RUN_TASKS + runs - 1:
        raise SystemExit(f"--tasks must be at least {BIG_RUN_TASKS + runs - 1} for {runs} runs")
    started = time.perf_counter()
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute("SET synchronous_commit = off")
        await connection.execute("SET maintenance_work_mem = '512MB'")
        await connection.execute("SET work_mem = '256MB'")
        ddl = [row[0] for row in await connection.fetch(SAVED_DDL)]
        for (statement,) in await connection.fetch(DROPPED):
            await connection.execute(statement)
        for statement in SEED_SQL:
            step = time.perf_counter()
            await connection.execute(_sizes(statement, runs, tasks))
            print(f"  {time.perf_counter() - step:6.1f} s  {_first_line(statement)}", flush=True)
        step = time.perf_counter()
        await connection.execute("VACUUM FULL runs")
        for statement in ddl:
            await connection.execute(statement)
        await connection.execute("VACUUM ANALYZE runs")
        await connection.execute("VACUUM ANALYZE tasks")
        print(f"  {time.perf_counter() - step:6.1f} s  indexes, foreign key, VACUUM ANALYZE")
        step = time.perf_counter()
        await build_rollups(url)
        await connection.execute("VACUUM ANALYZE usage_hourly")
        rollups = await connection.fetchval("SELECT count(*) FROM usage_hourly")
        print(f"  {time.perf_counter() - step:6.1f} s  usage rollups: {rollups:,} rows (backfill)")
    finally:
        await connection.close()
    return time.perf_counter() - started


async def build_rollups(url: str) -> None:
    """The seed writes tasks behind the writer's back: build their usage rollups as migration
    0007 builds those of existing tasks."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(usage_hourly_table))
            await conn.run_sync(backfill)
    finally:
        await engine.dispose()


def _sizes(statement: str, runs: int, tasks: int) -> str:
    """The statement with its sizes in (integers from the command line, so no injection)."""
    sizes = {"__RUNS__": runs, "__TASKS__": tasks, "__BIG__": BIG_RUN_TASKS}
    for name, value in sizes.items():
        statement = statement.replace(name, str(int(value)))
    return statement


def _first_line(statement: str) -> str:
    return " ".join(statement.split())[:70]


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    path: str
    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class Timing:
    name: str
    p50_ms: float
    p99_ms: float
    mean_ms: float
    samples: int
    met: bool


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Run the app's ASGI lifespan in a task of its own, as a server does."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"app did not start: {started}")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


@asynccontextmanager
async def admin_client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real app on `url`, its own engine and pool, reached in-process with the admin key."""
    config = f'admin: {{api_key: "{ADMIN_KEY}"}}\ndatabase: {{url: "{url}"}}\n'
    engine = create_engine(url)
    app = create_app(
        parse_settings(config, {}),
        recorder=MemoryRecorder(),
        engine=engine,
        log_stream=io.StringIO(),
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per request
    try:
        async with lifespan(app):
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://airuns.bench", headers=headers
            ) as client:
                yield client
    finally:
        await engine.dispose()


async def get_json(client: httpx.AsyncClient, path: str, params: dict[str, str]) -> Any:
    response = await client.get(path, params=params)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} {params}: {response.status_code} {response.text[:300]}")
    return response.json()


async def follow_cursor(client: httpx.AsyncClient, sort: str, pages: int) -> str:
    """The cursor of page `pages + 1` of the runs list, reached by following `next_cursor`."""
    params = {"sort": sort}
    for _ in range(pages):
        page = await get_json(client, "/admin/runs", params)
        params = {"sort": sort, "cursor": page["next_cursor"]}
    return params["cursor"]


async def crafted_cursor(url: str, sort: str, offset: int) -> str:
    """A cursor after the active run at `offset` in this sort, as the API would have made it."""
    column, descending = SORT_COLUMNS[sort]
    direction = "DESC" if descending else "ASC"
    query = (
        f"SELECT {column}, id FROM runs WHERE status = 'active' "
        f"ORDER BY {column} {direction}, id {direction} OFFSET {int(offset)} LIMIT 1"
    )
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        value, run_id = await connection.fetchrow(query)
    finally:
        await connection.close()
    if isinstance(value, datetime):
        value = value.astimezone(UTC).isoformat()
    elif not isinstance(value, int | str):
        value = format(value, "f")  # Decimal
    return encode_cursor(f"runs:{sort}", [value, run_id])


async def build_cases(client: httpx.AsyncClient, url: str, runs: int) -> list[Case]:
    cases = []
    for sort in SORTS:
        cases.append(Case(f"runs {sort}: first page", "/admin/runs", {"sort": sort}))
        deep = await follow_cursor(client, sort, 50)
        cases.append(Case(f"runs {sort}: page 51", "/admin/runs", {"sort": sort, "cursor": deep}))
        middle = await crafted_cursor(url, sort, int(runs * 0.9) // 2)
        cases.append(Case(f"runs {sort}: middle", "/admin/runs", {"sort": sort, "cursor": middle}))
    big = f"/admin/runs/{BIG_RUN}"
    cases.append(Case("run detail (1,000 tasks)", big, {}))
    cases.append(Case("run tasks: first page", f"{big}/tasks", {}))
    tasks_page = await get_json(client, f"{big}/tasks", {"limit": "200"})
    for _ in range(2):
        tasks_page = await get_json(
            client, f"{big}/tasks", {"limit": "200", "cursor": tasks_page["next_cursor"]}
        )
    deep_tasks = {"cursor": tasks_page["next_cursor"]}
    cases.append(Case("run tasks: after 600", f"{big}/tasks", deep_tasks))
    cases.append(Case("tasks: first page", "/admin/tasks", {}))
    for group in ("day", "model", "provider", "user", "run"):
        cases.append(Case(f"usage by {group}, 30 days", "/admin/usage", {"group_by": group}))
    return cases


async def time_case(client: httpx.AsyncClient, case: Case, warmup: int, repeat: int) -> Timing:
    for _ in range(warmup):
        await get_json(client, case.path, case.params)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await get_json(client, case.path, case.params)
        samples.append((time.perf_counter() - started) * 1000)
    p50 = statistics.median(samples)
    p99 = statistics.quantiles(samples, n=100, method="inclusive")[98]
    return Timing(case.name, p50, p99, statistics.fmean(samples), repeat, p50 < TARGET_P50_MS)


async def measure(url: str, runs: int, warmup: int, repeat: int) -> list[Timing]:
    async with admin_client(url) as client:
        cases = await build_cases(client, url, runs)
        timings = []
        for case in cases:
            timing = await time_case(client, case, warmup, repeat)
            print(format_row(timing), flush=True)
            timings.append(timing)
    return timings


def format_row(timing: Timing) -> str:
    verdict = "yes" if timing.met else "NO"
    return f"| {timing.name:<28} | {timing.p50_ms:8.1f} | {timing.p99_ms:8.1f} | {verdict:<9} |"


def table(timings: list[Timing]) -> str:
    header = f"| {'case':<28} | {'p50 ms':>8} | {'p99 ms':>8} | p50 < 50? |"
    rule = f"|{'-' * 30}|{'-' * 9}:|{'-' * 9}:|{'-' * 11}|"
    return "\n".join([header, rule, *(format_row(t) for t in timings)])


async def database_sizes(url: str) -> dict[str, Any]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        row = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM tasks) AS tasks, "
            "pg_size_pretty(pg_database_size(current_database())) AS size, version() AS version"
        )
    finally:
        await connection.close()
    return dict(row)


def machine() -> dict[str, Any]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if "model name" in line),
        platform.processor(),
    )
    memory = next((line.split()[1] for line in _lines("/proc/meminfo") if "MemTotal" in line), "0")
    return {
        "cpu": cpu,
        "cores": len([line for line in _lines("/proc/cpuinfo") if line.startswith("processor")]),
        "memory_gib": round(int(memory) / 2**20, 1),
        "load_average": [round(load, 2) for load in os.getloadavg()],  # shared machines
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def write_results(report: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"admin_scale-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path


async def run(options: argparse.Namespace) -> None:
    url = database_url(options.server, options.database)
    exists = await on_server(
        options.server, f"SELECT count(*) FROM pg_database WHERE datname = '{options.database}'"
    )
    if not options.reuse or not exists:
        await on_server(
            options.server, f'DROP DATABASE IF EXISTS "{options.database}" WITH (FORCE)'
        )
        await on_server(options.server, f'CREATE DATABASE "{options.database}"')
    try:
        await migrate(url)
        seconds = None
        if not options.reuse or not exists:
            print(f"seeding {options.runs:,} runs and {options.tasks:,} tasks into {url}")
            seconds = await seed(url, options.runs, options.tasks)
            print(f"seeded in {seconds:.0f} s")
        sizes = await database_sizes(url)
        print(f"{sizes['runs']:,} runs, {sizes['tasks']:,} tasks, {sizes['size']}")
        print(f"load average before timing: {os.getloadavg()[0]:.2f}\n")
        print(table([]))
        timings = await measure(url, sizes["runs"], options.warmup, options.repeat)
    finally:
        if not options.keep:
            await on_server(
                options.server, f'DROP DATABASE IF EXISTS "{options.database}" WITH (FORCE)'
            )
    missed = [t.name for t in timings if not t.met]
    print(f"\n{len(timings) - len(missed)}/{len(timings)} cases under {TARGET_P50_MS:.0f} ms p50")
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "database": sizes | {"seed_seconds": seconds},
        "target_p50_ms": TARGET_P50_MS,
        "timings": [asdict(t) for t in timings],
        "missed": missed,
    }
    print(f"results: {write_results(report)}")


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=40, help="timed requests per case")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests per case first")
    parser.add_argument("--database", default="airuns_admin_bench")
    parser.add_argument(
        "--server",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a database on the server, used to create and drop the benchmark's",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="time the database kept by --keep, without seeding"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(parse_options(argv)))


if __name__ == "__main__":
    main()
