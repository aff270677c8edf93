"""Streams read to the end by the official SDKs are recorded `completed`, with their messages,
even though the SDKs close the connection as soon as they read `data: [DONE]` and the
upstream's body ends a little later (as it does over a real network): the terminal-event rule.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

pytestmark = pytest.mark.e2e

STREAMS = 50
LINGER = {"x-mock-linger-ms": "200"}  # the body ends 200 ms after [DONE]
ADMIN = {"Authorization": "Bearer admin-secret"}


def wait_for_tasks(stack, run_prefix: str, count: int, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        tasks = httpx.get(
            f"{stack.url}/admin/tasks", params={"limit": 200}, headers=ADMIN, timeout=5
        ).json()["data"]
        mine = [t for t in tasks if (t["run_id"] or "").startswith(run_prefix)]
        final = [t for t in mine if t["status"] not in ("pending", "streaming")]
        if len(final) >= count or time.monotonic() > deadline:
            return final
        time.sleep(0.1)


def assert_completed_with_messages(stack, run_prefix: str, tasks: list[dict]) -> None:
    assert len(tasks) == STREAMS
    assert {t["status"] for t in tasks} == {"completed"}, [
        (t["status"], t["error_message"]) for t in tasks if t["status"] != "completed"
    ]
    assert all(t["finish_reason"] == "stop" and t["usage_source"] == "provider" for t in tasks)
    for n in range(STREAMS):
        run_id = f"{run_prefix}{n}"
        messages = httpx.get(
            f"{stack.url}/admin/runs/{run_id}/messages", headers=ADMIN, timeout=5
        ).json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[1]["content"] == f"Mock reply to: stream {n}"


def test_sync_sdk_streams_closed_at_done_are_completed(stack):
    sdk = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="sk-test", max_retries=0)
    for n in range(STREAMS):
        stream = sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"stream {n}"}],
            stream=True,
            extra_headers={"X-Run-Id": f"sync-{n}", **LINGER},
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == f"Mock reply to: stream {n}"
    assert_completed_with_messages(stack, "sync-", wait_for_tasks(stack, "sync-", STREAMS))


def test_async_sdk_streams_closed_at_done_are_completed(stack):
    async def run() -> None:
        sdk = openai.AsyncOpenAI(base_url=f"{stack.url}/v1", api_key="sk-test", max_retries=0)

        async def one(n: int) -> None:
            stream = await sdk.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"stream {n}"}],
                stream=True,
                extra_headers={"X-Run-Id": f"async-{n}", **LINGER},
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text == f"Mock reply to: stream {n}"

        await asyncio.gather(*(one(n) for n in range(STREAMS)))
        await sdk.close()

    asyncio.run(run())
    assert_completed_with_messages(stack, "async-", wait_for_tasks(stack, "async-", STREAMS))


def test_a_client_that_leaves_before_done_is_cancelled(stack):
    sdk = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="sk-test", max_retries=0)
    stream = sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "leave early"}],
        stream=True,
        extra_headers={"X-Run-Id": "left-0", "x-mock-chunks": "40", "x-mock-chunk-delay-ms": "50"},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    (task,) = wait_for_tasks(stack, "left-", 1)
    assert task["status"] == "cancelled" and task["http_status"] == 200
