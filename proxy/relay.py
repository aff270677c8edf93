"""The streaming relay: upstream SSE bytes to the client as they arrive.

Each upstream read is decoded into whole events; their raw bytes go out unchanged (the one
usage-only chunk airuns asked for is dropped), so nothing is re-encoded and the stream is never
buffered beyond one partial event. Outcomes: completed; timeout (no bytes for `stream_idle`:
an SSE error event, then close); error (the upstream broke off: an SSE error event, then
close); cancelled (the client left: the caller closes the upstream connection at once, or,
with the `drain` policy, reads on without a client to record the provider's usage).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from proxy.call import Call
from proxy.errors import UpstreamTimeout, UpstreamUnreachable
from proxy.exchange import Headers, Send, sse_error_event
from proxy.recording import CANCELLED, COMPLETED, ERROR, TIMEOUT
from proxy.sse import SSEDecoder
from proxy.upstream import UpstreamIdleTimeout, UpstreamResponse, UpstreamStreamError


async def relay_stream(
    call: Call, upstream: UpstreamResponse, send: Send, headers: Headers, decoder: SSEDecoder
) -> str:
    """Relay one event stream; return the call's status."""
    await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
    observe = call.capture.observe
    waited = time.perf_counter()
    try:
        async for chunk in upstream.iter_chunks():
            now = time.perf_counter()
            call.upstream_wait += now - waited
            out = [event.raw for event in decoder.decode(chunk) if observe(event, now)]
            if out:
                await _send_more(send, out[0] if len(out) == 1 else b"".join(out))
            waited = time.perf_counter()
        call.upstream_wait += time.perf_counter() - waited
        tail = [event.raw for event in decoder.flush() if observe(event, time.perf_counter())]
        await send({"type": "http.response.body", "body": b"".join(tail), "more_body": False})
        call.upstream_drained = True
        # An error sent inside the stream (or an error status with an event stream) is an error.
        failed = call.capture.error_message is not None or upstream.status >= 400
        return ERROR if failed else COMPLETED
    except UpstreamIdleTimeout:
        call.error_message = "upstream stream stalled: no data within the stream_idle timeout"
        await _end_with_error(send, UpstreamTimeout(call.error_message))
        return TIMEOUT
    except UpstreamStreamError as exc:
        call.error_message = f"upstream closed the stream before it finished: {exc}"
        await _end_with_error(send, UpstreamUnreachable(call.error_message))
        return ERROR
    except OSError:
        call.error_message = "client disconnected"
        return CANCELLED


async def drain_stream(
    call: Call, upstream: UpstreamResponse, decoder: SSEDecoder, limit: float
) -> None:
    """Keep reading a stream whose client has left, for at most `limit` seconds, so the task
    records the usage the provider billed (`capture.on_client_disconnect: drain`)."""
    observe = call.capture.observe
    with contextlib.suppress(TimeoutError, UpstreamIdleTimeout, UpstreamStreamError):
        async with asyncio.timeout(limit):
            async for chunk in upstream.iter_chunks():
                now = time.perf_counter()
                for event in decoder.decode(chunk):
                    observe(event, now)


async def _send_more(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _end_with_error(send: Send, error) -> None:
    with contextlib.suppress(OSError):
        await send(
            {"type": "http.response.body", "body": sse_error_event(error), "more_body": False}
        )
