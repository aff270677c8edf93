"""The request edge (`proxy/server.py`) on real sockets, under the protocol `airuns serve` runs:
oversized heads get 431 before they end, slow heads and stalled bodies are closed (408 where an
answer can still be sent) while ordinary calls go on, and the waits that are ours, not the
client's (flow control, `100 Continue`), are never held against it."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from proxy.server import EdgeProtocol, ServerConfig
from proxy.settings import ServerLimits
from tests.support.servers import free_port, serve_limited

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
SLOW_ATTACK = "server_limits: {header_timeout: 2, body_timeout: 2}"
DEADLINE = 20.0  # generous: the machine is shared; every bound below is far inside it


# -- raw connections ---------------------------------------------------------------------------
class Raw:
    """One client connection written and read byte by byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> Raw:
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_all(self, timeout: float = DEADLINE) -> bytes:
        """Everything the server sends until it closes its side."""
        chunks = []
        async with asyncio.timeout(timeout):
            while True:
                try:
                    chunk = await self.reader.read(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.writer.close()


class Clients:
    """Raw connections and the tasks that feed them, all closed on exit: a server that fails
    to close them fails the test instead of hanging its shutdown."""

    def __init__(self) -> None:
        self.raws: list[Raw] = []
        self.tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self.tasks:
            task.cancel()
        for raw in self.raws:
            raw.close()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def open(self, url: str) -> Raw:
        raw = await Raw.open(url)
        self.raws.append(raw)
        return raw

    def spawn(self, coroutine: Any) -> asyncio.Task:
        task = asyncio.create_task(coroutine)
        self.tasks.append(task)
        return task


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, body


def assert_openai_error(raw: bytes, status: int, code: str) -> None:
    got, headers, body = parse(raw)
    assert got == status, raw[:300]
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == code
    assert error["param"] is None and error["message"]


def head(path: str = "/healthz", method: str = "GET", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- a raw app, to see what the app is told ----------------------------------------------------
class EchoApp:
    """Answers with the number of body bytes it read; `hold` seconds before it reads them."""

    def __init__(self, hold: float = 0.0) -> None:
        self.hold = hold
        self.events: list[str] = []
        self.second_answer: Exception | None = None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        await asyncio.sleep(self.hold)
        size, more = 0, True
        while more:
            message = await receive()
            self.events.append(message["type"])
            if message["type"] == "http.disconnect":
                await self._answer_anyway(send)
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = str(size).encode()
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer_anyway(self, send: Callable) -> None:
        """An app that ignores the disconnect: its answer must go nowhere."""
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
        self.events.append("answered")


async def _lifespan(receive: Callable, send: Callable) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


@asynccontextmanager
async def echo_server(app: EchoApp | None = None, **limits: Any) -> AsyncIterator[str]:
    async with serve_limited(app or EchoApp(), ServerLimits(**limits)) as url:
        yield url


async def until(condition: Callable[[], bool], timeout: float = DEADLINE) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


# -- header size ---------------------------------------------------------------------------------
@pytest.mark.parametrize("write_size", [1 << 20, 1000], ids=["one-write", "1000-byte-writes"])
async def test_head_over_the_limit_is_431_before_it_ends(proxy_factory, write_size):
    async with proxy_factory("server_limits: {max_header_bytes: 8192}") as proxy, Clients() as c:
        raw = await c.open(proxy.url)
        unfinished = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 9000
        started = time.monotonic()
        for offset in range(0, len(unfinished), write_size):  # the head never ends
            await raw.send(unfinished[offset : offset + write_size])
        answer = await raw.read_all()
        assert time.monotonic() - started < 5
        assert_openai_error(answer, 431, "request_header_fields_too_large")
        assert (await proxy.client.get("/healthz")).status_code == 200


async def test_endless_head_does_not_stall_other_calls(proxy_factory):
    async with proxy_factory() as proxy, Clients() as c:  # the default limit, 64 KiB
        raw = await c.open(proxy.url)
        await raw.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: ")
        c.spawn(_send_forever(raw, b"a" * 65536))
        answer = await raw.read_all()
        assert_openai_error(answer, 431, "request_header_fields_too_large")
        started = time.monotonic()
        assert (await proxy.client.get("/healthz")).status_code == 200
        assert time.monotonic() - started < 5


async def _send_forever(raw: Raw, data: bytes) -> None:
    try:
        while True:
            await raw.send(data)
    except (ConnectionError, OSError):
        pass


@pytest.mark.parametrize(
    ("pad", "body", "status"),
    [
        (0, b"", 200),  # the head is exactly the limit
        (1, b"", 431),  # one byte over
        (-10, b"b" * 100_000, 200),  # a head under the limit, its body in the same write
    ],
    ids=["at-limit", "one-over", "body-in-same-write"],
)
async def test_limit_counts_the_head_only(pad, body, status):
    limit = 4096
    base = head("/echo", "POST", Content_Length=str(len(body)), X_Pad="")
    padded = base.replace(b"X-Pad: ", b"X-Pad: " + b"p" * (limit - len(base) + pad))
    assert len(padded) == limit + pad
    async with echo_server(max_header_bytes=limit) as url, Clients() as c:
        raw = await c.open(url)
        await raw.send(padded + body + head(Connection="close"))  # and a pipelined request
        answer = await raw.read_all()
        assert parse(answer)[0] == status
        if status == 200:
            assert parse(answer)[2].startswith(str(len(body)).encode() + b"HTTP/1.1 200")


async def test_many_small_pipelined_requests_in_one_read_are_all_served():
    requests = 2000  # ~70 KB in one write, each head under a 64-byte limit
    async with echo_server(max_header_bytes=64) as url, Clients() as c:
        raw = await c.open(url)
        await raw.send(head() * (requests - 1) + head(Connection="close"))
        answer = await raw.read_all()
        assert answer.count(b"HTTP/1.1 200 OK") == requests


# -- timeouts ------------------------------------------------------------------------------------
async def test_slow_heads_and_a_stalled_body_are_closed_while_calls_go_on(proxy_factory):
    """The attack of the issue, with 2 s timeouts: 200 connections send one header line every
    0.3 s, one POST sends 9 of its 1,000 declared bytes; all are answered 408 and closed, and
    `/healthz` and a proxied chat completion keep answering meanwhile."""
    async with proxy_factory(SLOW_ATTACK) as proxy, Clients() as c:
        started = time.monotonic()
        slow = [c.spawn(_slow_head(c, proxy.url)) for _ in range(200)]
        stalled = c.spawn(_stalled_body(c, proxy.url))
        attackers = [*slow, stalled]
        calls = calls_while_all_held = 0
        while not all(task.done() for task in attackers):
            assert time.monotonic() - started < DEADLINE, "the attackers were not closed"
            health = await proxy.client.get("/healthz", timeout=5)
            chat = await proxy.client.post("/v1/chat/completions", json=CHAT, timeout=5)
            assert (health.status_code, chat.status_code) == (200, 200)
            calls += 1
            calls_while_all_held += not any(task.done() for task in attackers)
        for answer, held in [task.result() for task in attackers]:
            assert_openai_error(answer, 408, "request_timeout")
            assert held >= 1.9  # closed by the timeout, not by accident
        assert calls_while_all_held >= 1
        assert len(proxy.mock.state.requests) == calls  # the stalled call was not forwarded


async def _slow_head(c: Clients, url: str) -> tuple[bytes, float]:
    raw = await c.open(url)
    opened = time.monotonic()
    lines = [b"GET /healthz HTTP/1.1\r\n"] + [b"X-Slow-%d: 1\r\n" % i for i in range(1000)]
    c.spawn(_drip(raw, lines, 0.3))
    return await raw.read_all(), time.monotonic() - opened


async def _drip(raw: Raw, pieces: list[bytes], interval: float) -> None:
    try:
        for piece in pieces:
            await raw.send(piece)
            await asyncio.sleep(interval)
    except (ConnectionError, OSError):
        pass


async def _stalled_body(c: Clients, url: str) -> tuple[bytes, float]:
    raw = await c.open(url)
    await raw.send(head("/v1/chat/completions", "POST", Content_Length="1000") + b'{"model":')
    sent = time.monotonic()  # 9 of the 1,000 bytes
    return await raw.read_all(), time.monotonic() - sent


async def test_silent_connection_is_closed_without_an_answer():
    async with echo_server(header_timeout=1) as url, Clients() as c:
        raw = await c.open(url)
        opened = time.monotonic()
        assert await raw.read_all() == b""
        assert time.monotonic() - opened >= 0.9


async def test_slow_but_steady_body_is_not_cut():
    async with echo_server(body_timeout=1) as url, Clients() as c:
        raw = await c.open(url)
        await raw.send(head("/echo", "POST", Content_Length="10", Connection="close"))
        started = time.monotonic()
        await _drip(raw, [b"x"] * 10, 0.3)  # ~3 s in all, 0.3 s between chunks
        assert time.monotonic() - started > 2  # well past the body timeout
        status, _, body = parse(await raw.read_all())
        assert (status, body) == (200, b"10")


async def test_body_the_app_has_not_taken_yet_is_not_timed_out():
    """uvicorn stops reading past 64 KiB of body the app has not received: that wait is the
    app's, so the client is not cut however long the app takes."""
    async with echo_server(EchoApp(hold=2.5), body_timeout=1) as url, Clients() as c:
        raw = await c.open(url)
        body = b"b" * (4 << 20)
        await raw.send(head("/echo", "POST", Content_Length=str(len(body)), Connection="close"))
        c.spawn(raw.send(body))
        status, _, answer = parse(await raw.read_all())
        assert (status, answer) == (200, str(len(body)).encode())


async def test_waiting_for_100_continue_is_not_held_against_the_client():
    async with echo_server(EchoApp(hold=2.5), body_timeout=1) as url, Clients() as c:
        raw = await c.open(url)
        await raw.send(head("/echo", "POST", Content_Length="5", Expect="100-continue"))
        async with asyncio.timeout(DEADLINE):
            assert await raw.reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        await raw.send(b"hello")
        async with asyncio.timeout(DEADLINE):
            status_line = await raw.reader.readline()
        assert status_line.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    "opening",
    [
        head("/echo", "POST", Content_Length=str(4 << 20)) + b"b" * (70 << 10),  # flow control
        head("/echo", "POST", Content_Length="5", Expect="100-continue"),
    ],
    ids=["after-flow-control", "after-100-continue"],
)
async def test_a_stall_once_our_wait_is_over_is_timed_out(opening):
    async with echo_server(EchoApp(hold=2.5), body_timeout=1) as url, Clients() as c:
        raw = await c.open(url)
        await raw.send(opening)  # and nothing more
        sent = time.monotonic()
        answer = await raw.read_all()
        assert_openai_error(answer[answer.find(b"HTTP/1.1 408") :], 408, "request_timeout")
        assert time.monotonic() - sent >= 2.5 + 0.9  # the app's wait, then the client's stall


async def test_after_a_body_timeout_the_app_sees_a_disconnect_and_cannot_answer():
    app = EchoApp()
    async with echo_server(app, body_timeout=1) as url, Clients() as c:
        raw = await c.open(url)
        await raw.send(head("/echo", "POST", Content_Length="1000") + b"123456789")
        answer = await raw.read_all()
        assert_openai_error(answer, 408, "request_timeout")
        assert answer.count(b"HTTP/1.1") == 1
        await until(lambda: "answered" in app.events)
        *received, disconnect, answered = app.events
        assert set(received) == {"http.request"}
        assert (disconnect, answered) == ("http.disconnect", "answered")


async def test_idle_keep_alive_connection_is_closed_after_5_s():
    async with echo_server(header_timeout=1) as url, Clients() as c:
        raw = await c.open(url)
        await raw.send(head())
        async with asyncio.timeout(DEADLINE):
            await raw.reader.readuntil(b"\r\n\r\n")
            assert await raw.reader.readexactly(1) == b"0"
        answered = time.monotonic()
        assert await raw.read_all() == b""
        assert time.monotonic() - answered >= 4.5  # uvicorn's keep-alive, not the head timeout


# -- connections ---------------------------------------------------------------------------------
async def test_connections_beyond_max_connections_get_503(proxy_factory):
    async with proxy_factory("server_limits: {max_connections: 2}") as proxy, Clients() as c:
        await c.open(proxy.url)
        await c.open(proxy.url)
        assert (await _fresh_get(proxy.url)).status_code == 503
        c.raws.pop().close()
        async with asyncio.timeout(DEADLINE):
            while (await _fresh_get(proxy.url)).status_code != 200:
                await asyncio.sleep(0.05)


async def _fresh_get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as fresh:
        return await fresh.get("/healthz")


def test_server_config_carries_its_limits_into_worker_processes():
    limits = ServerLimits(max_header_bytes=1234, header_timeout=2, max_connections=7)
    config = ServerConfig("proxy.asgi:create_from_environment", limits=limits, workers=2)
    copy = pickle.loads(pickle.dumps(config))  # what --workers does with it
    assert copy.server_limits == limits
    assert copy.http is EdgeProtocol
    assert copy.limit_concurrency == 8
    unlimited = ServerConfig("proxy.asgi:create_from_environment", limits=ServerLimits())
    assert unlimited.limit_concurrency is None


STARTING = """
import sys
from proxy.server import ServerConfig, run_server
from proxy.settings import ServerLimits
config = ServerConfig(sys.argv[1], limits=ServerLimits(), factory=True, port=int(sys.argv[2]),
                      workers=int(sys.argv[3]), lifespan="on", log_level="critical")
run_server(config, on_started=lambda: print("listening", flush=True))
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_a_server_whose_app_cannot_start_never_says_it_listens_and_exits_3(workers) -> None:
    """With one process or a supervisor of several: the start line follows the app's start,
    and a start that failed is not an exit 0."""
    result = subprocess.run(
        [sys.executable, "-c", STARTING, "tests.support.failing_app:create", str(free_port()),
         str(workers)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )  # fmt: skip
    assert "listening" not in result.stdout
    assert result.returncode == 3, result.stderr[-2000:]
