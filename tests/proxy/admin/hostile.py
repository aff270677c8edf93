"""Hypothesis strategies for what an attacker sends the admin API, each value paired with the
answer it must get (`Poison`): NUL characters, lone surrogates, date-times whose offset leaves
the years 1–9999, forged cursors whose keys no column can hold, and PATCH fields at and past
their caps. Used by the schemathesis run (`test_openapi_fuzz.py`) on top of generated cases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from persistence.queries.cursor import encode_cursor
from proxy.admin.params import (
    MAX_BODY_NESTING,
    MAX_DESCRIPTION_LENGTH,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_NAME_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
)

# Query parameters the server may refuse for what they mean, not their shape: a hostile value
# in one of the others must be refused under its own name, so these are left out of its case.
SEMANTIC_QUERY = ("since", "until", "cursor")


@dataclass(frozen=True)
class Poison:
    """One hostile value for one parameter (`location` is query, path or body). `refused_as`:
    the `param`s a 400 may name; empty when the value is odd but valid and must be answered."""

    location: str
    name: str
    value: Any
    refused_as: frozenset[str] = frozenset()
    also: dict[str, str] = field(default_factory=dict)  # query parameters it needs (a sort)

    def apply(self, case: Any) -> None:
        if self.location == "path":
            case.path_parameters[self.name] = self.value
        elif self.location == "body":
            case.body = {self.name: self.value}
        else:
            query = {k: v for k, v in (case.query or {}).items() if k not in SEMANTIC_QUERY}
            case.query = query | self.also | {self.name: self.value}


def refused(location: str, name: str, *also_as: str) -> Any:
    """A function of a value → the Poison that must be a 400 naming `name` (or `also_as`)."""
    return lambda value: Poison(location, name, value, frozenset({name, *also_as}))


def by_size(location: str, name: str, limit: int) -> Any:
    """A function of (value, size) → a Poison refused exactly when `size` exceeds `limit`."""

    def poison(sized: tuple[Any, int]) -> Poison:
        value, size = sized
        return Poison(location, name, value, frozenset({name}) if size > limit else frozenset())

    return poison


# --- text -------------------------------------------------------------------------------------


def with_nul(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(text, text).map(lambda parts: f"{parts[0]}\x00{parts[1]}")


WITH_NUL = with_nul(st.text(max_size=5))
# In a path segment: no `/`, `?` or `#`, which would send the request somewhere else.
ID_WITH_NUL = with_nul(st.text(st.characters(exclude_characters="/?#"), max_size=5))
# Only where JSON reaches the server as we write it (cursors): schemathesis sends bodies as
# UTF-8, which cannot carry one; tests/proxy/admin/test_run_changes.py sends those by hand.
LONE_SURROGATE = st.tuples(
    st.text(max_size=3),
    st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]),
    st.text(max_size=3),
).map("".join)


def around(limit: int, spread: int = 3) -> st.SearchStrategy[int]:
    return st.integers(min_value=max(limit - spread, 1), max_value=limit + spread)


# --- date-times -------------------------------------------------------------------------------

EDGE_MOMENTS = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 2)),
    st.datetimes(min_value=datetime(9999, 12, 30, 23), max_value=datetime.max),
)
OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timedelta(minutes=minutes)
)


def stamped(local: datetime, offset: timedelta | None) -> tuple[str, bool]:
    """ISO 8601 text of `local` at `offset` (none: naive, read as UTC), and whether it is an
    instant Python cannot hold (UTC = local - offset outside the years 1–9999)."""
    if offset is None:
        return local.isoformat(), False
    text = local.replace(tzinfo=timezone(offset)).isoformat()
    try:
        local - offset
    except OverflowError:
        return text, True
    return text, False


EDGE_INSTANTS = st.builds(stamped, EDGE_MOMENTS, st.none() | OFFSETS)
OVERFLOWING_INSTANTS = EDGE_INSTANTS.filter(lambda pair: pair[1]).map(lambda pair: pair[0])


def instant_poisons(name: str) -> st.SearchStrategy[Poison]:
    return EDGE_INSTANTS.map(
        lambda pair: Poison("query", name, pair[0], frozenset({name}) if pair[1] else frozenset())
    )


# --- cursors ----------------------------------------------------------------------------------

A_TIME = "2026-03-01T12:00:00+00:00"
VALID_RUN_KEYS = {
    "recent": A_TIME,
    "oldest": A_TIME,
    "name": "hello",
    "cost": "0.0037000000",
    "tokens": 1100,
    "messages": 2,
}
# Past SQLite's units (and Postgres's NUMERIC(20,10)), past the decimal context, too fine.
MONEY_NO_COLUMN_HOLDS = [
    "1e30",
    "-1e30",
    "922337203.6854775808",
    "-922337203.6854775808",
    "9999999999.9999999999",
    "1E+999999999",
    "1E-999999999",
    "0.00000000001",
    "NaN",
    "-Infinity",
]
HUGE_FLOATS = st.sampled_from([1e26, -1e26, 1e30, 1e308, float("inf"), float("nan")])
BAD_RUN_KEYS: dict[str, st.SearchStrategy[Any]] = {
    "recent": OVERFLOWING_INSTANTS,
    "oldest": OVERFLOWING_INSTANTS,
    "name": WITH_NUL | LONE_SURROGATE,
    "cost": st.sampled_from(MONEY_NO_COLUMN_HOLDS) | HUGE_FLOATS,
    "tokens": st.sampled_from([2**63, -(2**63) - 1, 10**26, -(10**26)]) | HUGE_FLOATS,
    "messages": st.sampled_from([2**31, -(2**31) - 1, 2**63, 10**26]) | HUGE_FLOATS,
}
BAD_IDS = WITH_NUL | LONE_SURROGATE | st.text(min_size=129, max_size=140)


def forged_keys(good_key: Any, bad_keys: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """A key no column can hold: the sort value or the id, the other one valid."""
    return st.one_of(
        st.tuples(bad_keys, st.just("run-1")).map(list),
        st.tuples(st.just(good_key), BAD_IDS).map(list),
    )


def run_cursor_poisons() -> st.SearchStrategy[Poison]:
    """A cursor stamped for the sort it is sent with, so only its key can be wrong."""
    return st.sampled_from(sorted(VALID_RUN_KEYS)).flatmap(
        lambda sort: forged_keys(VALID_RUN_KEYS[sort], BAD_RUN_KEYS[sort]).map(
            lambda key: Poison(
                "query",
                "cursor",
                encode_cursor(f"runs:{sort}", key),
                frozenset({"cursor"}),
                also={"sort": sort},
            )
        )
    )


def task_cursor_poisons(kind: str) -> st.SearchStrategy[Poison]:
    return forged_keys(A_TIME, OVERFLOWING_INSTANTS).map(
        lambda key: Poison("query", "cursor", encode_cursor(kind, key), frozenset({"cursor"}))
    )


# --- PATCH bodies -----------------------------------------------------------------------------


def nested(depth: int, leaf: Any = 1, key: str = "a") -> dict[str, Any]:
    """`depth` objects inside each other, `key` and `leaf` at the bottom."""
    value: Any = leaf
    for _ in range(depth):
        value = {key: value}
    return value


def json_sized(size: int) -> tuple[dict[str, str], int]:
    """An object of exactly `size` bytes as compact JSON: {"k":"xx…"}."""
    return {"k": "x" * (size - len('{"k":""}'))}, size


def nested_metadata(depth: int) -> Poison:
    """Metadata `depth` levels deep: past the body's nesting limit the guard refuses the body
    before it is decoded; past metadata's own limit the field is refused by name."""
    if depth + 1 > MAX_BODY_NESTING:
        return Poison("body", "metadata", nested(depth), frozenset({"body"}))
    return by_size("body", "metadata", MAX_METADATA_DEPTH)((nested(depth), depth))


