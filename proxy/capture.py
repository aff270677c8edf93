"""What a call's response says: text, tool calls, finish reason, usage, model, TTFT.

Pure: the relay shows each SSE event (with the time it arrived) or the whole body of a
non-streaming response; nothing here does I/O or re-encodes what is relayed. TTFT is stamped
once, at the first *output* delta (content, tool call, refusal or reasoning), never at a
role-only chunk.

Memory is bounded whatever the upstream sends: text and tool-call arguments are kept up to
`max_text` characters each (what is stored of them anyway), while usage, finish reason and
status are read from every event, so token counts stay exact on a never-ending stream.
"""

from __future__ import annotations

import contextlib
from typing import Any

from persistence.record import RESPONSES
from pricing.usage import InvalidUsage, Usage, extract_usage
from proxy.jsonfast import decode_json
from proxy.sse import SSEEvent

_RESPONSES_OUTPUT_DELTAS = (
    "response.output_text.delta",
    "response.refusal.delta",
    "response.function_call_arguments.delta",
    "response.reasoning_text.delta",
    "response.reasoning_summary_text.delta",
    "response.audio.delta",
    "response.audio.transcript.delta",
)
_SHAPE_ERRORS = (AttributeError, TypeError, KeyError, IndexError, ValueError)
# Keys of a successful body: one that has any of them is not an error body.
_RESULT_KEYS = ("choices", "data", "output", "usage")
_COMPACT_AFTER = 512
_RESPONSES_FINAL = ("response.completed", "response.incomplete", "response.failed")


