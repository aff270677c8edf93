"""Cursors are opaque, tied to one listing and sort, and refuse anything else. Pure."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from persistence.queries.cursor import CursorError, decode_cursor, encode_cursor
from persistence.queries.runs import ORDERINGS
from persistence.queries.tasks import NEWEST_FIRST, OLDEST_FIRST


def test_cursor_round_trips_its_key() -> None:
    token = encode_cursor("runs:name", ["Alpha", "run-1"])
    assert "=" not in token and "+" not in token and "/" not in token
    assert decode_cursor(token, "runs:name") == ["Alpha", "run-1"]


@pytest.mark.parametrize(
    ("made_for", "used_for"),
    [("runs:cost", "runs:recent"), ("runs:recent", "runs:oldest"), ("tasks:newest", "runs:name")],
)
def test_cursor_from_another_sort_is_refused(made_for: str, used_for: str) -> None:
    with pytest.raises(CursorError, match="another listing"):
        decode_cursor(encode_cursor(made_for, ["x", "y"]), used_for)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64 at all!",
        "e30",  # {}
        "W10",  # []
        encode_cursor("runs:recent", ["x", "y"])[:-3] + "@@@",
        "A" * 5000,
    ],
)
def test_malformed_cursors_are_refused(token: str) -> None:
    with pytest.raises(CursorError):
        decode_cursor(token, "runs:recent")


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("recent", datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)),
        ("oldest", datetime(2026, 1, 2, tzinfo=UTC)),
        ("name", "Zeta"),
        ("cost", Decimal("0.0000000001")),
        ("tokens", 12345678901),
        ("messages", 0),
    ],
)
def test_sort_keys_survive_the_cursor_with_their_types(sort: str, key: object) -> None:
    ordering = ORDERINGS[sort]
    row = _FakeRow({ordering.column.name: key, "id": "run-9"})
    assert ordering.decode(ordering.encode(row)) == (key, "run-9")


@pytest.mark.parametrize(
    ("sort", "bad_key"),
    [
        ("recent", "yesterday"),
        ("recent", "2026-01-02T03:04:05"),  # no offset: not one of ours
        ("cost", "NaN"),
        ("cost", 1.5),
        ("tokens", "12"),
        ("messages", True),
        ("name", 7),
    ],
)
def test_cursor_keys_of_the_wrong_type_are_refused(sort: str, bad_key: object) -> None:
    ordering = ORDERINGS[sort]
    with pytest.raises(CursorError):
        ordering.decode(encode_cursor(ordering.kind, [bad_key, "run-1"]))


def test_task_lists_have_cursors_of_their_own() -> None:
    row = _FakeRow({"created_at": datetime(2026, 1, 1, tzinfo=UTC), "id": "t1"})
    with pytest.raises(CursorError):
        OLDEST_FIRST.decode(NEWEST_FIRST.encode(row))


class _FakeRow:
    def __init__(self, mapping: dict) -> None:
        self._mapping = mapping


def forged(ordering, key: list) -> str:
    return encode_cursor(ordering.kind, key)


LATE = "9999-12-31T23:59:59.999999"
EARLY = "0001-01-01T00:00:00"


@pytest.mark.parametrize(
    ("ordering", "key"),
    [
        (ORDERINGS["recent"], [f"{LATE}-00:01", "run-1"]),  # past 9999 once in UTC
        (ORDERINGS["recent"], ["9999-12-31T23:59:59-23:59", "run-1"]),
        (ORDERINGS["oldest"], [f"{EARLY}+00:01", "run-1"]),  # before year 1 once in UTC
        (ORDERINGS["oldest"], [f"{EARLY}+14:00", "run-1"]),
        (NEWEST_FIRST, [f"{LATE}-01:00", "t1"]),
        (OLDEST_FIRST, [f"{EARLY}+01:00", "t1"]),
        (ORDERINGS["cost"], ["1e30", "run-1"]),
        (ORDERINGS["cost"], ["-1e30", "run-1"]),
        (ORDERINGS["cost"], ["922337203.6854775808", "run-1"]),  # one unit past SQLite's
        (ORDERINGS["cost"], ["1E+999999999", "run-1"]),  # past the decimal context's range
        (ORDERINGS["cost"], ["-1E-999999999", "run-1"]),
        (ORDERINGS["cost"], ["0.00000000001", "run-1"]),  # finer than storage keeps
        (ORDERINGS["cost"], [1e30, "run-1"]),
        (ORDERINGS["tokens"], [10**26, "run-1"]),
        (ORDERINGS["tokens"], [-(10**26), "run-1"]),
        (ORDERINGS["tokens"], [2**63, "run-1"]),
        (ORDERINGS["tokens"], [1e26, "run-1"]),
        (ORDERINGS["messages"], [2**31, "run-1"]),
        (ORDERINGS["messages"], [-(2**31) - 1, "run-1"]),
        (ORDERINGS["name"], ["a\x00", "run-1"]),
        (ORDERINGS["name"], ["\ud800", "run-1"]),
        (ORDERINGS["recent"], ["2026-03-01T12:00:00+00:00", "run\x00"]),
        (ORDERINGS["recent"], ["2026-03-01T12:00:00+00:00", "run\udfff"]),
        (ORDERINGS["recent"], ["2026-03-01T12:00:00+00:00", "r" * 129]),  # longer than any id
        (NEWEST_FIRST, ["2026-03-01T12:00:00+00:00", "t\x00"]),
    ],
)
def test_cursor_keys_no_column_can_hold_are_refused(ordering, key: list) -> None:
    with pytest.raises(CursorError):
        ordering.decode(forged(ordering, key))


@pytest.mark.parametrize(
    ("ordering", "key", "expected"),
    [
        (ORDERINGS["recent"], f"{LATE}+00:00", datetime.max.replace(tzinfo=UTC)),
        (ORDERINGS["oldest"], f"{EARLY}-14:00", datetime(1, 1, 1, 14, tzinfo=UTC)),
        (ORDERINGS["cost"], "922337203.6854775807", Decimal("922337203.6854775807")),
        (ORDERINGS["cost"], "-922337203.6854775807", Decimal("-922337203.6854775807")),
        (ORDERINGS["tokens"], 2**63 - 1, 2**63 - 1),
        (ORDERINGS["tokens"], -(2**63), -(2**63)),
        (ORDERINGS["messages"], 2**31 - 1, 2**31 - 1),
    ],
)
def test_cursor_keys_at_the_columns_limits_are_kept(ordering, key, expected) -> None:
    assert ordering.decode(forged(ordering, [key, "r" * 128])) == (expected, "r" * 128)
