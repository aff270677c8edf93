"""Query parameters and bodies of the admin API → the typed inputs of `persistence.queries`.

Litestar checks types, ranges and enumerations from the handler signatures (its errors are
rendered with the parameter's name by `errors.py`); what it cannot express is checked here and
raised as `BadRequest(param=...)`: timestamps, windows, cursors and PATCH fields.

Nothing reaches the database that it cannot hold (`persistence.queries.bounds`): every string
parameter, path id and PATCH string is declared with `NUL_FREE_PATTERN` (so the schema says it),
PATCH strings are checked for lone surrogates too, ids are at most as long as the id columns,
date-times must stay within the years 1–9999 in UTC, and a PATCH is capped so that one run
cannot make every list page megabytes long.
"""

from __future__ import annotations

import re
from datetime import datetime
from itertools import accumulate
from typing import Annotated, Any, Literal

import msgspec
from litestar.connection import ASGIConnection, Request
from litestar.enums import RequestEncodingType
from litestar.handlers import BaseRouteHandler
from litestar.params import Body, KwargDefinition, PathParameter, QueryParameter

from persistence.models import ID_LENGTH
from persistence.queries.bounds import NUL_FREE_PATTERN, json_problem, utc_instant
from persistence.queries.cursor import CursorError
from persistence.queries.keyset import Ordering
from proxy.errors import BadRequest

RunStatusFilter = Literal["active", "archived", "deleted", "all"]
RunSort = Literal["recent", "oldest", "name", "cost", "tokens", "messages"]
TaskStatus = Literal["pending", "streaming", "completed", "error", "cancelled", "timeout"]
UsageGroup = Literal["day", "model", "provider", "user", "run"]
ExportFormat = Literal["json", "markdown", "csv"]

# What one PATCH may store on a run (README "Admin API"); lists return all but `messages`.
MAX_NAME_LENGTH = 1000
MAX_DESCRIPTION_LENGTH = 10_000
MAX_TAGS = 100
MAX_TAG_LENGTH = 200
MAX_METADATA_DEPTH = 20  # the metadata object itself is level 1
MAX_METADATA_BYTES = 64 * 1024  # as compact JSON
MAX_PATCH_BYTES = 1024 * 1024  # the body as sent: refused (413) before it is read whole
# Deeper than any valid PATCH (the body, then metadata's 20 levels), and far below the ~1,000
# levels where msgspec's recursive decoder gives up with a RecursionError (a 500).
MAX_BODY_NESTING = 64


def _query(description: str, **options: Any) -> QueryParameter:
    return QueryParameter(description=description, **options)


def _text_query(description: str, **options: Any) -> QueryParameter:
    """A string the database compares with a column: text the column could hold (a URL cannot
    spell a lone surrogate, so NUL is all there is to refuse)."""
    return _query(description, pattern=NUL_FREE_PATTERN, **options)


def _id(description: str) -> PathParameter:
    return PathParameter(description=description, pattern=NUL_FREE_PATTERN, max_length=ID_LENGTH)


def _text(**limits: int) -> Any:
    """A body `str` the database can store, within `limits`. Said twice: msgspec validates with
    `Meta`, and litestar's schema ignores `Meta` on list items but reads `KwargDefinition`."""
    constraints: dict[str, Any] = {"pattern": NUL_FREE_PATTERN, **limits}
    return Annotated[str, msgspec.Meta(**constraints), KwargDefinition(**constraints)]


RunId = Annotated[str, _id("The run's id (its X-Run-Id).")]
TaskId = Annotated[str, _id("The task's id (its X-Task-Id).")]
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
NameSearch = Annotated[str | None, _text_query("Case-insensitive search in run names.")]
SourceType = Annotated[str | None, _text_query("The run's source_type, exactly.")]
UserId = Annotated[str | None, _text_query("The end user (X-User-Id), exactly.")]
ModelName = Annotated[str | None, _text_query("A task's model, upstream_model or response_model.")]
Sort = Annotated[RunSort, _query("recent/oldest: last message; name A→Z; others largest first.")]
RunFilterId = Annotated[str | None, _text_query("Only tasks of this run.", max_length=ID_LENGTH)]
TaskStatusFilter = Annotated[TaskStatus | None, _query("Only tasks in this status.")]
GroupBy = Annotated[UsageGroup, _query("day (UTC) or model (upstream), provider, user, run.")]
Format = Annotated[ExportFormat, _query("json, markdown (transcript) or csv.")]
Purge = Annotated[bool, _query("Remove the run and its tasks for good (204).")]
PriceModel = Annotated[str, _query("Model name as sent by clients or upstream.")]
PriceProvider = Annotated[str | None, _query("Narrows the lookup to this provider.")]


