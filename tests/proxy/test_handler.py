"""The proxy path against a real fake upstream on loopback, through a real ASGI server."""

from __future__ import annotations

import json

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}


async def test_non_streaming_chat_is_relayed_and_recorded(proxy):
    response = await proxy.client.post(
        "/v1/chat/completions", json=CHAT, headers={"X-Run-Id": "r1"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Mock reply to: hello there"
    assert response.headers["x-run-id"] == "r1"
    record = proxy.final(response.headers["x-task-id"])
    assert record.status == "completed"
    assert record.run.id == "r1"
    assert record.response_text == "Mock reply to: hello there"
    assert record.usage.prompt_tokens == body["usage"]["prompt_tokens"]
    assert record.provider == "mock" and record.upstream_model == "gpt-4o-mini"
    assert record.ttft_ms is None


async def test_stream_relays_events_and_hides_injected_usage_chunk(proxy):
    async with proxy.client.stream(
        "POST", "/v1/chat/completions", json={**CHAT, "stream": True}
    ) as response:
        raw = b"".join([chunk async for chunk in response.aiter_bytes()])
    events = [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["choices"] for c in chunks), "the usage-only chunk must not be relayed"
    sent_upstream = proxy.mock.state.requests[-1]["json"]
    assert sent_upstream["stream_options"] == {"include_usage": True}
    record = (await proxy.wait_final())[0]
    assert record.usage is not None and record.usage.completion_tokens > 0
    assert record.response_text == "Mock reply to: hello there"
    assert record.ttft_ms is not None


async def test_client_asking_for_usage_gets_the_usage_chunk(proxy):
    payload = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with proxy.client.stream("POST", "/v1/chat/completions", json=payload) as response:
        raw = (await response.aread()).decode()
    chunks = [json.loads(line[6:]) for line in raw.split("\n") if line.startswith("data: {")]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


async def test_malformed_json_is_400_and_not_forwarded(proxy):
    response = await proxy.client.post(
        "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert len(proxy.mock.state.requests) == 0
    assert proxy.recorder.records == []
