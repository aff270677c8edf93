"""Upstream misbehaviour a well-behaved fake does not produce (`tests.support.raw_upstream`)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.support.raw_upstream import raw_provider, raw_upstream

CHAT = {"model": "raw/x", "messages": [{"role": "user", "content": "hi"}]}


def _provider(port: int) -> str:
    return raw_provider(port)


async def test_non_streaming_body_that_stalls_before_any_byte_is_504_and_a_timeout_task(
    proxy_factory,
):
    headers_only = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    )
    async with (
        raw_upstream(headers_only, then_stall=True) as (port, _),
        proxy_factory(providers=_provider(port)) as proxy,
    ):
        response = await proxy.client.post("/v1/chat/completions", json=CHAT)
        assert response.status_code == 504
        assert response.json()["error"]["type"] == "timeout_error"
        record = (await proxy.wait_final())[0]
        assert record.status == "timeout" and record.http_status == 504


async def test_non_streaming_body_that_stalls_midway_breaks_the_relayed_response(proxy_factory):
    """Bodies are relayed as they arrive: once the first bytes are out, a stall can only end
    the client's response early (its connection is closed), never turn into a clean 200."""
    partial = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"
    async with (
        raw_upstream(partial, then_stall=True) as (port, _),
        proxy_factory(providers=_provider(port)) as proxy,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await proxy.client.post("/v1/chat/completions", json=CHAT)
        record = (await proxy.wait_final())[0]
        assert record.status == "timeout" and record.http_status == 200
        assert record.error_message == "upstream stalled while sending its response"


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


async def test_percent_encoded_pass_through_paths_reach_the_upstream_encoded(proxy_factory):
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    async with (
        raw_upstream(ok, then_stall=False) as (port, requests),
        proxy_factory("default_provider: raw", providers=_provider(port)) as proxy,
    ):
        response = await proxy.client.get("/v1/files/a%3Fb%20c%25d?x=1")
        assert response.status_code == 200
        assert requests[-1] == b"GET /v1/files/a%3Fb%20c%25d?x=1 HTTP/1.1"
        response = await proxy.client.get("/v1/files/a%2Fb")  # an encoded slash: refused
        assert response.status_code == 400 and response.json()["error"]["param"] == "path"
        assert len(requests) == 1


async def test_concurrent_calls_with_one_task_id_forward_only_one(proxy):
    headers = {"X-Task-Id": "same-id", "x-mock-first-delay-ms": "300"}
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    first, second = await asyncio.gather(
        proxy.client.post("/v1/chat/completions", json=payload, headers=headers),
        proxy.client.post("/v1/chat/completions", json=payload, headers=headers),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    assert len(proxy.mock.state.requests) == 1
