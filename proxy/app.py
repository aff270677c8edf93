"""The application factory: wiring happens here and nowhere else.

`create_app(settings)` builds the litestar app (admin API, health, metrics, OpenAPI schema)
and puts the raw-ASGI proxy handler in front of it for `/v1/*`. The lifespan opens one pooled
upstream session per provider and starts/stops the recorder. No import-time side effects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import IO

from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.engine import create_engine
from persistence.instances import new_instance_id
from persistence.migrate import migrate_when_reachable
from persistence.record import Recorder
from persistence.settings import WriterSettings
from persistence.threaded import ThreadedRecorder
from persistence.writer import BatchWriter
from pricing.table import PriceTable
from proxy.admin.errors import exception_handlers
from proxy.admin.router import admin_router, openapi_config
from proxy.handler import ProxyHandler
from proxy.memory import trim_memory_periodically
from proxy.observability import Metrics, configure_logging
from proxy.service_routes import ServiceState, service_routes
from proxy.settings import Settings
from proxy.task_ids import TaskIds
from proxy.upstream import UpstreamPool


class AirunsApp:
    """ASGI entry: `/v1/*` goes straight to the proxy handler (the hot path skips the
    framework's routing and request objects); everything else, lifespan included, to litestar."""

    def __init__(self, web: Litestar, proxy: ProxyHandler, state: ServiceState) -> None:
        self.web = web
        self.proxy = proxy
        self.state = state

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await self.proxy(scope, receive, send)
        else:
            await self.web(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    recorder: Recorder | None = None,
    engine: AsyncEngine | None = None,
    log_stream: IO[str] | None = None,
) -> AirunsApp:
    """Build the app. By default the recorder is the batch writer on `database.url`, on a
    thread of its own; tests pass an in-memory recorder and/or an engine of their own (for the
    admin API, readiness and the task-id lookup)."""
    log = configure_logging(settings.logging.level, log_stream, settings.logging.format)
    metrics = Metrics()
    pool = UpstreamPool.from_settings(settings)
    owns_engine = engine is None
    if engine is None:
        engine = create_engine(settings.database.url)
    if recorder is None:
        prices = PriceTable(settings.pricing.overrides, price_as=settings.price_as())
        writer_engine = create_engine(settings.database.url)  # used on the writer's thread only
        writer = BatchWriter(
            writer_engine, prices, writer_settings(settings), instance_id=new_instance_id()
        )
        recorder = ThreadedRecorder(writer, writer_engine)
    state = ServiceState(settings, recorder, metrics, log, engine)
    metrics.watch_recording(recorder.status)
    task_ids = TaskIds(recorder.inflight, engine, log)
    proxy = ProxyHandler(settings, pool, recorder, task_ids, log=log, metrics=metrics)

    background: list[asyncio.Task[None]] = []

    async def start() -> None:
        await pool.open()
        background.append(asyncio.create_task(trim_memory_periodically(lambda: proxy.calls_ended)))
        if owns_engine:  # a database that was down when `serve` began is migrated once it answers
            background.append(asyncio.create_task(migrate_when_reachable(settings.database.url)))
        await recorder.start()

    async def stop() -> None:
        # In-flight calls are done (the server waited for them); drains may still be reading.
        await proxy.wait_for_drains()
        await recorder.stop()
        for task in background:
            task.cancel()
        await pool.close()
        if owns_engine:
            await engine.dispose()

    web = Litestar(
        route_handlers=[*service_routes(), admin_router(settings)],
        exception_handlers=exception_handlers(),
        openapi_config=openapi_config(),
        on_startup=[start],
        on_shutdown=[stop],
        state=None,
        dependencies={},
        debug=False,
        signature_namespace={"ServiceState": ServiceState},
    )
    web.state.airuns = state
    return AirunsApp(web, proxy, state)


def writer_settings(settings: Settings) -> WriterSettings:
    """The writer's settings: the `recording:` keys, and a third of the shutdown grace period to
    store what is queued (the server first gives calls in flight their grace)."""
    recording = settings.recording
    return WriterSettings(
        queue_size=recording.queue_size,
        batch_size=recording.batch_size,
        flush_interval=recording.flush_interval,
        spool_dir=recording.spool_dir,
        spool_after=recording.spool_after,
        heartbeat_interval=recording.heartbeat_interval,
        stop_timeout=max(1.0, settings.shutdown.grace_period / 3),
    )
