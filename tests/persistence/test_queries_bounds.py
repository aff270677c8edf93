"""What the columns can hold on both backends, decided by `bounds` alone. Pure."""

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import BigInteger, Boolean, Integer, String, Text

from persistence.queries.bounds import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    MONEY_LIMIT,
    NUL_FREE_PATTERN,
    column_holds,
    json_problem,
    text_problem,
    utc_instant,
)
from persistence.types import Money, UTCDateTime

TEXTS = [
    ("", None),
    ("plain", None),
    ("naïve café ☕ 𝄞", None),  # non-BMP is a surrogate *pair* in JSON, one character here
    ("line\nbreak\ttab", None),
    ("\x01\x7f", None),
    ("\x00", "contains a NUL character"),
    ("abc\x00", "contains a NUL character"),
    ("\ud800", "contains a lone surrogate"),
    ("x\udfffy", "contains a lone surrogate"),
    ("\udbff\udc00", "contains a lone surrogate"),  # a pair spelled as two code points
]


@pytest.mark.parametrize(("text", "problem"), TEXTS)
def test_text_problem(text: str, problem: str | None) -> None:
    assert text_problem(text) == problem


@pytest.mark.parametrize(("text", "problem"), TEXTS)
def test_the_published_pattern_refuses_exactly_the_nul_characters(
    text: str, problem: str | None
) -> None:
    assert (re.search(NUL_FREE_PATTERN, text) is None) == ("\x00" in text)


def deep(levels: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(levels):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, None),
        (1, None),
        (10**30, None),
        ("text", None),
        ({}, None),
        ([], None),
        ({"a": [1, "two", {"b": None}]}, None),
        (deep(3), None),
        (deep(4), "is nested more than 3 levels deep"),
        ([[[["x"]]]], "is nested more than 3 levels deep"),
        (deep(3, "x\x00"), "contains a NUL character"),
        ({"a\x00": 1}, "has a key that contains a NUL character"),
        ({"a": {"b": {"\ud800": 1}}}, "has a key that contains a lone surrogate"),
        (["ok", ["\udc00"]], "contains a lone surrogate"),
        (deep(1000), "is nested more than 3 levels deep"),
    ],
)
def test_json_problem_walks_keys_and_values_to_a_depth(value: object, problem: str | None) -> None:
    assert json_problem(value, max_depth=3) == problem


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 3, 1, 12, 0), datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
        (datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
         datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
        (datetime.min, EARLIEST_INSTANT),
        (datetime.max, LATEST_INSTANT),
        (datetime.min.replace(tzinfo=timezone(timedelta(hours=-14))),
         datetime(1, 1, 1, 14, tzinfo=UTC)),
        (datetime.max.replace(tzinfo=timezone(timedelta(hours=14))),
         LATEST_INSTANT - timedelta(hours=14)),
        (datetime.min.replace(tzinfo=timezone(timedelta(minutes=1))), None),
        (datetime.min.replace(tzinfo=timezone(timedelta(hours=14))), None),
        (datetime.max.replace(tzinfo=timezone(timedelta(minutes=-1))), None),
        (datetime.max.replace(tzinfo=timezone(timedelta(hours=-23, minutes=-59))), None),
    ],
)  # fmt: skip
def test_utc_instant_is_none_when_the_offset_leaves_the_years_1_to_9999(
    moment: datetime, expected: datetime | None
) -> None:
    assert utc_instant(moment) == expected


def test_money_limit_is_what_sqlite_units_hold() -> None:
    assert MONEY_LIMIT.scaleb(10) == 2**63 - 1


@pytest.mark.parametrize(
    ("column_type", "value", "holds"),
    [
        (Money(), Decimal("0.0037000000"), True),
        (Money(), Decimal("-1"), True),
        (Money(), MONEY_LIMIT, True),
        (Money(), -MONEY_LIMIT, True),
        (Money(), MONEY_LIMIT + Decimal("1e-10"), False),
        (Money(), Decimal("1e30"), False),
        (Money(), Decimal("-1e30"), False),
        (Money(), Decimal("9999999999.9999999999"), False),  # NUMERIC(20,10) would, SQLite not
        (Money(), Decimal("0.00000000001"), False),  # storage would round it
        (Money(), Decimal("NaN"), False),
        (Money(), Decimal("Infinity"), False),
        (Money(), "0.1", False),
        (BigInteger(), 2**63 - 1, True),
        (BigInteger(), -(2**63), True),
        (BigInteger(), 2**63, False),
        (BigInteger(), -(2**63) - 1, False),
        (BigInteger(), 10**26, False),
        (BigInteger(), True, False),
        (BigInteger(), 1.0, False),
        (Integer(), 2**31 - 1, True),
        (Integer(), -(2**31), True),
        (Integer(), 2**31, False),
        (Integer(), -(2**31) - 1, False),
        (UTCDateTime(), datetime(2026, 3, 1, tzinfo=UTC), True),
        (UTCDateTime(), datetime.max.replace(tzinfo=timezone(timedelta(hours=-1))), False),
        (UTCDateTime(), "2026-03-01", False),
        (String(128), "run-1", True),
        (String(128), "r" * 128, True),
        (String(128), "r" * 129, False),
        (String(128), "run\x00", False),
        (String(128), "run\ud800", False),
        (String(), "n" * 100_000, True),
        (Text(), "a\x00b", False),
        (String(), 7, False),
        (Boolean(), True, False),  # no rule for it: not a sort column
    ],
)
def test_column_holds(column_type: object, value: object, holds: bool) -> None:
    assert column_holds(column_type, value) is holds
