"""A Responses-API conversation (the official SDK's `client.responses.create`, plain and
streamed) through real `airuns serve` and `airuns mock-upstream` processes leaves a run whose
messages read as chat messages, and those resume the run on /v1/chat/completions."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

pytestmark = pytest.mark.e2e

RUN_ID = "responses-1"


def wait_for_run(admin: httpx.Client, done: Any, timeout: float = 10.0) -> dict[str, Any]:
    """The run once `done(run)` holds (the writer stores records off the request path)."""
    deadline = time.monotonic() + timeout
    while True:
        response = admin.get(f"/admin/runs/{RUN_ID}")
        if response.status_code == 200 and done(response.json()):
            return response.json()
        assert time.monotonic() < deadline, f"run never got there: {response.text}"
        time.sleep(0.05)


def ends_with(text: str) -> Any:
    return lambda run: run["messages"] and run["messages"][-1]["content"] == text


def test_responses_runs_have_messages_that_resume_on_chat(stack) -> None:
    sdk = openai.OpenAI(
        base_url=f"{stack.url}/v1",
        api_key="sk-test",
        default_headers={"X-Run-Id": RUN_ID},
        max_retries=0,
    )
    admin = httpx.Client(base_url=stack.url, headers={"Authorization": "Bearer admin-secret"})
    first = sdk.responses.create(
        model="gpt-4o-mini", instructions="You are terse.", input="Name a prime number."
    )
    run = wait_for_run(admin, ends_with(first.output_text))
    assert run["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a prime number."},
        {"role": "assistant", "content": first.output_text},
    ]
    assert run["message_count"] == 3 and run["name"] == "Name a prime number."

    history: list[Any] = [
        {"role": "user", "content": "Name a prime number."},
        {"type": "message", "role": "assistant", "content": first.output_text},
        {"type": "function_call", "call_id": "call_1", "name": "is_prime", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "true"},
        {"role": "user", "content": [{"type": "input_text", "text": "Another one, streamed."}]},
    ]
    events = list(
        sdk.responses.create(
            model="gpt-4o-mini", instructions="You are terse.", input=history, stream=True
        )
    )
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert streamed and events[-1].type == "response.completed"
    wait_for_run(admin, ends_with(streamed))
    messages = admin.get(f"/admin/runs/{RUN_ID}/messages").json()["messages"]
    call = {"id": "call_1", "type": "function", "function": {"name": "is_prime", "arguments": "{}"}}
    assert messages == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a prime number."},
        {"role": "assistant", "content": first.output_text, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "true"},
        {"role": "user", "content": "Another one, streamed."},
        {"role": "assistant", "content": streamed},
    ]

    follow_up = {"role": "user", "content": "And a third?"}
    third = sdk.chat.completions.create(model="gpt-4o-mini", messages=[*messages, follow_up])
    reply = third.choices[0].message.content
    run = wait_for_run(admin, ends_with(reply))
    assert run["messages"] == [*messages, follow_up, {"role": "assistant", "content": reply}]
    assert run["task_count"] == 3 and run["message_count"] == len(messages) + 2

    transcript = admin.get(f"/admin/runs/{RUN_ID}/export", params={"format": "markdown"}).text
    assert "**Tool (call_1)**\n\ntrue" in transcript
    assert f"**Assistant**\n\n{streamed}" in transcript
    admin.close()
    sdk.close()