DEPTHS = st.one_of(
    around(MAX_METADATA_DEPTH, 2), around(MAX_BODY_NESTING - 1, 2), st.integers(1, 300)
)
METADATA_POISONS = st.one_of(
    DEPTHS.map(nested_metadata),
    around(MAX_METADATA_BYTES, 4)
    .map(json_sized)
    .map(by_size("body", "metadata", MAX_METADATA_BYTES)),
    st.builds(nested, st.integers(1, MAX_METADATA_DEPTH - 1), WITH_NUL).map(
        refused("body", "metadata")
    ),
    st.builds(nested, st.integers(1, MAX_METADATA_DEPTH - 1), st.just(1), WITH_NUL).map(
        refused("body", "metadata")
    ),
    st.just(Poison("body", "metadata", {"big": 10**30, "small": -(10**30), "f": 1e308})),
)


def text_field_poisons(name: str, limit: int) -> st.SearchStrategy[Poison]:
    return st.one_of(
        WITH_NUL.map(refused("body", name)),
        around(limit).map(lambda n: ("x" * n, n)).map(by_size("body", name, limit)),
    )


TAG_POISONS = st.one_of(
    st.lists(WITH_NUL, min_size=1, max_size=3).map(refused("body", "tags")),
    around(MAX_TAGS).map(lambda n: (["t"] * n, n)).map(by_size("body", "tags", MAX_TAGS)),
    around(MAX_TAG_LENGTH)
    .map(lambda n: (["t" * n], n))
    .map(by_size("body", "tags", MAX_TAG_LENGTH)),
    st.just(Poison("body", "tags", ["t" * MAX_TAG_LENGTH] * MAX_TAGS)),
)
PATCH_POISONS = st.one_of(
    text_field_poisons("name", MAX_NAME_LENGTH),
    text_field_poisons("description", MAX_DESCRIPTION_LENGTH),
    TAG_POISONS,
    METADATA_POISONS,
)


# --- per operation ----------------------------------------------------------------------------

QUERY_TEXT = {
    ("GET", "/admin/runs"): ("q", "source_type", "user_id", "model"),
    ("GET", "/admin/tasks"): ("run_id", "model"),
}
WINDOWED = {("GET", "/admin/runs"), ("GET", "/admin/tasks"), ("GET", "/admin/usage")}
CURSORS = {
    ("GET", "/admin/runs"): run_cursor_poisons,
    ("GET", "/admin/tasks"): lambda: task_cursor_poisons("tasks:newest"),
    ("GET", "/admin/runs/{run_id}/tasks"): lambda: task_cursor_poisons("run_tasks:oldest"),
}


def poisons_for(method: str, path: str) -> st.SearchStrategy[Poison]:
    """Every hostile value the operation takes: in its path ids, text filters, window, cursor
    and body. (A URL cannot carry a lone surrogate, so those go in cursors only.)"""
    options = [
        ID_WITH_NUL.map(refused("path", name))
        for name in ("run_id", "task_id")
        if "{" + name + "}" in path
    ]
    options += [WITH_NUL.map(refused("query", name)) for name in QUERY_TEXT.get((method, path), ())]
    if (method, path) in WINDOWED:
        options += [instant_poisons("since"), instant_poisons("until")]
    if (method, path) in CURSORS:
        options.append(CURSORS[method, path]())
    if method == "PATCH":
        options.append(PATCH_POISONS)
    return st.one_of(options)


def describe(poison: Poison) -> str:
    """For failure messages: the value as JSON, cut short."""
    return f"{poison.location} {poison.name}={json.dumps(poison.value)[:200]}"