RunName = _text(min_length=1, max_length=MAX_NAME_LENGTH)
RunDescription = _text(max_length=MAX_DESCRIPTION_LENGTH)
Tags = Annotated[list[_text(max_length=MAX_TAG_LENGTH)], msgspec.Meta(max_length=MAX_TAGS)]
Metadata = Annotated[
    dict[str, Any],
    msgspec.Meta(
        description=f"At most {MAX_METADATA_DEPTH} levels deep and {MAX_METADATA_BYTES} bytes "
        "as JSON; no NUL characters in keys or values."
    ),
]


class RunPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Fields of a run an admin may change; absent fields are left as they are.
    `metadata` and `tags` replace the stored values as a whole."""

    name: RunName | msgspec.UnsetType = msgspec.UNSET
    description: RunDescription | None | msgspec.UnsetType = msgspec.UNSET
    is_starred: bool | msgspec.UnsetType = msgspec.UNSET
    status: Literal["active", "archived"] | msgspec.UnsetType = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET
    metadata: Metadata | msgspec.UnsetType = msgspec.UNSET


# The schema says what the struct enforces (litestar does not carry forbid_unknown_fields over).
PatchBody = Annotated[
    RunPatch,
    Body(media_type=RequestEncodingType.JSON, schema_extra={"additionalProperties": False}),
]


def patch_changes(patch: RunPatch) -> dict[str, Any]:
    """The fields the PATCH body set (an explicit `null` description clears it), each checked
    for what its type cannot say (`check_storable`)."""
    changes = {
        name: value
        for name in patch.__struct_fields__
        if (value := getattr(patch, name)) is not msgspec.UNSET
    }
    for name, value in changes.items():
        check_storable(name, value)
    return changes


def check_storable(field: str, value: Any) -> None:
    """Every key and string at any depth storable (lone surrogates included, whether or not
    the JSON decoder lets them through), and `metadata` within its depth and size. The depth is
    walked first, so a deeply nested body is refused before anything tries to encode it."""
    problem = json_problem(value, MAX_METADATA_DEPTH)
    if problem is None and field == "metadata" and _json_size(value) > MAX_METADATA_BYTES:
        problem = f"is larger than {MAX_METADATA_BYTES} bytes as JSON"
    if problem is not None:
        raise BadRequest(f"{field} {problem}", param=field)


def _json_size(value: Any) -> int:
    return len(msgspec.json.encode(value))


def parse_instant(value: str | None, param: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadRequest(
            f"{param} must be an ISO 8601 date or date-time, got {value!r}", param=param
        ) from None
    instant = utc_instant(parsed)
    if instant is None:
        raise BadRequest(f"{param} is outside the years 1-9999 in UTC: {value!r}", param=param)
    return instant


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


# A JSON string, or what is left of an unterminated one: each byte is looked at once.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.?[^"\\]*)*"?', re.DOTALL)
_BRACKETS_ONLY = bytes.maketrans(b"{}", b"[]"), bytes(set(range(256)) - set(b"[]{}"))
_BRACKET_STEP = {ord("["): 1, ord("]"): -1}


def json_nesting(raw: bytes) -> int:
    """How deeply `raw` JSON nests arrays and objects, found without decoding it (so without
    recursion): strings dropped, the brackets left counted up and down. Linear; malformed JSON
    gets a number too, and the decoder refuses it afterwards."""
    brackets = _JSON_STRING.sub(b"", raw).translate(*_BRACKETS_ONLY)
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets), initial=0))


async def refuse_deep_bodies(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Litestar guard for endpoints with a JSON body: one nested deeper than `MAX_BODY_NESTING`
    is a 400 before the decoder can recurse into it. (The body read here is kept for the
    handler, and its size limit applies.)"""
    if not isinstance(connection, Request):
        return
    if json_nesting(await connection.body()) > MAX_BODY_NESTING:
        message = f"request body is nested more than {MAX_BODY_NESTING} levels deep"
        raise BadRequest(message, param="body")


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
