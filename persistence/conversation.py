"""A run's `messages`: the conversation of its most recently started completed chat or Responses
task, in Chat Completions shape, so it can be read, exported and sent back to resume. Pure.

A Responses request is converted, because its items have no place in a chat request:
- `instructions` → a leading `system` message; `input` as a string → one `user` message.
- message items (`type: "message"` or none) → a chat message; `developer` becomes `system`,
  which every chat upstream accepts (OpenAI treats the two alike). Content stays a string when
  it is one or when all its parts are text (joined by newlines); else chat content parts.
- `function_call` → a tool call on the assistant message just before it (its `call_id` is the
  call's `id`), or on a new assistant message: one model turn stays one chat message.
- `function_call_output` → a `tool` message for its `call_id`.
- Anything else (reasoning, item references, built-in tool calls, non-dicts, items missing a
  required field) is skipped: a record is never refused for its shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persistence.record import CHAT, RESPONSES

Message = dict[str, Any]
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})


def conversation_input(endpoint: str | None, request: Any) -> list[Any] | None:
    """The request's conversation as chat messages; None when the task holds none (another
    endpoint, or a body stored without its messages), so the run keeps what it has."""
    if endpoint == CHAT:
        return request_messages(request)
    if endpoint == RESPONSES:
        return responses_messages(request)
    return None


def request_messages(request: dict[str, Any] | None) -> list[Any] | None:
    messages = request.get("messages") if isinstance(request, dict) else None
    return messages if isinstance(messages, list) else None


def build_conversation(
    request: dict[str, Any] | None,
    response_text: str | None,
    tool_calls: list[dict[str, Any]] | None,
    *,
    endpoint: str = CHAT,
) -> list[Any]:
    """The request's messages plus the assistant's reply, ready to send back to resume."""
    reply: Message = {"role": "assistant", "content": response_text}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    return [*(conversation_input(endpoint, request) or []), reply]


def responses_messages(request: Any) -> list[Message] | None:
    """A Responses request's `instructions` and `input` as chat messages (rules above). With
    `previous_response_id` the input holds only the new items, and that is all there is."""
    items = request.get("input") if isinstance(request, dict) else None
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list):
        return None
    instructions = request.get("instructions")
    messages = [{"role": "system", "content": instructions}] if _is_text(instructions) else []
    for item in items:
        _add_item(messages, item)
    return messages


def _add_item(messages: list[Message], item: Any) -> None:
    kind = item.get("type", "message") if isinstance(item, dict) else None
    if kind == "function_call":
        call = _tool_call(item)
        if call is not None:
            _attach_call(messages, call)
        return
    convert = _ITEM_CONVERTERS.get(kind) if isinstance(kind, str) else None
    message = convert(item) if convert is not None else None
    if message is not None:
        messages.append(message)


def _message(item: dict[str, Any]) -> Message | None:
    role = item.get("role")
    content = _content(item.get("content"))
    if not isinstance(role, str) or role not in _ROLES or content is None:
        return None
    return {"role": _ROLES[role], "content": content}


def _tool_result(item: dict[str, Any]) -> Message | None:
    call_id, output = item.get("call_id"), item.get("output")
    if not _is_text(call_id):
        return None
    return {"role": "tool", "tool_call_id": call_id, "content": _content(output) or ""}


_ITEM_CONVERTERS: dict[str, Callable[[dict[str, Any]], Message | None]] = {
    "message": _message,
    "function_call_output": _tool_result,
}


def _tool_call(item: dict[str, Any]) -> dict[str, Any] | None:
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
    if not _is_text(call_id) or not _is_text(name):
        return None
    arguments = arguments if isinstance(arguments, str) else ""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _attach_call(messages: list[Message], call: dict[str, Any]) -> None:
    """Calls made in one model turn follow its text (if any) as separate items; chat holds
    them on one assistant message, as the Responses reply itself is recorded."""
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _content(content: Any) -> str | list[dict[str, Any]] | None:
    """A string stays a string; parts become chat parts, a plain string if all are text."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    parts = [converted for part in content if (converted := _part(part)) is not None]
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part["text"] for part in parts)
    return parts


def _part(part: Any) -> dict[str, Any] | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if not isinstance(kind, str):
        return None
    if kind in _TEXT_PARTS:
        return {"type": "text", "text": part["text"]} if _is_str(part.get("text")) else None
    convert = _PART_CONVERTERS.get(kind)
    return convert(part) if convert is not None else None


def _image_part(part: dict[str, Any]) -> dict[str, Any] | None:
    """Chat images need a URL (a data URL will do); an image by `file_id` has none: skipped."""
    url = part.get("image_url")
    if not _is_text(url):
        return None
    image = {"url": url} | _strings(part, "detail")
    return {"type": "image_url", "image_url": image}


def _file_part(part: dict[str, Any]) -> dict[str, Any] | None:
    file = _strings(part, "file_id", "file_data", "filename")
    return {"type": "file", "file": file} if file else None


def _refusal_part(part: dict[str, Any]) -> dict[str, Any] | None:
    refusal = part.get("refusal")
    return {"type": "refusal", "refusal": refusal} if _is_str(refusal) else None


_PART_CONVERTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {
    "input_image": _image_part,
    "input_file": _file_part,
    "refusal": _refusal_part,
}


def _strings(part: dict[str, Any], *keys: str) -> dict[str, str]:
    return {key: part[key] for key in keys if _is_text(part.get(key))}


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_text(value: Any) -> bool:
    """A non-empty string: what an id, a name or an instruction must be to mean anything."""
    return isinstance(value, str) and value != ""
