"""Relaying an upstream response to the client as it arrives, and saying how it ended.

Both relays forward bytes as they come off the upstream connection and never hold more than
one read (plus, for capture, at most `capture.max_body_bytes` of a whole body), whatever the
upstream sends; each returns the call's `Outcome`:

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
- `drain_stream`: with `capture.on_client_disconnect: drain`, reads on without a client so the
  task gets the provider's usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from proxy.call import Call
from proxy.errors import ProxyError, UpstreamTimeout, UpstreamUnreachable
from proxy.exchange import Headers, Send, sse_error_event
from proxy.outcome import Outcome, answered, broke_off, client_left
from proxy.sse import EventTooLarge, SSEDecoder
from proxy.upstream import UpstreamIdleTimeout, UpstreamResponse, UpstreamStreamError

_EXCERPT = 200  # characters of a non-JSON error body kept as the task's error text


async def relay_whole(
    call: Call, upstream: UpstreamResponse, send: Send, headers: Headers, keep: int
) -> Outcome:
    """Relay a non-streaming body; capture it when it is at most `keep` bytes."""
    body = upstream.iter_chunks()
    waited = time.perf_counter()
    try:
        first = await anext(body, b"")
    except (UpstreamIdleTimeout, UpstreamStreamError) as exc:
        raise _upstream_failure(exc, "response") from None
    kept = _Kept(keep)
    kept.add(first)
    length = upstream.content_length
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
    call.http_status = upstream.status
    if length is not None and len(first) >= length:  # the common case: all of it in one read
        await send({"type": "http.response.body", "body": first, "more_body": False})
    else:
        await _send_more(send, first)
        try:
            async for chunk in body:
                kept.add(chunk)
                await _send_more(send, chunk)
        except (UpstreamIdleTimeout, UpstreamStreamError) as exc:
            call.upstream_wait += time.perf_counter() - waited
            return broke_off(_upstream_failure(exc, "response"), upstream.status)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    call.upstream_wait += time.perf_counter() - waited
    call.upstream_drained = True
    capture = call.capture
    assert capture is not None
    if kept.whole:
        capture.observe_body(kept.data)
        if upstream.status >= 400 and capture.error_message is None and kept.data:
            capture.error_message = kept.data[: _EXCERPT * 4].decode("utf-8", "replace")[:_EXCERPT]
    return answered(capture, upstream.status)


async def relay_stream(
    call: Call, upstream: UpstreamResponse, send: Send, headers: Headers, decoder: SSEDecoder
) -> Outcome:
    """Relay one event stream; return how it ended."""
    await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
    call.http_status = upstream.status
    capture = call.capture
    assert capture is not None
    observe = capture.observe
    waited = time.perf_counter()
    try:
        async for chunk in upstream.iter_chunks():
            now = time.perf_counter()
            call.upstream_wait += now - waited
            out = [event.raw for event in decoder.decode(chunk) if observe(event, now)]
            if out:
                await _send_more(send, out[0] if len(out) == 1 else b"".join(out))
            call.terminal_relayed = capture.finished
            waited = time.perf_counter()
        call.upstream_wait += time.perf_counter() - waited
        tail = [event.raw for event in decoder.flush() if observe(event, time.perf_counter())]
        await send({"type": "http.response.body", "body": b"".join(tail), "more_body": False})
        call.terminal_relayed = capture.finished
        call.upstream_drained = True
        return answered(capture, upstream.status)
    except EventTooLarge as exc:  # the events before the oversized one still go out
        with contextlib.suppress(OSError):
            now = time.perf_counter()
            out = [event.raw for event in exc.events if observe(event, now)]
            if out:
                await _send_more(send, b"".join(out))
                call.terminal_relayed = capture.finished
        error = _upstream_failure(exc, "stream")
    except (UpstreamIdleTimeout, UpstreamStreamError) as exc:
        error = _upstream_failure(exc, "stream")
    except OSError:  # servers that raise on a send to a closed connection
        return client_left(capture, call.http_status, call.terminal_relayed)
    if call.terminal_relayed:  # what came after the answer does not change it
        await _end(send, b"")
        return answered(capture, upstream.status)
    await _end(send, sse_error_event(error))
    return broke_off(error, upstream.status)


async def drain_stream(
    call: Call, upstream: UpstreamResponse, decoder: SSEDecoder, limit: float
) -> None:
    """Keep reading a stream whose client has left, for at most `limit` seconds, so the task
    records the usage the provider billed (`capture.on_client_disconnect: drain`)."""
    assert call.capture is not None
    observe = call.capture.observe
    with contextlib.suppress(TimeoutError, UpstreamIdleTimeout, UpstreamStreamError, EventTooLarge):
        async with asyncio.timeout(limit):
            async for chunk in upstream.iter_chunks():
                now = time.perf_counter()
                for event in decoder.decode(chunk):
                    observe(event, now)


def _upstream_failure(exc: Exception, what: str) -> ProxyError:
    """The upstream's failure while sending a body, as the error airuns reports."""
    if isinstance(exc, UpstreamIdleTimeout):
        if what == "stream":
            return UpstreamTimeout("upstream stream stalled: no data within stream_idle")
        return UpstreamTimeout("upstream stalled while sending its response")
    if isinstance(exc, EventTooLarge):
        return UpstreamUnreachable(
            f"upstream sent an SSE event over server_limits.max_event_bytes ({exc.limit} bytes)"
        )
    if what == "stream":
        return UpstreamUnreachable(f"upstream closed the stream before it finished: {exc}")
    return UpstreamUnreachable(f"upstream broke off the response: {exc}")


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
