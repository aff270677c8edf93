"""The name a run gets when the client did not send `X-Run-Name`. Pure.

The first user message's first 50 characters (whitespace runs collapsed, trimmed) plus "..."
when longer; else `Run - <Mon D, YYYY h:mm AM>` in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

NAME_LENGTH = 50
_TEXT_PART_TYPES = {"text", "input_text"}


def generate_run_name(request: dict[str, Any] | None, started_at: datetime) -> str:
    text = " ".join((first_user_text(request) or "").split())
    if not text:
        return date_name(started_at)
    if len(text) <= NAME_LENGTH:
        return text
    return text[:NAME_LENGTH].rstrip() + "..."


def date_name(started_at: datetime) -> str:
    at = started_at.astimezone(UTC) if started_at.tzinfo else started_at
    hour = at.hour % 12 or 12
    meridiem = "AM" if at.hour < 12 else "PM"
    return f"Run - {at:%b} {at.day}, {at.year} {hour}:{at:%M} {meridiem}"


def first_user_text(request: dict[str, Any] | None) -> str | None:
    """Text of the first user message of a Chat Completions or Responses request."""
    if not isinstance(request, dict):
        return None
    messages = request.get("messages")
    if messages is None:
        messages = request.get("input")
    if isinstance(messages, str):  # Responses: a bare string input is the user's message
        return messages
    if not isinstance(messages, list):
        return None
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content"))
    return None


def content_text(content: Any) -> str | None:
    """A message's `content`: a string, or a list of parts whose text parts are joined."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    texts = [
        part["text"]
        for part in content
        if isinstance(part, dict)
        and part.get("type") in _TEXT_PART_TYPES
        and isinstance(part.get("text"), str)
    ]
    return " ".join(texts) if texts else None
