"""Token usage as a value type, and its extraction from the OpenAI response shapes.

Pure: no I/O. `cached_tokens` is a subset of `prompt_tokens` and `reasoning_tokens` a subset
of `completion_tokens`, as in the OpenAI API; a count the provider did not report is None,
never 0. A count that is there but cannot be a token count (negative, fractional, not a
number, or above `MAX_TOKENS`) makes the whole usage invalid: `InvalidUsage` is raised, and the
call is recorded without token counts rather than with made-up or overflowing ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# The largest count every JSON reader holds exactly (JavaScript's Number.MAX_SAFE_INTEGER), far
# inside the databases' 64-bit columns, so a run's sums of such counts stay storable.
MAX_TOKENS = 2**53 - 1


class InvalidUsage(ValueError):
    """The provider reported token counts that cannot be right; the message says which."""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_write_tokens: int | None = None


def _int(value: Any, name: str = "usage") -> int | None:
    """A token count: None when absent (null); `InvalidUsage` when it cannot be one."""
    if value is None:
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)  # `12.0`: some servers write counts as floats
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidUsage(f"{name} is not a whole number ({_shown(value)})")
    if not 0 <= value <= MAX_TOKENS:
        raise InvalidUsage(f"{name} is out of range ({_shown(value)})")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _detail(usage: dict, details_key: str, key: str) -> int | None:
    details = usage.get(details_key)
    return _int(details.get(key), f"{details_key}.{key}") if isinstance(details, dict) else None


def extract_usage(usage: Any) -> Usage | None:
    """Read a `usage` object of chat/completions/embeddings (prompt_tokens…) or Responses
    (input_tokens…) shape; None when it is not a usage object; raises `InvalidUsage`."""
    if not isinstance(usage, dict):
        return None
    if "input_tokens" in usage or "output_tokens" in usage:
        return _responses_usage(usage)
    if "prompt_tokens" not in usage and "completion_tokens" not in usage:
        return None
    prompt = _int(usage.get("prompt_tokens"), "prompt_tokens")
    completion = _int(usage.get("completion_tokens"), "completion_tokens")
    if completion is None and "completion_tokens" not in usage and prompt is not None:
        completion = 0  # embeddings: no output tokens by definition, not a missing count
    total = _int(usage.get("total_tokens"), "total_tokens")
    if total is None and prompt is not None and completion is not None:
        total = _total(prompt, completion)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cached_tokens=_detail(usage, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=_detail(usage, "completion_tokens_details", "reasoning_tokens"),
        cache_write_tokens=_int(
            usage.get("cache_creation_input_tokens"), "cache_creation_input_tokens"
        ),
    )


def _total(prompt: int, completion: int) -> int:
    return _int(prompt + completion, "total_tokens")  # type: ignore[return-value]


def _responses_usage(usage: dict) -> Usage:
    prompt = _int(usage.get("input_tokens"), "input_tokens")
    completion = _int(usage.get("output_tokens"), "output_tokens")
    total = _int(usage.get("total_tokens"), "total_tokens")
    if total is None and prompt is not None and completion is not None:
        total = _total(prompt, completion)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cached_tokens=_detail(usage, "input_tokens_details", "cached_tokens"),
        reasoning_tokens=_detail(usage, "output_tokens_details", "reasoning_tokens"),
    )


_CHARS_PER_TOKEN = 4  # OpenAI's rule of thumb for English text


def estimate_usage(request: Any, completion_text: str | None) -> Usage | None:
    """A rough count for a call the provider never reported usage for (the client left
    mid-stream): ~4 characters a token. Tasks say `usage_source: estimated` when this is used."""
    prompt_chars = _prompt_chars(request)
    if prompt_chars is None:
        return None
    prompt = -(-prompt_chars // _CHARS_PER_TOKEN)
    completion = -(-len(completion_text or "") // _CHARS_PER_TOKEN)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _prompt_chars(request: Any) -> int | None:
    if not isinstance(request, dict) or request.get("_truncated"):
        return None
    for key in ("messages", "input", "prompt"):
        if key in request:
            return _text_length(request[key])
    return None


def _text_length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_length(item) for item in value)
    if isinstance(value, dict):
        return sum(_text_length(value.get(k)) for k in ("content", "text") if k in value)
    return 0
