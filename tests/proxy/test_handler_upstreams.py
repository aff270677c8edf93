"""The proxy against upstreams that misbehave in ways real networks and providers do, through
the whole app: bodies relayed as they arrive, compressed bodies, CR line ends, error bodies with
a 200, impossible usage, oversized events, stalls and breaks, and the terminal-event rule when
the client leaves. (`tests.support.raw_upstream` answers with exactly the bytes a test gives.)"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib

import httpx
import pytest

from tests.support.raw_upstream import http_response, raw_provider, raw_upstream

CHAT = {"model": "raw/x", "messages": [{"role": "user", "content": "hi"}]}
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "model": "x",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                 "finish_reason": "stop"}],
    "usage": USAGE,
}  # fmt: skip


def chunk(content: str | None = None, usage: dict | None = None) -> dict:
    choices = [{"index": 0, "delta": {"content": content}}] if content is not None else []
    return {"object": "chat.completion.chunk", "model": "x", "choices": choices, "usage": usage}


def sse_body(events: list[dict], end: bytes = b"\n\n", done: bool = True) -> bytes:
    body = b"".join(b"data: " + json.dumps(e).encode() + end for e in events)
    return body + (b"data: [DONE]" + end if done else b"")


def chunked_head(content_type: bytes = b"text/event-stream", extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\n" + extra
        + b"Transfer-Encoding: chunked\r\n\r\n"
    )  # fmt: skip


def chunk_bytes(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


STREAM_EVENTS = [chunk("hel"), chunk("lo"), chunk(usage=USAGE)]


async def stream_text(proxy, payload: dict, **kwargs) -> tuple[int, bytes, httpx.Headers]:
    async with proxy.client.stream("POST", "/v1/chat/completions", json=payload, **kwargs) as r:
        return r.status_code, await r.aread(), r.headers


# -- compressed bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding, compress", [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
async def test_a_compressed_body_reaches_the_client_decoded_and_is_captured(
    proxy_factory, encoding, compress
):
    body = compress(json.dumps(COMPLETION).encode())
    upstream = http_response(body, Content_Encoding=encoding)
    async with (
        raw_upstream(upstream) as (port, requests),
        proxy_factory(providers=raw_provider(port)) as proxy,
    ):
        response = await proxy.client.post("/v1/chat/completions", json=CHAT)
        assert response.status_code == 200
        assert "content-encoding" not in response.headers
        assert response.json() == COMPLETION
        assert "content-length" not in response.headers  # the decoded length is not known
        record = (await proxy.wait_final())[0]
        assert record.status == "completed" and record.response_text == "hello"
        assert record.usage.total_tokens == 7


async def test_a_compressed_event_stream_is_relayed_decoded(proxy_factory):
    body = gzip.compress(sse_body(STREAM_EVENTS))
    upstream = chunked_head(extra=b"Content-Encoding: gzip\r\n") + chunk_bytes(body) + b"0\r\n\r\n"
    async with (
        raw_upstream(upstream) as (port, _),
        proxy_factory(providers=raw_provider(port)) as proxy,
    ):
        status, raw, headers = await stream_text(proxy, {**CHAT, "stream": True})
        assert status == 200 and "content-encoding" not in headers
        assert raw.endswith(b"data: [DONE]\n\n") and b"hel" in raw
        record = (await proxy.wait_final())[0]
        assert record.status == "completed" and record.response_text == "hello"
        assert record.usage.total_tokens == 7


async def test_an_encoding_airuns_cannot_decode_is_a_502_that_says_so(proxy_factory):
    """airuns asks for `identity`; brotli sent anyway (without the Brotli package installed)
    is refused cleanly rather than relayed as binary labelled JSON."""
    async with (
        raw_upstream(http_response(b"\x1b\x03\x00", Content_Encoding="br")) as (port, _),
        proxy_factory(providers=raw_provider(port)) as proxy,
    ):
        response = await proxy.client.post("/v1/chat/completions", json=CHAT)
        assert response.status_code == 502
        assert "content-encoding" in response.json()["error"]["message"]
        record = (await proxy.wait_final())[0]
        assert record.status == "error" and record.http_status == 502


async def test_airuns_asks_the_upstream_for_an_uncompressed_body(proxy):
    await proxy.client.post(
        "/v1/chat/completions", json={**CHAT, "model": "gpt-4o-mini"},
        headers={"Accept-Encoding": "gzip, br"},
    )  # fmt: skip
    assert proxy.mock.state.requests[-1]["headers"]["accept-encoding"] == "identity"


# -- line ends and timing ---------------------------------------------------------------------


@pytest.mark.parametrize("end", [b"\r\r", b"\r\n\r\n", b"\n\n", b"\r\n\n"])
async def test_events_with_any_line_end_are_relayed_as_they_arrive_and_captured(proxy_factory, end):
    """The second event is sent only once the client has received the first: a relay that
    waited for the end (or for an LF) would never let the test finish."""
    received_first = asyncio.Event()
    first = sse_body([chunk("hel")], end=end, done=False)
    rest = sse_body([chunk("lo"), chunk(usage=USAGE)], end=end)

    async def write(writer: asyncio.StreamWriter) -> None:
        writer.write(chunked_head() + chunk_bytes(first))
        await writer.drain()
        await asyncio.wait_for(received_first.wait(), 5)
        writer.write(chunk_bytes(rest) + b"0\r\n\r\n")

    async with (
        raw_upstream(write) as (port, _),
        proxy_factory(providers=raw_provider(port)) as proxy,
    ):
        relayed = b""
        async with proxy.client.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "stream_options": {"include_usage": True},
                                                 "stream": True}
        ) as response:  # fmt: skip
            async for piece in response.aiter_raw():
                relayed += piece
                if b"hel" in relayed:
                    received_first.set()
        assert relayed == first + rest  # byte for byte
        record = (await proxy.wait_final())[0]
        assert record.status == "completed" and record.response_text == "hello"
        assert record.usage.total_tokens == 7 and record.ttft_ms is not None


async def test_a_whole_body_is_relayed_as_it_arrives(proxy_factory):
    received_start = asyncio.Event()
    body = json.dumps(COMPLETION).encode()

    async def write(writer: asyncio.StreamWriter) -> None:
        writer.write(chunked_head(b"application/json") + chunk_bytes(body[:20]))
        await writer.drain()
        await asyncio.wait_for(received_start.wait(), 5)
        writer.write(chunk_bytes(body[20:]) + b"0\r\n\r\n")

    async with (
        raw_upstream(write) as (port, _),
        proxy_factory(providers=raw_provider(port)) as proxy,
    ):
        relayed = b""
        async with proxy.client.stream("POST", "/v1/chat/completions", json=CHAT) as response:
            async for piece in response.aiter_raw():
                relayed += piece
                received_start.set()
        assert relayed == body
        record = (await proxy.wait_final())[0]
        assert record.status == "completed" and record.usage.total_tokens == 7


# -- what the upstream says -------------------------------------------------------------------


async def test_a_200_whose_body_is_an_error_is_an_error_task(proxy_factory):
    error = {"error": {"message": "model overloaded", "type": "server_error"}}
    async with (
        raw_upstream(http_response(json.dumps(error).encode())) as (port, _),
        proxy_factory(providers=raw_provider(port)) as proxy,
    ):
        response = await proxy.client.post("/v1/chat/completions", json=CHAT)
        assert response.status_code == 200 and response.json() == error  # passed through
        record = (await proxy.wait_final())[0]
        assert record.status == "error" and record.http_status == 200
        assert record.error_message == "model overloaded"


@pytest.mark.parametrize(
    "usage, problem",
    [
        ({"prompt_tokens": -5, "completion_tokens": 2, "total_tokens": -3}, "out of range"),
        ({"prompt_tokens": 2**64, "completion_tokens": 1}, "out of range"),
        ({"prompt_tokens": 10**17, "completion_tokens": 1}, "out of range"),
        ({"prompt_tokens": 1.5, "completion_tokens": 1}, "not a whole number"),
        ({"prompt_tokens": "12", "completion_tokens": 1}, "not a whole number"),
        ({"prompt_tokens": 3, "completion_tokens": 1,
          "prompt_tokens_details": {"cached_tokens": -1}}, "out of range"),
    ],
)  # fmt: skip
async def test_impossible_usage_is_recorded_as_invalid_never_as_tokens(
    proxy_factory, usage, problem
):
    body = {**COMPLETION, "usage": usage}
    async with (
        raw_upstream(http_response(json.dumps(body).encode())) as (port, _),
        proxy_factory(providers=raw_provider(port)) as proxy,
    ):
        response = await proxy.client.post("/v1/chat/completions", json=CHAT)
        assert response.status_code == 200
        record = (await proxy.wait_final())[0]
        assert record.status == "completed" and record.response_text == "hello"
        assert record.usage is None and record.usage_source == "invalid"
        assert problem in record.error_message


async def test_an_event_over_max_event_bytes_ends_the_stream_with_an_error(proxy_factory):
    big = b"data: " + b"x" * 5000 + b"\n\n"
    body = sse_body([chunk("hel")], done=False) + big + sse_body([chunk("lo")])
    async with (
        raw_upstream(chunked_head() + chunk_bytes(body) + b"0\r\n\r\n") as (port, _),
        proxy_factory("server_limits: {max_event_bytes: 1000}", raw_provider(port)) as proxy,
    ):
        status, raw, _ = await stream_text(proxy, {**CHAT, "stream": True})
        assert status == 200
        assert raw.startswith(sse_body([chunk("hel")], done=False))  # what came before it
        assert b"event: error" in raw and b"x" * 1001 not in raw
        record = (await proxy.wait_final())[0]
        assert record.status == "error" and "max_event_bytes" in record.error_message
        assert record.response_text == "hel"


# -- the terminal-event rule ------------------------------------------------------------------


async def test_a_client_that_closes_at_done_while_the_body_lingers_is_completed(proxy):
    headers = {"x-mock-linger-ms": "1000", "X-Run-Id": "lingering"}
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with proxy.client.stream(
        "POST", "/v1/chat/completions", json={**payload, "stream": True}, headers=headers
    ) as response:
        received = b""
        async for piece in response.aiter_raw():
            received += piece
            if b"data: [DONE]" in received:
                break  # as the official SDKs do: the connection is closed here
    record = (await proxy.wait_final())[0]
    assert record.status == "completed" and record.error_message is None
    assert record.response_text == "Mock reply to: hi" and record.usage_source == "provider"


async def test_a_client_that_closes_after_response_completed_is_completed(proxy):
    headers = {"x-mock-linger-ms": "1000"}
    payload = {"model": "gpt-4o-mini", "input": "hi", "stream": True}
    async with proxy.client.stream("POST", "/v1/responses", json=payload, headers=headers) as r:
        received = b""
        async for piece in r.aiter_raw():
            received += piece
            if b"response.completed" in received and received.endswith(b"\n\n"):
                break
    record = (await proxy.wait_final())[0]
    assert record.status == "completed" and record.usage.total_tokens > 0


async def test_a_client_that_leaves_before_any_response_is_cancelled_with_no_status(proxy):
    headers = {"x-mock-first-delay-ms": "3000"}
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(httpx.ReadTimeout):
        await proxy.client.post("/v1/chat/completions", json=payload, headers=headers, timeout=0.3)
    record = (await proxy.wait_final())[0]
    assert record.status == "cancelled" and record.http_status is None
    assert record.error_message == "client disconnected"


# -- stalls, breaks and in-stream errors ------------------------------------------------------


async def test_non_streaming_body_that_stalls_before_any_byte_is_504_and_a_timeout_task(
    proxy_factory,
):
    headers_only = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    )
    async with (
        raw_upstream(headers_only, then_stall=True) as (port, _),
        proxy_factory(providers=raw_provider(port)) as proxy,
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
        proxy_factory(providers=raw_provider(port)) as proxy,
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
        proxy_factory(providers=raw_provider(port)) as proxy,
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
        proxy_factory("default_provider: raw", providers=raw_provider(port)) as proxy,
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
