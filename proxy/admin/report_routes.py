"""`/admin/tasks…`, `/admin/usage` and `/admin/pricing` handlers."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.queries import tasks as task_queries
from persistence.queries.scope import Principal
from persistence.queries.usage import default_window, usage_report
from pricing.table import PriceTable
from proxy.admin.errors import error_responses
from proxy.admin.params import (
    Cursor,
    GroupBy,
    Instant,
    Limit,
    ModelName,
    PriceModel,
    PriceProvider,
    RunFilterId,
    TaskId,
    TaskStatusFilter,
    parse_cursor,
    parse_window,
)
from proxy.admin.serialize import page_json, quote_json, task_json, usage_json
from proxy.errors import NotFound

Engine = NamedDependency[AsyncEngine]
Caller = NamedDependency[Principal]


@get("/tasks", summary="List tasks, newest first", responses=error_responses())
async def list_tasks(
    engine: Engine,
    principal: Caller,
    run_id: RunFilterId = None,
    status: TaskStatusFilter = None,
    model: ModelName = None,
    since: Instant = None,
    until: Instant = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> dict[str, Any]:
    since_at, until_at = parse_window(since, until)
    filters = task_queries.TaskFilter(run_id, status, model, since_at, until_at)
    after = parse_cursor(task_queries.NEWEST_FIRST, cursor)
    async with engine.connect() as conn:
        page = await task_queries.list_tasks(conn, principal, filters, after=after, limit=limit)
    return page_json(page, task_json)


@get("/tasks/{task_id:str}", summary="A task", responses=error_responses(404))
async def get_task(engine: Engine, principal: Caller, task_id: TaskId) -> dict[str, Any]:
    async with engine.connect() as conn:
        task = await task_queries.get_task(conn, principal, task_id)
    if task is None:
        raise NotFound(f"no task with id {task_id!r}", param="task_id")
    return task_json(task)


@get(
    "/usage",
    summary="Requests, errors, tokens, cost and TTFT percentiles per group",
    description="Over task `created_at`; the window defaults to the 30 days before `until`/now.",
    responses=error_responses(),
)
async def usage(
    engine: Engine,
    principal: Caller,
    group_by: GroupBy = "day",
    since: Instant = None,
    until: Instant = None,
) -> dict[str, Any]:
    since_at, until_at = default_window(*parse_window(since, until))
    async with engine.connect() as conn:
        rows = await usage_report(conn, principal, group_by, since_at, until_at)
    return usage_json(rows)


@get(
    "/pricing",
    summary="The per-1M-token prices airuns uses for a model",
    description="As tasks are priced: `provider` is an airuns provider (its `price_as` applies) "
    "or a genai-prices id; without one, or with one genai-prices does not know, the model is "
    "looked up across all genai-prices providers.",
    sync_to_thread=False,
    responses=error_responses(404),
)
def pricing(
    prices: NamedDependency[PriceTable], model: PriceModel, provider: PriceProvider = None
) -> dict[str, Any]:
    quote = prices.lookup(model, provider)
    if quote is None:
        raise NotFound(f"no price known for model {model!r}", param="model")
    return quote_json(quote)


REPORT_ROUTES = [list_tasks, get_task, usage, pricing]
