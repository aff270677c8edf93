"""The one boundary to providers, on its own against raw upstreams on loopback: where requests
go, what aiohttp's failures become, decoding, and the time spent waiting."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from proxy.errors import UpstreamTimeout, UpstreamUnreachable
from proxy.settings import Timeouts
from proxy.upstream import Provider, UpstreamPool
from tests.support.raw_upstream import http_response, raw_upstream
from tests.support.servers import free_port

FAST = Timeouts(connect=1, read=0.3, stream_idle=0.3)


@asynccontextmanager
async def pool_for(port: int, path: str = "/v1") -> AsyncIterator[UpstreamPool]:
    pool = UpstreamPool({"p": Provider("p", f"http://127.0.0.1:{port}{path}", None, FAST)})
    await pool.open()
    try:
        yield pool
    finally:
        await pool.close()


async def body_of(pool: UpstreamPool, path: str = "/x", stream: bool = False) -> bytes:
    response = await pool.send("p", "GET", path, {}, None, stream=stream)
    try:
        return b"".join([chunk async for chunk in response.iter_chunks()])
    finally:
        response.close()


async def test_requests_go_under_the_base_path_with_the_path_as_encoded():
    async with raw_upstream(http_response(b"{}")) as (port, requests), pool_for(port) as pool:
        await body_of(pool, "/files/a%3Fb?x=1")
    assert requests == [b"GET /v1/files/a%3Fb?x=1 HTTP/1.1"]


async def test_an_unreachable_provider_is_a_502_error():
    async with pool_for(free_port()) as pool:
        with pytest.raises(UpstreamUnreachable, match="unreachable"):
            await pool.send("p", "GET", "/x", {}, None, stream=False)


async def test_headers_that_never_come_are_a_504_error():
    async def nothing(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async with raw_upstream(nothing) as (port, _), pool_for(port) as pool:
        with pytest.raises(UpstreamTimeout):
            await pool.send("p", "GET", "/x", {}, None, stream=False)


@pytest.mark.parametrize(
    "stream, message",
    [(False, "stalled while sending its response"), (True, "stream stalled")],
)
async def test_a_body_that_stalls_is_a_timeout_error(stream, message):
    stalled = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{"
    async with raw_upstream(stalled, then_stall=True) as (port, _), pool_for(port) as pool:
        with pytest.raises(UpstreamTimeout, match=message):
            await body_of(pool, stream=stream)


async def test_a_body_broken_off_is_an_unreachable_error():
    broken = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"
    async with raw_upstream(broken) as (port, _), pool_for(port) as pool:
        with pytest.raises(UpstreamUnreachable, match="broke off"):
            await body_of(pool)


async def test_a_gzip_body_is_decoded_and_has_no_length_to_relay():
    compressed = http_response(gzip.compress(b'{"a": 1}'), Content_Encoding="gzip")
    async with raw_upstream(compressed) as (port, _), pool_for(port) as pool:
        response = await pool.send("p", "GET", "/x", {}, None, stream=False)
        assert response.content_length is None
        assert await response.read(1000) == b'{"a": 1}'
        response.release()


async def test_a_body_over_the_read_limit_is_refused():
    async with raw_upstream(http_response(b"x" * 100)) as (port, _), pool_for(port) as pool:
        response = await pool.send("p", "GET", "/x", {}, None, stream=False)
        with pytest.raises(UpstreamUnreachable, match="over 10 bytes"):
            await response.read(10)
        response.close()


async def test_the_time_waiting_on_the_upstream_is_counted_in_one_place():
    async def slow(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.2)  # before the headers
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)  # between body reads
        writer.write(b"1\r\nb\r\n0\r\n\r\n")

    async with raw_upstream(slow) as (port, _), pool_for(port) as pool:
        response = await pool.send("p", "GET", "/x", {}, None, stream=True)
        assert response.waited >= 0.2
        assert b"".join([chunk async for chunk in response.iter_chunks()]) == b"ab"
        assert response.waited >= 0.4
        response.release()
