"""The batch writer on a thread of its own, with its own event loop and database engine.

Why: under load the request loop turns slowly (tens of ms per iteration at 64 busy
connections), and a writer sharing it waits one whole turn for every database round trip, so
it falls behind on latency, not CPU (docs/performance.md). On its own loop its round trips are
answered as soon as the database is done, and the request loop is interrupted only at the
interpreter's GIL switch points.

`submit()` stays non-blocking on the request loop: a `deque.append`, plus at most one
thread-safe wake-up per writer-loop turn (the flag below keeps a burst of submits to one).
Everything else of the writer (its batches, spool, heartbeats, recovery) runs on the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.inflight import InFlightTasks
from persistence.record import CallRecord
from persistence.writer import BatchWriter


class ThreadedRecorder:
    def __init__(
        self, writer: BatchWriter, engine: AsyncEngine, *, name: str = "airuns-writer"
    ) -> None:
        """`engine` is the writer's own: its connections belong to the writer's loop."""
        self.writer = writer
        self._engine = engine
        self._name = name
        self._inbox: deque[CallRecord] = deque()
        self._waking = False  # a transfer is scheduled on the writer's loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def instance_id(self) -> str:
        return self.writer.instance_id

    @property
    def inflight(self) -> InFlightTasks:
        return self.writer.inflight

    @property
    def backlog(self) -> int:
        return len(self._inbox) + self.writer.backlog

    def status(self) -> dict[str, int]:
        report = self.writer.status()
        report["backlog"] += len(self._inbox)
        return report

    def submit(self, record: CallRecord) -> None:
        self._inbox.append(record)
        if not self._waking and self._loop is not None:
            self._waking = True
            try:
                self._loop.call_soon_threadsafe(self._transfer)
            except RuntimeError:  # the writer's loop is closed: stop() drops late records
                self._waking = False

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=self._name, daemon=True)
        self._thread.start()
        await self._on_writer(self.writer.start())
        self._loop.call_soon_threadsafe(self._transfer)  # records submitted before start

    async def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        await self._on_writer(self._stop_writer())
        loop, thread = self._loop, self._thread
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        loop.close()
        self._loop = self._thread = None

    async def _stop_writer(self) -> None:
        self._transfer()
        try:
            await self.writer.stop()
        finally:
            await self._engine.dispose()

    def _transfer(self) -> None:
        """On the writer's loop: hand what was submitted to the writer, oldest first."""
        self._waking = False
        inbox, submit = self._inbox, self.writer.submit
        while inbox:
            submit(inbox.popleft())

    async def _on_writer(self, work: Coroutine[Any, Any, Any]) -> Any:
        assert self._loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))
