"""The official `openai` SDK through a real `airuns serve` to a real `airuns mock-upstream`."""

from __future__ import annotations

import sqlite3
import time

import httpx
import openai
import pytest

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "hello there"}]


def client(stack, **headers) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{stack.url}/v1", api_key="sk-test", default_headers=headers, max_retries=0
    )


def wait_for_tasks(stack, count: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(stack.db_path) as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute("select * from tasks order by created_at")]
        final = [r for r in rows if r["status"] not in ("pending", "streaming")]
        if len(final) >= count or time.monotonic() > deadline:
            return final
        time.sleep(0.05)


def test_sdk_gets_fake_reply_streaming_and_not(stack):
    sdk = client(stack)
    reply = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.choices[0].message.content == "Mock reply to: hello there"
    assert reply.usage.total_tokens > 0
    stream = sdk.chat.completions.create(model="mock/gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Mock reply to: hello there"
    assert all(c.choices for c in chunks), "the usage-only chunk airuns asked for is hidden"
    upstream_request = stack.mock_state("requests")[-1]["json"]
    assert upstream_request["stream_options"] == {"include_usage": True}
    assert upstream_request["model"] == "gpt-4o-mini"
    tasks = wait_for_tasks(stack, 2)
    assert [t["status"] for t in tasks] == ["completed", "completed"]
    assert tasks[1]["completion_tokens"] == len(text.split(" "))


def test_slow_stream_arrives_incrementally_with_ttft_near_upstream_delay(stack):
    sdk = client(stack, **{"x-mock-first-delay-ms": "400", "x-mock-chunk-delay-ms": "250"})
    started = time.monotonic()
    stream = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers={"x-mock-chunks": "6"}
    )
    arrivals = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
    ended = time.monotonic() - started
    assert len(arrivals) == 6
    # 6 pieces 250 ms apart: the first must reach us long before the stream ends.
    assert arrivals[0] < ended - 0.8
    task = wait_for_tasks(stack, 1)[0]
    ttft = task["time_to_first_token_ms"]
    assert 400 <= ttft < 400 + 1500, ttft
    log = stack.call_logs()[-1]
    assert log["status"] == "completed" and log["ttft_ms"] >= 400


def test_upstream_error_reaches_sdk_unchanged(stack):
    sdk = client(stack, **{"x-mock-status": "429"})
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raised.value.body["code"] == "mock_429"


def test_airuns_errors_are_openai_shaped(stack):
    bad_json = httpx.post(
        f"{stack.url}/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
    bad_header = httpx.post(
        f"{stack.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={"X-Run-Id": "no spaces allowed"},
    )
    assert bad_header.status_code == 400 and bad_header.json()["error"]["param"] == "X-Run-Id"
    with pytest.raises(openai.BadRequestError):
        client(stack).chat.completions.create(model="nowhere/gpt-4o-mini", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError) as unreachable:
        client(stack).chat.completions.create(model="dead/gpt-4o-mini", messages=MESSAGES)
    assert unreachable.value.status_code == 502
    too_big = httpx.post(
        f"{stack.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 11_000_000}]},
    )
    assert too_big.status_code == 413


def test_upstream_timeout_is_504(stack_factory):
    stack = stack_factory("timeouts: {connect: 5, read: 0.5, stream_idle: 0.5}")
    sdk = client(stack, **{"x-mock-first-delay-ms": "3000"})
    with pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raised.value.status_code == 504
    assert wait_for_tasks(stack, 1)[0]["status"] == "timeout"


def test_client_disconnect_is_seen_by_upstream_and_recorded_cancelled(stack):
    sdk = client(stack, **{"x-mock-chunk-delay-ms": "200", "x-mock-chunks": "40"})
    stream = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    for index, _chunk in enumerate(stream):
        if index == 2:
            break
    stream.close()
    deadline = time.monotonic() + 5
    events: list[dict] = []
    while time.monotonic() < deadline:
        events = [e for e in stack.mock_state("events") if e["kind"] == "client_disconnected"]
        if events:
            break
        time.sleep(0.05)
    assert events and events[0]["chunks_sent"] < 40
    task = wait_for_tasks(stack, 1)[0]
    assert task["status"] == "cancelled"
    assert task["response_text"]


def test_serve_starts_and_proxies_while_the_database_is_down(stack_factory):
    stack = stack_factory('database: {url: "postgresql+asyncpg://postgres@127.0.0.1:9/airuns"}')
    reply = client(stack).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.choices[0].message.content == "Mock reply to: hello there"
    ready = httpx.get(f"{stack.url}/readyz")
    assert ready.status_code == 503 and ready.json()["backlog"] >= 1
