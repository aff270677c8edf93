"""Upstream misbehaviour a well-behaved fake does not produce: a raw TCP upstream on loopback
that answers with exactly the bytes a test gives it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

CHAT = {"model": "raw/x", "messages": [{"role": "user", "content": "hi"}]}


@asynccontextmanager
async def raw_upstream(response: bytes, *, then_stall: bool) -> AsyncIterator[tuple[int, list]]:
    """Serve `response` to every request; then stall (keep the socket open) or close."""
    request_lines: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_lines.append(head.split(b"\r\n", 1)[0])
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
        writer.write(response)
        await writer.drain()
        if then_stall:
            await asyncio.sleep(30)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], request_lines
    finally:
        server.close()


def _provider(port: int) -> str:
    return (
        f'  raw: {{base_url: "http://127.0.0.1:{port}/v1", '
        "timeouts: {connect: 2, read: 0.5, stream_idle: 0.5}}"
    )


async def test_non_streaming_body_that_stalls_is_504_and_a_timeout_task(proxy_factory):
    partial = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"
    async with (
        raw_upstream(partial, then_stall=True) as (port, _),
        proxy_factory(providers=_provider(port)) as proxy,
    ):
        response = await proxy.client.post("/v1/chat/completions", json=CHAT)
        assert response.status_code == 504
        assert response.json()["error"]["type"] == "timeout_error"
        record = (await proxy.wait_final())[0]
        assert record.status == "timeout" and record.http_status == 504


async def test_error_event_inside_a_stream_records_an_error_task(proxy_factory):
    chunk = {"choices": [{"index": 0, "delta": {"content": "par"}}], "model": "x"}
    error = {"error": {"message": "overloaded", "type": "server_error"}}
    body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(error)}\n\n".encode()
    response_bytes = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    async with (
        raw_upstream(response_bytes, then_stall=False) as (port, _),
        proxy_factory(providers=_provider(port)) as proxy,
    ):
        async with proxy.client.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "stream": True}
        ) as response:
            relayed = await response.aread()
        assert b"overloaded" in relayed  # relayed to the client as it came
        record = (await proxy.wait_final())[0]
        assert record.status == "error"
        assert record.error_message == "overloaded" and record.response_text == "par"


async def test_percent_encoded_pass_through_paths_stay_encoded(proxy_factory):
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    async with (
        raw_upstream(ok, then_stall=False) as (port, requests),
        proxy_factory("default_provider: raw", providers=_provider(port)) as proxy,
    ):
        response = await proxy.client.get("/v1/files/a%2Fb%3Fc")
        assert response.status_code == 200
        assert requests[-1] == b"GET /v1/files/a%2Fb%3Fc HTTP/1.1"


async def test_concurrent_calls_with_one_task_id_forward_only_one(proxy):
    headers = {"X-Task-Id": "same-id", "x-mock-first-delay-ms": "300"}
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    first, second = await asyncio.gather(
        proxy.client.post("/v1/chat/completions", json=payload, headers=headers),
        proxy.client.post("/v1/chat/completions", json=payload, headers=headers),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    assert len(proxy.mock.state.requests) == 1
