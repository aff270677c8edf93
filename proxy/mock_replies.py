"""Pure parts of the mock upstream: behaviour options, deterministic replies, response bodies.

Everything here is a function of the request body and headers, so the server in
`mock_upstream.py` stays an I/O loop and these shapes can be tested without a socket.
A stream is an iterator of `(sse_bytes, is_content)`: the server counts content chunks to
apply `disconnect`/`stall` and paces them with `chunk_delay`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Stream = Iterator[tuple[bytes, bool]]

# model-name option -> (header, field); the header wins when both are given.
_OPTIONS = {
    "delay": ("x-mock-first-delay-ms", "first_delay_ms"),
    "chunk_delay": ("x-mock-chunk-delay-ms", "chunk_delay_ms"),
    "chunks": ("x-mock-chunks", "chunks"),
    "error": ("x-mock-status", "status"),
    "disconnect": ("x-mock-disconnect-after", "disconnect_after"),
    "stall": ("x-mock-stall-after", "stall_after"),
    "cached": ("x-mock-cached-tokens", "cached_tokens"),
    "reasoning": ("x-mock-reasoning-tokens", "reasoning_tokens"),
    "tool": ("x-mock-tool-call", "tool_call"),
    "linger": ("x-mock-linger-ms", "linger_ms"),
    "endless": ("x-mock-endless", "endless"),
}
_WORD = re.compile(r"\S+\s*")
dumps = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class MockOptions:
    """How the mock misbehaves for one request (all ints are >= 0; None means "off")."""

    model: str = ""
    first_delay_ms: int = 0
    chunk_delay_ms: int = 0
    chunks: int | None = None
    status: int | None = None
    disconnect_after: int | None = None
    stall_after: int | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    tool_call: int = 0
    linger_ms: int = 0  # between the last event and the end of the body (a real network's lag)
    endless: int = 0  # a chat stream that never ends (content chunks until the client leaves)


def parse_options(model: str, headers: Mapping[str, str]) -> MockOptions:
    """`gpt-4o-mini+delay=200+error=429` plus `x-mock-*` headers; raises ValueError naming
    the bad option. The reported model is the part before the first `+` unless `model=`."""
    base, *parts = model.split("+")
    values: dict[str, Any] = {"model": base}
    for part in parts:
        key, _, value = part.partition("=")
        if key == "model":
            values["model"] = value
        elif key in _OPTIONS:
            values[_OPTIONS[key][1]] = _parse_int(key, value)
        else:
            raise ValueError(f"unknown mock option {key!r} in model name")
    for header, field_name in _OPTIONS.values():
        if header in headers:
            values[field_name] = _parse_int(header, headers[header])
    if "x-mock-response-model" in headers:
        values["model"] = headers["x-mock-response-model"]
    if values.get("chunks") == 0:
        raise ValueError("mock option 'chunks' must be at least 1")
    if values.get("status") is not None and not 400 <= values["status"] <= 599:
        raise ValueError("mock option 'error' must be an HTTP error status (400-599)")
    return MockOptions(**values)


def _parse_int(name: str, value: str) -> int:
    if not value.strip().isdigit():
        raise ValueError(f"mock option {name!r} must be a non-negative integer, got {value!r}")
    return int(value)


@dataclass(frozen=True, slots=True)
class Reply:
    """What the mock answers: text pieces, or argument pieces of one tool call."""

    pieces: list[str]
    prompt_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    tool_name: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def usage(self) -> dict[str, Any]:
        completion = len(self.pieces) + self.reasoning_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }

    def responses_usage(self) -> dict[str, Any]:
        usage = self.usage()
        return {
            "input_tokens": usage["prompt_tokens"],
            "output_tokens": usage["completion_tokens"],
            "total_tokens": usage["total_tokens"],
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }


TOOL_ARGUMENTS = '{"x": 1}'


def build_reply(texts: list[str], last_user: str, opts: MockOptions, tool: str | None) -> Reply:
    """`texts` are all prompt texts (for token counts); `tool` is the tool to call, if any."""
    prompt = max(count_words(texts), opts.cached_tokens)
    if tool is not None:
        pieces = split_evenly(TOOL_ARGUMENTS, opts.chunks or 3)
    else:
        pieces = split_reply(f"Mock reply to: {last_user[:40]}", opts.chunks)
    return Reply(pieces, prompt, opts.cached_tokens, opts.reasoning_tokens, tool)


def count_words(texts: list[str]) -> int:
    return max(1, sum(len(text.split()) for text in texts))


def split_reply(reply: str, chunks: int | None = None) -> list[str]:
    """Split on spaces keeping them, so `"".join(pieces) == reply` (plus " lorem" padding
    when more chunks are asked than there are words; extra words merge into the last)."""
    pieces = _WORD.findall(reply)
    if chunks is None or chunks == len(pieces):
        return pieces
    if chunks < len(pieces):
        return pieces[: chunks - 1] + ["".join(pieces[chunks - 1 :])]
    if not pieces[-1].endswith((" ", "\n")):
        pieces[-1] += " "
    pieces += ["lorem "] * (chunks - len(pieces))
    pieces[-1] = "lorem"
    return pieces


def split_evenly(text: str, chunks: int) -> list[str]:
    chunks = max(1, min(chunks, len(text)))
    size, extra = divmod(len(text), chunks)
    bounds = [i * size + min(i, extra) for i in range(chunks + 1)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def content_text(content: Any) -> str:
    """A message `content`: a string, or a list of parts carrying `text`."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and "text" in p)
    return ""


