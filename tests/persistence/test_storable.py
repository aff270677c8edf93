"""The storable rule: NUL and lone surrogates → U+FFFD, non-finite numbers → strings, JSON nested
beyond MAX_DEPTH cut; everything else (and every clean value) kept as it is."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from persistence.record import CallRecord, RunInfo
from persistence.storable import (
    MAX_DEPTH,
    REPLACEMENT,
    TOO_DEEP,
    storable_json,
    storable_record,
    storable_text,
)

R = REPLACEMENT


@pytest.mark.parametrize(
    "text, stored",
    [
        ("plain", "plain"),
        ("caf\u00e9 \u2615 \U0001f600", "caf\u00e9 \u2615 \U0001f600"),
        ("a\x00b", f"a{R}b"),
        ("\ud800x", f"{R}x"),
        ("x\udfff", f"x{R}"),
        ("\ud83d\ude00", "\ud83d\ude00"),  # a pair in a Python str is two lone surrogates
        ("\x00\x00", f"{R}{R}"),
        ("tab\tnewline\n", "tab\tnewline\n"),
        (None, None),
    ],
)
def test_text_the_databases_cannot_hold_is_replaced(text, stored):
    if text == "\ud83d\ude00":
        stored = f"{R}{R}"
    assert storable_text(text) == stored


@pytest.mark.parametrize(
    "value, stored",
    [
        ({"temperature": math.nan}, {"temperature": "NaN"}),
        ([math.inf, -math.inf, 1.5], ["Infinity", "-Infinity", 1.5]),
        ({"a\x00": ["x\ud800"]}, {f"a{R}": [f"x{R}"]}),
        ({"n": 2**70, "m": -(2**80)}, {"n": 2**70, "m": -(2**80)}),
        ("\x00", R),
        (math.nan, "NaN"),
        (7, 7),
        (None, None),
        ({"ok": [1, "two", {"three": None, "four": True}]}, {"ok": [1, "two", {"three": None,
                                                                               "four": True}]}),
    ],
)  # fmt: skip
def test_json_values_are_made_storable(value, stored):
    assert storable_json(value) == stored
    json.dumps(storable_json(value), allow_nan=False).encode("utf-8")  # any backend takes it


def test_a_clean_value_is_returned_as_the_same_object():
    value = {"model": "m", "messages": [{"role": "user", "content": "[x] {y} " * 100}]}
    assert storable_json(value) is value
    text = "caf\u00e9"
    assert storable_text(text) is text


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def depth_of(value) -> int:
    """Levels of containers (dicts and lists)."""
    if isinstance(value, dict):
        value = list(value.values())
    return 1 + max((depth_of(v) for v in value), default=0) if isinstance(value, list) else 0


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, 900, 995])
def test_json_nested_too_deep_keeps_its_first_levels(depth):
    value = {"deep": nested(depth)}  # depth + 1 levels
    stored = storable_json(value)
    assert depth_of(stored) == min(depth + 1, MAX_DEPTH)
    assert (TOO_DEEP in json.dumps(stored)) is (depth + 1 > MAX_DEPTH)
    if depth + 1 <= MAX_DEPTH:
        assert stored is value


def test_brackets_inside_strings_do_not_cut_a_shallow_value():
    value = {"content": "[" * 500 + "{" * 500}
    assert storable_json(value) == value


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                      max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(JSON)
def test_any_json_value_becomes_strict_utf8_json(value):
    stored = storable_json(value)
    json.dumps(stored, allow_nan=False).encode("utf-8")
    assert "\\u0000" not in json.dumps(stored)


def test_a_record_is_made_storable_field_by_field():
    from datetime import UTC, datetime

    record = CallRecord(
        task_id="t1",
        run=RunInfo("r1", name="n\x00", metadata={"k": math.inf}),
        task_name=None,
        user_id="u\ud800",
        owner=None,
        endpoint="/v1/chat/completions",
        provider="p",
        model="m",
        upstream_model="m",
        stream=False,
        status="completed",
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        request={"messages": [{"role": "user", "content": "hi\x00"}], "temperature": math.nan},
        response_text="ok\ud800",
        tool_calls=[{"function": {"arguments": "\x00"}}],
        error_message="e\x00",
    )
    stored = storable_record(record)
    assert stored.run == RunInfo("r1", name=f"n{R}", metadata={"k": "Infinity"})
    assert stored.user_id == f"u{R}" and stored.response_text == f"ok{R}"
    assert stored.error_message == f"e{R}"
    assert stored.request == {
        "messages": [{"role": "user", "content": f"hi{R}"}],
        "temperature": "NaN",
    }
    assert stored.tool_calls == [{"function": {"arguments": R}}]
    clean = storable_record(stored)
    assert clean is stored
