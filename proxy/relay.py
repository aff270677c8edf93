"""Relaying an upstream response to the client as it arrives, and saying how it ended.

Both relays forward bytes as they come off the upstream connection and never hold more than
one read (plus, for capture, at most `capture.max_body_bytes` of a whole body), whatever the
upstream sends; each returns a `Relayed`: the call's `Outcome` and whether the upstream body
was read to its end (only then can its connection go back to the pool).

- `relay_whole` (a non-streaming body): the response starts with the body's first bytes, so an
  upstream that fails before sending any still gets the client a clean 502/504; one that fails
  later leaves the client's response unfinished (its connection is closed), as any proxy must.
  Each read goes out as it arrives; a body that came whole in one read goes out in one send.
  The body is captured (usage, text, errors) when it fits in the capture limit.
- `relay_stream` (an event stream): each read is decoded into whole events whose raw bytes go
  out unchanged (the one usage-only chunk airuns asked for is dropped), so nothing is re-encoded.
  Outcomes: the upstream's answer; timeout (no bytes for `stream_idle`); error (the upstream broke
  off, or sent one event over `server_limits.max_event_bytes`): an SSE error event, then close.
  After the terminal event has been relayed, the upstream's answer stands (see `outcome`).
- The client leaving mid-relay cancels the relay (`exchange.DisconnectWatcher`); `client_gone`
  tells that cancellation from any other, and the relay then says what the client got.
- `drain_stream`: with `capture.on_client_disconnect: drain`, reads on without a client so the
  task gets the provider's usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from proxy.capture import Capture
from proxy.errors import ProxyError, UpstreamUnreachable
from proxy.exchange import Headers, Send, sse_error_event
from proxy.outcome import Outcome, answered, broke_off, client_left
from proxy.sse import EventTooLarge, SSEDecoder
from proxy.upstream import UpstreamResponse

_EXCERPT = 200  # characters of a non-JSON error body kept as the task's error text


@dataclass(frozen=True, slots=True)
class Relayed:
    outcome: Outcome
    drained: bool  # the upstream body was read to its end


async def relay_whole(
    capture: Capture,
    upstream: UpstreamResponse,
    send: Send,
    headers: Headers,
    keep: int,
    client_gone: Callable[[], bool],
) -> Relayed:
    """Relay a non-streaming body; capture it when it is at most `keep` bytes. Raises the
    upstream's error when it fails before the response has started."""
    body = upstream.iter_chunks()
    first = await anext(body, b"")
    kept = _Kept(keep)
    kept.add(first)
    length = upstream.content_length
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    status = upstream.status
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if length is not None and len(first) >= length:  # the common case: all in one read
            await send({"type": "http.response.body", "body": first, "more_body": False})
        else:
            await _send_more(send, first)
            async for chunk in body:
                kept.add(chunk)
                await _send_more(send, chunk)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except ProxyError as error:  # the response has started: it can only end unfinished
        return Relayed(broke_off(error, status), False)
    except asyncio.CancelledError:
        if not client_gone():
            raise
        return Relayed(client_left(capture, status, False), False)
    if kept.whole:
        capture.observe_body(kept.data)
        if status >= 400 and capture.error_message is None and kept.data:
            capture.note_error(kept.data[: _EXCERPT * 4].decode("utf-8", "replace")[:_EXCERPT])
    return Relayed(answered(capture, status), True)


async def relay_stream(
    capture: Capture,
    upstream: UpstreamResponse,
    send: Send,
    headers: Headers,
    decoder: SSEDecoder,
    client_gone: Callable[[], bool],
) -> Relayed:
    """Relay one event stream; return how it ended."""
    status = upstream.status
    observe = capture.observe
    terminal_relayed = False  # the terminal event has reached the client
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        try:
            async for chunk in upstream.iter_chunks():
                now = time.perf_counter()
                out = [event.raw for event in decoder.decode(chunk) if observe(event, now)]
                if out:
                    await _send_more(send, out[0] if len(out) == 1 else b"".join(out))
                terminal_relayed = capture.finished
            tail = [event.raw for event in decoder.flush() if observe(event, time.perf_counter())]
            await send({"type": "http.response.body", "body": b"".join(tail), "more_body": False})
            return Relayed(answered(capture, status), True)
        except EventTooLarge as exc:  # the events before the oversized one still go out
            now = time.perf_counter()
            out = [event.raw for event in exc.events if observe(event, now)]
            if out:
                await _send_more(send, b"".join(out))
                terminal_relayed = capture.finished
            error: ProxyError = UpstreamUnreachable(
                f"upstream sent an SSE event over server_limits.max_event_bytes ({exc.limit} bytes)"
            )
        except ProxyError as exc:
            error = exc.with_traceback(None)  # kept past the block: no frame cycle
    except OSError:  # servers that raise on a send to a closed connection
        return Relayed(client_left(capture, status, terminal_relayed), False)
    except asyncio.CancelledError:
        if not client_gone():
            raise
        return Relayed(client_left(capture, status, terminal_relayed), False)
    if terminal_relayed:  # what came after the answer does not change it
        await _end(send, b"")
        return Relayed(answered(capture, status), False)
    await _end(send, sse_error_event(error))
    return Relayed(broke_off(error, status), False)


async def drain_stream(
    capture: Capture, upstream: UpstreamResponse, decoder: SSEDecoder, limit: float
) -> None:
    """Keep reading a stream whose client has left, for at most `limit` seconds, so the task
    records the usage the provider billed (`capture.on_client_disconnect: drain`)."""
    observe = capture.observe
    with contextlib.suppress(TimeoutError, ProxyError, EventTooLarge):
        async with asyncio.timeout(limit):
            async for chunk in upstream.iter_chunks():
                now = time.perf_counter()
                for event in decoder.decode(chunk):
                    observe(event, now)


class _Kept:
    """At most `limit` bytes of a body, for capture; nothing once it is known to be larger."""

    __slots__ = ("_parts", "_room", "whole")

    def __init__(self, limit: int) -> None:
        self._parts: list[bytes] = []
        self._room = limit
        self.whole = limit > 0

    def add(self, chunk: bytes) -> None:
        if not self.whole:
            return
        self._room -= len(chunk)
        if self._room < 0:
            self._parts, self.whole = [], False
        else:
            self._parts.append(chunk)

    @property
    def data(self) -> bytes:
        return self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)


async def _send_more(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _end(send: Send, body: bytes) -> None:
    with contextlib.suppress(OSError):
        await send({"type": "http.response.body", "body": body, "more_body": False})
