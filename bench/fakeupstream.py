"""A cheap fake OpenAI upstream for the overhead benchmark (`python bench/fakeupstream.py PORT`).

It answers with the same bytes as `airuns mock-upstream` (built by `proxy.mock_replies`), but
from a raw asyncio protocol that renders each distinct reply once: about 9 µs of CPU per
non-streaming call and 115 µs per 20-chunk stream, against the aiohttp mock's ~90 and ~420 µs.
On a 2-core machine the aiohttp mock alone saturates a core at ~2,100 streams/s, below the
2,500/s the proxy is asked to reach.

Streams go out one SSE event per write (chunked transfer encoding), as a provider sends tokens.
`x-mock-chunks` / `+chunks=` set the number of content chunks; `x-mock-chunk-delay-ms` /
`+chunk_delay=` pace them like the mock (the delay goes before every content chunk but the
first), but against due times from the stream's start, so timer slack does not accumulate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

from proxy.mock_replies import (
    build_reply,
    chat_completion,
    chat_stream,
    dumps,
    error_body,
    message_texts,
    parse_options,
)

_OPTION_HEADERS = (b"x-mock-chunks", b"x-mock-chunk-delay-ms")
_CACHE_LIMIT = 256


class Reply:
    """A rendered answer: one body, or stream frames, each with the time it is due at
    (seconds after the response head: due times, not sleeps, so timer slack cannot add up)."""

    __slots__ = ("head", "frames", "due")

    def __init__(self, head: bytes, frames: list[bytes], due: list[float]) -> None:
        self.head = head
        self.frames = frames
        self.due = due


def render(path: bytes, body: bytes, headers: dict[str, str]) -> Reply:
    """Build the reply the mock would send (computed once per distinct request)."""
    try:
        request: Any = json.loads(body) if body else {}
        if path != b"/v1/chat/completions" or not isinstance(request, dict):
            raise ValueError("the benchmark fake serves POST /v1/chat/completions only")
        model = request.get("model") if isinstance(request.get("model"), str) else ""
        opts = parse_options(model, headers)
    except ValueError as exc:
        payload = dumps(error_body(str(exc), "invalid_request_error", None)).encode()
        return _whole(400, payload)
    texts, last_user = message_texts(request.get("messages"))
    reply = build_reply(texts, last_user, opts, None)
    if not request.get("stream"):
        return _whole(200, dumps(chat_completion("chatcmpl-bench", opts.model, reply)).encode())
    options = request.get("stream_options")
    usage = isinstance(options, dict) and options.get("include_usage") is True
    frames, due, at, content_seen = [], [], 0.0, 0
    for data, is_content in chat_stream("chatcmpl-bench", opts.model, reply, usage):
        if is_content and content_seen:
            at += opts.chunk_delay_ms / 1000
        content_seen += is_content
        frames.append(b"%x\r\n%s\r\n" % (len(data), data))
        due.append(at)
    frames.append(b"0\r\n\r\n")
    due.append(at)
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    return Reply(head, frames, due)


def _whole(status: int, payload: bytes) -> Reply:
    reason = b"OK" if status == 200 else b"Bad Request"
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % (
        status,
        reason,
        len(payload),
    )
    return Reply(head + payload, [], [])


class FakeUpstream(asyncio.Protocol):
    """One keep-alive connection; requests are answered one at a time, in order."""

    def __init__(self, cache: dict[tuple, Reply]) -> None:
        self.cache = cache
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next_request()

    def _next_request(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.transport is None:
            return
        lines = self.buffer[:end].split(b"\r\n")
        length, options = 0, []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name in _OPTION_HEADERS:
                options.append((name, value.strip()))
        if len(self.buffer) < end + 4 + length:
            return
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        path = lines[0].split(b" ")[1]
        key = (path, body, tuple(options))
        reply = self.cache.get(key)
        if reply is None:
            headers = {n.decode(): v.decode() for n, v in options}
            reply = render(path, body, headers)
            if len(self.cache) < _CACHE_LIMIT:
                self.cache[key] = reply
        self.transport.write(reply.head)
        if reply.frames:
            self.busy = True
            self._send_frames(reply, 0, self.loop.time())
        elif self.buffer:
            self._next_request()

    def _send_frames(self, reply: Reply, index: int, started: float) -> None:
        """Write the frames that are due; a later one re-enters here from a timer."""
        frames, due = reply.frames, reply.due
        while index < len(frames):
            if self.transport is None:
                return
            at = started + due[index]
            if due[index] and at > self.loop.time():
                self.loop.call_at(at, self._send_frames, reply, index, started)
                return
            self.transport.write(frames[index])
            index += 1
        self.busy = False
        if self.buffer:
            self._next_request()


async def serve(host: str, port: int) -> None:
    cache: dict[tuple, Reply] = {}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FakeUpstream(cache), host, port, backlog=1024)
    print(f"fake upstream listening on http://{host}:{port}/v1", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9100
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner, contextlib.suppress(KeyboardInterrupt):
        runner.run(serve("127.0.0.1", port))


if __name__ == "__main__":
    main()
