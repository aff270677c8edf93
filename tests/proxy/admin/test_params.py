"""The admin API's own input rules (`proxy.admin.params`), on tables of cases. Pure: the
database-facing rules they build on are tested in tests/persistence/test_queries_bounds.py."""

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from proxy.admin.params import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    RunPatch,
    json_nesting,
    parse_instant,
    parse_window,
    patch_changes,
)
from proxy.errors import BadRequest


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b'"[[[{{{"', 0),
        (b"{}", 1),
        (b"[[], [[]]]", 3),
        (b'{"a": [1, {"b": "]]]"}]}', 3),
        (rb'{"a": "\"[[[", "b": {}}', 2),  # an escaped quote does not end the string
        (rb'{"a": "\\", "b": [[]]}', 3),  # an escaped backslash does
        (b'{"a": "never ends [[[[', 1),
        (b'{"name": "x"', 1),  # truncated: the decoder refuses it afterwards
        (b"]]]][[", 0),
        (b"[" * 100_000, 100_000),
        (b"[]" * 100_000, 1),
    ],
)
def test_json_nesting_counts_brackets_outside_strings(raw: bytes, depth: int) -> None:
    assert json_nesting(raw) == depth


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T12:00:00", datetime(2026, 3, 1, 12, tzinfo=UTC)),
        ("2026-03-01T14:00:00+02:00", datetime(2026, 3, 1, 12, tzinfo=UTC)),
        (" 2026-03-01T12:00:00Z ", datetime(2026, 3, 1, 12, tzinfo=UTC)),
        ("0001-01-01T00:00:00-14:00", datetime(1, 1, 1, 14, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999Z", datetime.max.replace(tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999+00:01", datetime(9999, 12, 31, 23, 58, 59, 999999, UTC)),
        (None, None),
    ],
)
def test_instants_are_read_as_utc(text: str | None, expected: datetime | None) -> None:
    assert parse_instant(text, "since") == expected


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59-23:59",
        "9999-12-31T23:59:59.999999-00:01",
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00:00+00:00:01",
        "yesterday",
        "2026-02-30",
        "10000-01-01",
        "0000-12-31",
        "2026-03-01T00:00:00+24:00",
        "2026-03-01\x00",
    ],
)
def test_instants_python_cannot_hold_in_utc_are_bad_requests(text: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_instant(text, "until")
    assert refused.value.param == "until"


def test_a_window_is_compared_in_utc() -> None:
    with pytest.raises(BadRequest) as refused:
        parse_window("2026-03-01T12:00:00+00:00", "2026-03-01T13:00:00+01:00")
    assert refused.value.param == "since"


def decoded(body: dict[str, Any]) -> RunPatch:
    return msgspec.convert(body, RunPatch)


def nested(depth: int) -> dict[str, Any]:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"metadata": nested(MAX_METADATA_DEPTH + 1)}, "metadata"),
        ({"metadata": {"k": "x" * MAX_METADATA_BYTES}}, "metadata"),
        ({"metadata": {"a": [{"b\x00": 1}]}}, "metadata"),
        ({"metadata": {"a": ["\ud800"]}}, "metadata"),
        ({"name": "\udfff"}, "name"),
        ({"description": "x\ud800"}, "description"),
        ({"tags": ["ok", "\udc00"]}, "tags"),
    ],
)
def test_patch_fields_the_database_cannot_store_are_refused_by_name(
    body: dict[str, Any], param: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        patch_changes(decoded(body))
    assert refused.value.param == param


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"description": None},
        {"metadata": nested(MAX_METADATA_DEPTH)},
        {"metadata": {"k": "x" * (MAX_METADATA_BYTES - len('{"k":""}'))}},
        {"metadata": {"big": 10**30, "list": [[[]]], "none": None}},
        {"name": "𝄞", "tags": ["\x01", ""]},
    ],
)
def test_patch_fields_within_the_rules_are_changes(body: dict[str, Any]) -> None:
    assert patch_changes(decoded(body)) == body


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a\x00"},
        {"description": "\x00"},
        {"tags": ["\x00"]},
        {"tags": ["t"] * 101},
        {"tags": ["t" * 201]},
        {"name": "n" * 1001},
        {"description": "d" * 10_001},
    ],
)
def test_the_struct_refuses_what_its_types_say(body: dict[str, Any]) -> None:
    """Declared on the type, so the OpenAPI schema says it too (admin/test_openapi.py)."""
    with pytest.raises(msgspec.ValidationError):
        decoded(body)
