"""A run's `messages`: the conversation of its most recently started completed chat task. Pure."""

from __future__ import annotations

from typing import Any

CHAT_ENDPOINT = "/v1/chat/completions"


def request_messages(request: dict[str, Any] | None) -> list[Any] | None:
    messages = request.get("messages") if isinstance(request, dict) else None
    return messages if isinstance(messages, list) else None


def build_conversation(
    request: dict[str, Any] | None,
    response_text: str | None,
    tool_calls: list[dict[str, Any]] | None,
) -> list[Any]:
    """The request's messages plus the assistant's reply, ready to send back to resume."""
    reply: dict[str, Any] = {"role": "assistant", "content": response_text}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    return [*(request_messages(request) or []), reply]
