"""Two airuns app instances sharing one database keep every run aggregate exact."""

from __future__ import annotations

import asyncio
import io
from decimal import Decimal

import httpx
from sqlalchemy import func, select

from persistence.engine import create_engine
from persistence.models import runs_table, tasks_table
from proxy.app import create_app
from proxy.mock_upstream import MockUpstreamServer

CALLS = 50


async def _call(client: httpx.AsyncClient, index: int) -> int:
    payload = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"question number {index}"}],
        "stream": index % 3 == 0,
    }
    response = await client.post(
        "/v1/chat/completions", json=payload, headers={"X-Run-Id": "shared-run"}
    )
    await response.aread()
    return response.status_code


async def test_two_instances_on_one_database_keep_run_aggregates_exact(
    database_url, app_settings, serve
):
    async with MockUpstreamServer() as mock:
        settings = app_settings(mock.base_url, f'database: {{url: "{database_url}"}}')
        first, second = (create_app(settings, log_stream=io.StringIO()) for _ in range(2))
        async with serve(first) as url_a, serve(second) as url_b:
            clients = [httpx.AsyncClient(base_url=u, timeout=30) for u in (url_a, url_b)]
            statuses = await asyncio.gather(*(_call(clients[i % 2], i) for i in range(CALLS)))
            for client in clients:
                await client.aclose()
        # Leaving `serve` ran each app's shutdown: both writers drained to the database.
    assert statuses == [200] * CALLS
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            run = (await conn.execute(select(runs_table))).one()
            sums = (
                await conn.execute(
                    select(
                        func.count(),
                        func.sum(tasks_table.c.prompt_tokens),
                        func.sum(tasks_table.c.completion_tokens),
                        func.sum(tasks_table.c.total_tokens),
                        func.sum(tasks_table.c.cost),
                    ).where(
                        tasks_table.c.run_id == "shared-run", tasks_table.c.status == "completed"
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    count, prompt, completion, total, cost = sums
    assert count == CALLS == run.task_count
    assert (run.prompt_tokens, run.completion_tokens, run.total_tokens) == (
        prompt,
        completion,
        total,
    )
    assert isinstance(run.total_cost, Decimal) and run.total_cost == cost > 0
    assert run.unpriced_task_count == 0 and run.error_count == 0