class Capture:
    """Accumulates one response's facts. For chat streams, `observe` returns False for the
    usage-only chunk that airuns itself asked for, so the relay can drop exactly that one."""

    def __init__(
        self,
        endpoint: str,
        *,
        started: float,
        usage_injected: bool = False,
        max_text: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.started = started
        self.usage_injected = usage_injected
        self.max_text = max_text
        self.first_token_at: float | None = None
        self.text_parts: list[str] = []
        self._text_room = max_text
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self._arguments_room = max_text
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.usage_problem: str | None = None  # why the reported usage was refused
        self.response_model: str | None = None
        self.error_message: str | None = None
        self.finished = False  # saw [DONE] or the Responses API's final event
        self.events = 0

    # -- streaming ---------------------------------------------------------------------------
    def observe(self, event: SSEEvent, now: float) -> bool:
        """Take one SSE event; return whether it should be relayed to the client."""
        data = event.data
        if data is None:
            return True
        if event.is_done:
            self.finished = True
            return True
        try:
            obj = decode_json(data)
        except (ValueError, RecursionError):
            return True
        if not isinstance(obj, dict):
            return True
        self.events += 1
        try:
            if self.endpoint == RESPONSES:
                self._observe_responses_event(obj, now)
                return True
            return self._observe_chunk(obj, now)
        except _SHAPE_ERRORS:
            return True  # a shape we do not understand is relayed as it came, never an error

    def _observe_chunk(self, obj: dict[str, Any], now: float) -> bool:
        if "error" in obj and isinstance(obj["error"], dict):
            self.error_message = _error_text(obj["error"])
        model = obj.get("model")
        if model and self.response_model is None:
            self.response_model = model
        usage = obj.get("usage")
        if usage:
            self._take_usage(usage)
        choices = obj.get("choices")
        if not choices:
            return not (self.usage_injected and usage and choices == [])
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        delta = choice.get("delta")
        if delta is None:  # legacy completions chunk
            text = choice.get("text")
            if text:
                self._stamp(now)
                self._add_text(text)
            return True
        content = delta.get("content")
        if content:
            self._stamp(now)
            self._add_text(content)
        if delta.get("tool_calls"):
            self._stamp(now)
            self._merge_tool_calls(delta["tool_calls"])
        if delta.get("refusal") or delta.get("reasoning_content") or delta.get("reasoning"):
            self._stamp(now)
        return True

    def _merge_tool_calls(self, deltas: list[dict[str, Any]]) -> None:
        for delta in deltas:
            call = self.tool_calls.setdefault(
                delta.get("index", len(self.tool_calls)),
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            if delta.get("id"):
                call["id"] = delta["id"]
            if delta.get("type"):
                call["type"] = delta["type"]
            function = delta.get("function") or {}
            if function.get("name") and len(call["function"]["name"]) < 256:
                call["function"]["name"] += function["name"]
            arguments = function.get("arguments")
            if arguments and self._room_for_arguments(len(arguments)):
                call["function"]["arguments"] += arguments

    def _room_for_arguments(self, size: int) -> bool:
        if self._arguments_room is None:
            return True
        if size > self._arguments_room:
            self._arguments_room = 0
            return False
        self._arguments_room -= size
        return True

    def _observe_responses_event(self, obj: dict[str, Any], now: float) -> None:
        kind = obj.get("type", "")
        if kind in _RESPONSES_OUTPUT_DELTAS:
            self._stamp(now)
            if kind == "response.output_text.delta":
                self._add_text(obj.get("delta") or "")
        elif kind in _RESPONSES_FINAL:
            self.finished = True
            response = obj.get("response") or {}
            self._take_responses_object(response, keep_text=True)
            if kind == "response.failed":
                self.error_message = _error_text(response.get("error") or "response failed")
        elif kind == "error":
            self.error_message = _error_text(obj.get("error") or obj)

    # -- non-streaming -----------------------------------------------------------------------
    def observe_body(self, body: bytes) -> None:
        try:
            obj = decode_json(body)
        except (ValueError, RecursionError):
            return
        if isinstance(obj, dict):
            with contextlib.suppress(*_SHAPE_ERRORS):
                self._take_body(obj)

    def _take_body(self, obj: dict[str, Any]) -> None:
        error = obj.get("error")
        if error and not any(key in obj for key in _RESULT_KEYS):
            # `{"error": {...}}` with a 2xx status: the upstream failed, whatever it said.
            self.error_message = _error_text(error)
            return
        if self.endpoint == RESPONSES:
            self._take_responses_object(obj, keep_text=False)
            return
        self.response_model = obj.get("model") or None
        self._take_usage(obj.get("usage"))
        choices = obj.get("choices")
        if not choices or not isinstance(choices, list):
            return
        choice = choices[0]
        self.finish_reason = choice.get("finish_reason")
        message = choice.get("message")
        if isinstance(message, dict):
            if isinstance(message.get("content"), str):
                self._add_text(message["content"])
            if message.get("tool_calls"):
                self.tool_calls = dict(enumerate(message["tool_calls"]))
        elif isinstance(choice.get("text"), str):
            self._add_text(choice["text"])

    def _take_responses_object(self, response: dict[str, Any], *, keep_text: bool) -> None:
        self.response_model = response.get("model") or self.response_model
        self._take_usage(response.get("usage"))
        status = response.get("status")
        if status and status != "completed":
            details = response.get("incomplete_details") or response.get("error") or {}
            self.finish_reason = details.get("reason") or status
        else:
            self.finish_reason = status
        calls = []
        for item in response.get("output") or []:
            if item.get("type") == "message" and not keep_text:
                for part in item.get("content") or []:
                    if part.get("type") == "output_text":
                        self._add_text(part.get("text") or "")
            elif item.get("type") == "function_call":
                calls.append(
                    {
                        "id": item.get("call_id") or item.get("id"),
                        "type": "function",
                        "function": {"name": item.get("name"), "arguments": item.get("arguments")},
                    }
                )
        if calls:
            self.tool_calls = dict(enumerate(calls))

    def note_error(self, text: str) -> None:
        """An error the body says in a form `observe_body` cannot read (not JSON)."""
        if self.error_message is None:
            self.error_message = text

    def _take_usage(self, usage: Any) -> None:
        """The last usage object that can be read wins; one that cannot be right leaves the
        call without counts (and says why) instead of storing impossible ones."""
        try:
            found = extract_usage(usage)
        except InvalidUsage as problem:
            self.usage, self.usage_problem = None, str(problem)
            return
        if found is not None:
            self.usage, self.usage_problem = found, None

    def _add_text(self, text: str) -> None:
        if not isinstance(text, str):
            return
        room = self._text_room
        if room is None:
            self.text_parts.append(text)
        elif room > 0:
            self.text_parts.append(text if len(text) <= room else text[:room])
            self._text_room = room - len(text)
        if len(self.text_parts) >= _COMPACT_AFTER:
            # One string instead of thousands of small ones that would pin the allocator's
            # arenas for as long as the stream lasts.
            self.text_parts = ["".join(self.text_parts)]

    # -- results -----------------------------------------------------------------------------
    def _stamp(self, now: float) -> None:
        if self.first_token_at is None:
            self.first_token_at = now

    @property
    def ttft_ms(self) -> float | None:
        if self.first_token_at is None:
            return None
        return (self.first_token_at - self.started) * 1000.0

    @property
    def text(self) -> str | None:
        return "".join(self.text_parts) if self.text_parts else None

    @property
    def tool_call_list(self) -> list[dict[str, Any]] | None:
        return [self.tool_calls[i] for i in sorted(self.tool_calls)] if self.tool_calls else None


def _error_text(error: Any) -> str:
    """An upstream error object's message (OpenAI shape), else the object as text."""
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str) and message:
            return message
    text = str(error)
    return text if len(text) <= 1000 else text[:1000] + "..."
