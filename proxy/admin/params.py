"""Query parameters and bodies of the admin API → the typed inputs of `persistence.queries`.

Litestar checks types, ranges and enumerations from the handler signatures (its errors are
rendered with the parameter's name by `errors.py`); what it cannot express is checked here and
raised as `BadRequest(param=...)`: timestamps, windows, cursors and PATCH fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType
from litestar.handlers import BaseRouteHandler
from litestar.params import Body, PathParameter, QueryParameter

from persistence.queries.cursor import CursorError
from persistence.queries.keyset import Ordering
from proxy.errors import BadRequest

RunStatusFilter = Literal["active", "archived", "deleted", "all"]
RunSort = Literal["recent", "oldest", "name", "cost", "tokens", "messages"]
TaskStatus = Literal["pending", "streaming", "completed", "error", "cancelled", "timeout"]
UsageGroup = Literal["day", "model", "provider", "user", "run"]
ExportFormat = Literal["json", "markdown", "csv"]


def _query(description: str, **options: Any) -> QueryParameter:
    return QueryParameter(description=description, **options)


RunId = Annotated[str, PathParameter(description="The run's id (its X-Run-Id).")]
TaskId = Annotated[str, PathParameter(description="The task's id (its X-Task-Id).")]
Limit = Annotated[int, _query("Page size, 1–200.", ge=1, le=200)]
Cursor = Annotated[str | None, _query("`next_cursor` of the previous page (same sort).")]
Instant = Annotated[
    str | None,
    _query(
        "ISO 8601 date or date-time; UTC when it has no offset.",
        schema_extra={"format": "date-time"},
    ),
]
StatusFilter = Annotated[RunStatusFilter, _query("`all` includes archived and deleted runs.")]
Starred = Annotated[bool | None, _query("Only starred (true) or unstarred (false) runs.")]
NameSearch = Annotated[str | None, _query("Case-insensitive search in run names.")]
SourceType = Annotated[str | None, _query("The run's source_type, exactly.")]
UserId = Annotated[str | None, _query("The end user (X-User-Id), exactly.")]
ModelName = Annotated[str | None, _query("A task's model, upstream_model or response_model.")]
Sort = Annotated[RunSort, _query("recent/oldest: last message; name A→Z; others largest first.")]
RunFilterId = Annotated[str | None, _query("Only tasks of this run.")]
TaskStatusFilter = Annotated[TaskStatus | None, _query("Only tasks in this status.")]
GroupBy = Annotated[UsageGroup, _query("day (UTC) or model (upstream), provider, user, run.")]
Format = Annotated[ExportFormat, _query("json, markdown (transcript) or csv.")]
Purge = Annotated[bool, _query("Remove the run and its tasks for good (204).")]
PriceModel = Annotated[str, _query("Model name as sent by clients or upstream.")]
PriceProvider = Annotated[str | None, _query("Narrows the lookup to this provider.")]


class RunPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Fields of a run an admin may change; absent fields are left as they are.
    `metadata` and `tags` replace the stored values as a whole."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    description: str | None | msgspec.UnsetType = msgspec.UNSET
    is_starred: bool | msgspec.UnsetType = msgspec.UNSET
    status: Literal["active", "archived"] | msgspec.UnsetType = msgspec.UNSET
    tags: list[str] | msgspec.UnsetType = msgspec.UNSET
    metadata: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


# The schema says what the struct enforces (litestar does not carry forbid_unknown_fields over).
PatchBody = Annotated[
    RunPatch,
    Body(media_type=RequestEncodingType.JSON, schema_extra={"additionalProperties": False}),
]


def patch_changes(patch: RunPatch) -> dict[str, Any]:
    """The fields the PATCH body set (an explicit `null` description clears it)."""
    return {
        name: value
        for name in patch.__struct_fields__
        if (value := getattr(patch, name)) is not msgspec.UNSET
    }


def parse_instant(value: str | None, param: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadRequest(
            f"{param} must be an ISO 8601 date or date-time, got {value!r}", param=param
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """`since` (inclusive) and `until` (exclusive); an empty window is a mistake, not a query."""
    start, end = parse_instant(since, "since"), parse_instant(until, "until")
    if start is not None and end is not None and start >= end:
        raise BadRequest("since must be earlier than until", param="since")
    return start, end


def parse_cursor(ordering: Ordering, cursor: str | None) -> tuple[Any, Any] | None:
    if cursor is None:
        return None
    try:
        return ordering.decode(cursor)
    except CursorError as exc:
        raise BadRequest(f"invalid cursor: {exc}", param="cursor") from None


def reject_unknown_query_parameters(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Litestar guard: a query parameter the endpoint does not take is a 400, not ignored, so a
    typo (`?purg=true`, `?sort_by=cost`) cannot quietly do something else."""
    not_query = {*handler.resolve_dependencies(), *connection.path_params, "data"}
    known = {
        getattr(field.kwarg_definition, "query", None) or name
        for name, field in handler.parsed_fn_signature.parameters.items()
        if name not in not_query
    }
    unknown = sorted(set(connection.query_params) - known)
    if unknown:
        raise BadRequest(f"unknown query parameter {unknown[0]!r}", param=unknown[0])
