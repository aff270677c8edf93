"""`/admin/runs…` handlers: parse, call one query, shape the result. Nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.queries import runs as run_queries
from persistence.queries import tasks as task_queries
from persistence.queries.scope import Principal
from proxy.admin.errors import error_responses
from proxy.admin.export import EXPORT_MEDIA_TYPES, export_run
from proxy.admin.params import (
    MAX_PATCH_BYTES,
    Cursor,
    Format,
    Instant,
    Limit,
    ModelName,
    NameSearch,
    PatchBody,
    Purge,
    RunId,
    Sort,
    SourceType,
    Starred,
    StatusFilter,
    UserId,
    parse_cursor,
    parse_window,
    patch_changes,
    refuse_deep_bodies,
)
from proxy.admin.serialize import page_json, run_json, task_json
from proxy.errors import NotFound

Engine = NamedDependency[AsyncEngine]
Caller = NamedDependency[Principal]
_BY_ID = error_responses(404)


@get(
    "/runs",
    summary="List runs",
    description="Keyset-paginated; `status` defaults to active.",
    responses=error_responses(),
)
async def list_runs(
    engine: Engine,
    principal: Caller,
    limit: Limit = 20,
    cursor: Cursor = None,
    status: StatusFilter = "active",
    starred: Starred = None,
    q: NameSearch = None,
    source_type: SourceType = None,
    user_id: UserId = None,
    model: ModelName = None,
    since: Instant = None,
    until: Instant = None,
    sort: Sort = "recent",
) -> dict[str, Any]:
    since_at, until_at = parse_window(since, until)
    filters = run_queries.RunFilter(
        status, starred, q, source_type, user_id, model, since_at, until_at
    )
    after = parse_cursor(run_queries.ORDERINGS[sort], cursor)
    async with engine.connect() as conn:
        page = await run_queries.list_runs(
            conn, principal, filters, sort=sort, after=after, limit=limit
        )
    return page_json(page, run_json)


@get(
    "/runs/{run_id:str}",
    summary="A run, with its messages (whatever its status)",
    responses=_BY_ID,
)
async def get_run(engine: Engine, principal: Caller, run_id: RunId) -> dict[str, Any]:
    async with engine.connect() as conn:
        run = found(await run_queries.get_run(conn, principal, run_id), run_id)
    return run_json(run, with_messages=True)


@get(
    "/runs/{run_id:str}/tasks",
    summary="A run's tasks, oldest first",
    responses=_BY_ID,
)
async def list_run_tasks(
    engine: Engine, principal: Caller, run_id: RunId, limit: Limit = 20, cursor: Cursor = None
) -> dict[str, Any]:
    after = parse_cursor(task_queries.OLDEST_FIRST, cursor)
    async with engine.connect() as conn:
        if not await run_queries.run_exists(conn, principal, run_id):
            raise not_found(run_id)
        page = await task_queries.list_run_tasks(conn, principal, run_id, after=after, limit=limit)
    return page_json(page, task_json)


@get(
    "/runs/{run_id:str}/messages",
    summary="The run's conversation, ready to send to resume",
    responses=_BY_ID,
)
async def get_run_messages(engine: Engine, principal: Caller, run_id: RunId) -> dict[str, Any]:
    async with engine.connect() as conn:
        run = found(await run_queries.get_run(conn, principal, run_id), run_id)
    return {"messages": run.messages or []}


@patch(
    "/runs/{run_id:str}",
    summary="Rename, star, archive, describe or tag a run",
    responses=error_responses(404, 413),
    request_max_body_size=MAX_PATCH_BYTES,
    guards=[refuse_deep_bodies],
)
async def update_run(
    engine: Engine, principal: Caller, run_id: RunId, data: PatchBody
) -> dict[str, Any]:
    changes = patch_changes(data)
    async with engine.begin() as conn:
        run = await run_queries.update_run(conn, principal, run_id, changes)
    return run_json(found(run, run_id), with_messages=True)


@delete(
    "/runs/{run_id:str}",
    status_code=200,
    summary="Soft-delete a run (200 with the run); `purge=true` removes it and its tasks (204)",
    responses=_BY_ID
    | {204: ResponseSpec(None, description="Purged: the run and its tasks are gone.")},
)
async def delete_run(
    engine: Engine, principal: Caller, run_id: RunId, purge: Purge = False
) -> Response[Any]:
    async with engine.begin() as conn:
        if purge:
            if not await run_queries.purge_run(conn, principal, run_id):
                raise not_found(run_id)
            return Response(content=None, status_code=204)
        run = await run_queries.set_run_status(conn, principal, run_id, "deleted")
    return Response(run_json(found(run, run_id), with_messages=True))


@post(
    "/runs/{run_id:str}/restore",
    status_code=200,
    summary="Make a run active again",
    responses=_BY_ID,
)
async def restore_run(engine: Engine, principal: Caller, run_id: RunId) -> dict[str, Any]:
    async with engine.begin() as conn:
        run = await run_queries.set_run_status(conn, principal, run_id, "active")
    return run_json(found(run, run_id), with_messages=True)


@dataclass
class ExportOperation(Operation):
    """The export's 200 in the schema: one content type per format (litestar declares one)."""

    def __post_init__(self) -> None:
        ok = self.responses["200"] if self.responses else None
        if isinstance(ok, OpenAPIResponse):
            ok.content = {
                media_type: OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT if "json" in media_type else OpenAPIType.STRING
                    )
                )
                for media_type in EXPORT_MEDIA_TYPES
            }


@get(
    "/runs/{run_id:str}/export",
    summary="Download a run as JSON, a Markdown transcript or CSV",
    responses=_BY_ID,
    operation_class=ExportOperation,
)
async def export(
    engine: Engine,
    principal: Caller,
    run_id: RunId,
    format: Format = "json",  # shadows the builtin: it is the parameter's public name
) -> Response[bytes]:
    async with engine.connect() as conn:
        run = found(await run_queries.get_run(conn, principal, run_id), run_id)
        tasks = await task_queries.all_run_tasks(conn, principal, run_id)
    file = export_run(run, tasks, format)
    disposition = f'attachment; filename="{file.filename}"'
    return Response(
        file.body.encode(), media_type=file.media_type, headers={"Content-Disposition": disposition}
    )


def found(row: Any, run_id: str) -> Any:
    if row is None:
        raise not_found(run_id)
    return row


def not_found(run_id: str) -> NotFound:
    return NotFound(f"no run with id {run_id!r}", param="run_id")


RUN_ROUTES = [
    list_runs,
    get_run,
    list_run_tasks,
    get_run_messages,
    update_run,
    delete_run,
    restore_run,
    export,
]
