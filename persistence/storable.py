"""One rule that makes any captured value storable, the same on SQLite and Postgres. Pure.

A proxy records what clients and upstreams send, and they send what the databases refuse:
Postgres text and JSONB cannot hold NUL; neither database's UTF-8 can hold a lone surrogate
(`"\\ud800"` is valid JSON and decodes to one); neither JSON type holds NaN or Infinity. So,
before a value is written:

- NUL (U+0000) and lone surrogates (U+D800–U+DFFF), in text columns and in JSON strings and
  keys, become U+FFFD (the replacement character);
- NaN, Infinity and -Infinity inside JSON become the strings "NaN", "Infinity", "-Infinity";
- JSON nested deeper than `MAX_DEPTH` levels keeps its first `MAX_DEPTH` levels; what is
  deeper becomes the string `TOO_DEEP`.

Everything else is stored as it came, integers beyond 64 bits included (both JSON types hold
them). A clean value (the common case) is detected in one C-speed pass and returned as is.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from typing import Any

from persistence.record import CallRecord, RunInfo

REPLACEMENT = "\ufffd"
MAX_DEPTH = 64
TOO_DEEP = "[nested too deep]"

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # what no database column holds
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_ONE_KIND = bytes.maketrans(b"{}", b"[]")
_CHECK = json.JSONEncoder(ensure_ascii=False, allow_nan=False, check_circular=False).encode
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def storable_text(value: str | None) -> str | None:
    """`value` with NUL and lone surrogates replaced; the same object when it has neither."""
    if value is None or "\x00" not in value and (value.isascii() or not _has_surrogate(value)):
        return value
    return UNSTORABLE.sub(REPLACEMENT, value)


def storable_json(value: Any) -> Any:
    """`value` (decoded JSON) made storable by the module's rule; the same object when it
    already is."""
    if value is None or isinstance(value, bool | int):
        return value
    try:
        encoded = _CHECK(value)
    except (ValueError, RecursionError, TypeError):  # NaN/Infinity, too deep, not JSON
        return _clean(value, 0)
    if "\\u0000" in encoded or _has_surrogate(encoded) or _deeper_than(encoded, MAX_DEPTH):
        return _clean(value, 0)
    return value


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _deeper_than(encoded: str, depth: int) -> bool:
    """Whether the JSON text may nest deeper than `depth`, in C-speed passes: keep only the
    bracket bytes (no UTF-8 sequence contains one), then strip innermost pairs level by level.
    Brackets inside strings can make it answer yes for a shallow value; that only sends the
    value through `_clean`, which measures depth exactly on the objects."""
    if encoded.count("[") + encoded.count("{") <= depth:
        return False
    raw = encoded.encode("utf-8", "surrogatepass")
    brackets = raw.translate(_ONE_KIND, _NOT_BRACKET)  # `{}` become `[]`: one pair per level
    for _ in range(depth):
        brackets = brackets.replace(b"[]", b"")
        if not brackets:
            return False
    return True


def _clean(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return UNSTORABLE.sub(REPLACEMENT, value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return _NON_FINITE.get(value, value)
    if isinstance(value, dict | list | tuple) and depth >= MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, dict):
        return {_clean(str(key), depth): _clean(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item, depth + 1) for item in value]
    if value is None or isinstance(value, bool | int):
        return value
    return UNSTORABLE.sub(REPLACEMENT, str(value))  # not a JSON type: stored as its text


_RECORD_TEXT = (
    "task_id",
    "task_name",
    "user_id",
    "owner",
    "endpoint",
    "provider",
    "model",
    "upstream_model",
    "response_model",
    "response_text",
    "finish_reason",
    "error_message",
    "instance_id",
)
_RECORD_JSON = ("request", "tool_calls")
_RUN_TEXT = ("id", "name", "source_type", "source_id")


def storable_record(record: CallRecord) -> CallRecord:
    """The record with every text and JSON field made storable; the same object when all
    already are."""
    changes: dict[str, Any] = {}
    for name in _RECORD_TEXT:
        value = getattr(record, name)
        if value is not None and (clean := storable_text(value)) is not value:
            changes[name] = clean
    for name in _RECORD_JSON:
        value = getattr(record, name)
        if value is not None and (clean := storable_json(value)) is not value:
            changes[name] = clean
    run = record.run
    if run is not None and (clean_run := _storable_run(run)) is not run:
        changes["run"] = clean_run
    return replace(record, **changes) if changes else record


def _storable_run(run: RunInfo) -> RunInfo:
    changes: dict[str, Any] = {}
    for name in _RUN_TEXT:
        value = getattr(run, name)
        if value is not None and (clean := storable_text(value)) is not value:
            changes[name] = clean
    if run.metadata is not None and (metadata := storable_json(run.metadata)) is not run.metadata:
        changes["metadata"] = metadata
    return replace(run, **changes) if changes else run