def message_texts(messages: Any) -> tuple[list[str], str]:
    """(every message's text, the last user message's text) of chat messages or Responses
    `input` (a string or a list of messages)."""
    if isinstance(messages, str):
        return [messages], messages
    if not isinstance(messages, list):
        return [], ""
    texts, last_user = [], ""
    for message in messages:
        if isinstance(message, dict):
            text = content_text(message.get("content"))
            texts.append(text)
            if message.get("role") == "user":
                last_user = text
    return texts, last_user


def tool_to_call(body: Mapping[str, Any], last_user: str, opts: MockOptions) -> str | None:
    tools = body.get("tools")
    if not tools or not (opts.tool_call or "call a tool" in last_user):
        return None
    first = tools[0]
    return first.get("function", {}).get("name") or first.get("name") or "tool"


def embedding_for(text: str) -> list[float]:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return [round(b / 127.5 - 1.0, 6) for b in digest]


def error_body(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": None}}


def sse(payload: dict[str, Any], event: str | None = None) -> bytes:
    data = f"data: {dumps(payload)}\n\n"
    return (f"event: {event}\n{data}" if event else data).encode()


DONE = b"data: [DONE]\n\n"


# --- chat completions ------------------------------------------------------------------


def chat_completion(cid: str, model: str, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    finish = "stop"
    if reply.tool_name:
        message["content"] = None
        message["tool_calls"] = [_tool_call(reply.tool_name, reply.text)]
        finish = "tool_calls"
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return _chat_object(cid, "chat.completion", model, [choice]) | {"usage": reply.usage()}


def chat_stream(cid: str, model: str, reply: Reply, include_usage: bool) -> Stream:
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse(_chat_object(cid, "chat.completion.chunk", model, [choice]) | extra)

    yield chunk({"role": "assistant", "content": "", "refusal": None}), False
    if reply.tool_name:
        yield chunk({"tool_calls": [{"index": 0} | _tool_call(reply.tool_name, "")]}), False
        for piece in reply.pieces:
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}), True
    else:
        for piece in reply.pieces:
            yield chunk({"content": piece}), True
    yield chunk({}, "tool_calls" if reply.tool_name else "stop"), False
    if include_usage:
        yield (
            sse(_chat_object(cid, "chat.completion.chunk", model, []) | {"usage": reply.usage()}),
            False,
        )
    yield DONE, False


def endless_chat_stream(cid: str, model: str) -> Stream:
    """Content chunks forever: for memory tests of a stream nobody ends."""
    piece = "lorem ipsum dolor sit amet " * 8
    choice = {"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}
    chunk = sse(_chat_object(cid, "chat.completion.chunk", model, [choice]))
    while True:
        yield chunk, True


def _chat_object(cid: str, obj: str, model: str, choices: list[Any]) -> dict[str, Any]:
    return {
        "id": cid,
        "object": obj,
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_mock",
        "choices": choices,
    }


def _tool_call(name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": "call_mock_1",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


# --- legacy completions ----------------------------------------------------------------


def text_completion(cid: str, model: str, reply: Reply) -> dict[str, Any]:
    choice = {"text": reply.text, "index": 0, "logprobs": None, "finish_reason": "stop"}
    return _text_object(cid, model, [choice]) | {"usage": reply.usage()}


def text_stream(cid: str, model: str, reply: Reply, include_usage: bool) -> Stream:
    extra = {"usage": None} if include_usage else {}
    for piece in reply.pieces:
        choice = {"text": piece, "index": 0, "logprobs": None, "finish_reason": None}
        yield sse(_text_object(cid, model, [choice]) | extra), True
    last = {"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}
    yield sse(_text_object(cid, model, [last]) | extra), False
    if include_usage:
        yield sse(_text_object(cid, model, []) | {"usage": reply.usage()}), False
    yield DONE, False


def _text_object(cid: str, model: str, choices: list[Any]) -> dict[str, Any]:
    created = int(time.time())
    return {
        "id": cid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
    }


# --- responses -------------------------------------------------------------------------


def response_object(
    rid: str, model: str, reply: Reply, status: str = "completed"
) -> dict[str, Any]:
    done = status == "completed"
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": [_message_item(rid, reply.text)] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": reply.responses_usage() if done else None,
        "metadata": {},
    }


def responses_stream(rid: str, model: str, reply: Reply) -> Stream:
    seq = iter(range(1 << 30))
    item_id = _item_id(rid)
    at = {"item_id": item_id, "output_index": 0, "content_index": 0}

    def event(kind: str, **fields: Any) -> bytes:
        return sse({"type": kind, "sequence_number": next(seq)} | fields, event=kind)

    pending = response_object(rid, model, reply, status="in_progress")
    yield event("response.created", response=pending), False
    yield event("response.in_progress", response=pending), False
    empty_item = _message_item(rid, "", status="in_progress") | {"content": []}
    yield event("response.output_item.added", output_index=0, item=empty_item), False
    yield event("response.content_part.added", **at, part=_text_part("")), False
    for piece in reply.pieces:
        yield event("response.output_text.delta", **at, delta=piece, logprobs=[]), True
    yield event("response.output_text.done", **at, text=reply.text, logprobs=[]), False
    yield event("response.content_part.done", **at, part=_text_part(reply.text)), False
    yield (
        event("response.output_item.done", output_index=0, item=_message_item(rid, reply.text)),
        False,
    )
    yield event("response.completed", response=response_object(rid, model, reply)), False


def _item_id(rid: str) -> str:
    return "msg_" + rid.removeprefix("resp_")


def _message_item(rid: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": _item_id(rid),
        "status": status,
        "role": "assistant",
        "content": [_text_part(text)],
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}
