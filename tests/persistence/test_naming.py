from datetime import UTC, datetime, timedelta, timezone

import pytest

from persistence.conversation import build_conversation
from persistence.naming import generate_run_name

AT = datetime(2026, 11, 21, 9, 5, tzinfo=UTC)
FIFTY = "x" * 50


def chat(*messages: dict) -> dict:
    return {"model": "m", "messages": list(messages)}


def user(content: object) -> dict:
    return {"role": "user", "content": content}


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        (chat(user("Hello there")), "Hello there"),
        (chat(user(FIFTY)), FIFTY),
        (chat(user(FIFTY + "y")), FIFTY + "..."),
        (chat(user("a" * 49 + " b")), "a" * 49 + "..."),
        (chat(user("   padded\n\n question  ")), "padded question"),
        (chat({"role": "system", "content": "be brief"}, user("the question")), "the question"),
        (chat(user("first"), user("second")), "first"),
        (
            chat(user([{"type": "text", "text": "look at"}, {"type": "image_url"}])),
            "look at",
        ),
        (
            chat(user([{"type": "text", "text": "two"}, {"type": "text", "text": "parts"}])),
            "two parts",
        ),
        ({"model": "m", "input": "responses string"}, "responses string"),
        (
            {"model": "m", "input": [user([{"type": "input_text", "text": "responses parts"}])]},
            "responses parts",
        ),
        (chat({"role": "system", "content": "only system"}), "Run - Nov 21, 2026 9:05 AM"),
        (chat(user([{"type": "image_url"}])), "Run - Nov 21, 2026 9:05 AM"),
        (chat(user("   ")), "Run - Nov 21, 2026 9:05 AM"),
        ({"model": "m"}, "Run - Nov 21, 2026 9:05 AM"),
        (None, "Run - Nov 21, 2026 9:05 AM"),
    ],
)
def test_generated_run_name(request_body: dict | None, expected: str) -> None:
    assert generate_run_name(request_body, AT) == expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(2026, 1, 2, 0, 0, tzinfo=UTC), "Run - Jan 2, 2026 12:00 AM"),
        (datetime(2026, 1, 2, 12, 30, tzinfo=UTC), "Run - Jan 2, 2026 12:30 PM"),
        (datetime(2026, 1, 2, 23, 59, tzinfo=UTC), "Run - Jan 2, 2026 11:59 PM"),
        (
            datetime(2026, 1, 2, 1, 0, tzinfo=timezone(timedelta(hours=2))),
            "Run - Jan 1, 2026 11:00 PM",
        ),
    ],
)
def test_date_name_is_utc_and_twelve_hour(at: datetime, expected: str) -> None:
    assert generate_run_name(None, at) == expected


def test_conversation_appends_assistant_reply() -> None:
    request = chat(user("hi"))
    assert build_conversation(request, "hello", None) == [
        user("hi"),
        {"role": "assistant", "content": "hello"},
    ]


def test_conversation_keeps_tool_calls() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    assert build_conversation(chat(user("hi")), None, calls)[-1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": calls,
    }
