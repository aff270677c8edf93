"""Streams read on after their client left (`capture.on_client_disconnect: drain`), so the
task records the usage the provider billed. Bounded: each by `drain_timeout`, at most
`max_drains` at once (beyond that, the stream is closed as with `cancel`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from proxy.capture import Capture
from proxy.relay import drain_stream
from proxy.sse import SSEDecoder
from proxy.upstream import UpstreamResponse


class Drains:
    def __init__(self, enabled: bool, timeout: float, limit: int) -> None:
        self._enabled = enabled
        self._timeout = timeout
        self._limit = limit
        self._tasks: set[asyncio.Task[None]] = set()

    def start(
        self,
        capture: Capture,
        upstream: UpstreamResponse,
        decoder: SSEDecoder,
        finish: Callable[[], None],
    ) -> bool:
        """Drain `upstream` in the background, then close it and `finish` the call; False (the
        caller closes and finishes) when draining is off or the limit is reached."""
        if not self._enabled or len(self._tasks) >= self._limit:
            return False
        drain = self._drain(capture, upstream, decoder, finish)
        task = asyncio.get_running_loop().create_task(drain)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _drain(
        self,
        capture: Capture,
        upstream: UpstreamResponse,
        decoder: SSEDecoder,
        finish: Callable[[], None],
    ) -> None:
        try:
            await drain_stream(capture, upstream, decoder, self._timeout)
        finally:
            upstream.close()
            finish()

    async def wait(self) -> None:
        """Shutdown: let background drains end (each is bounded by drain_timeout)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
