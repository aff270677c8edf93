"""Operational endpoints: `/healthz`, `/readyz`, `/metrics`. No key needed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.record import Recorder
from proxy.observability import Logger, Metrics
from proxy.settings import Settings

_READY_TIMEOUT = 2.0


@dataclass
class ServiceState:
    """What the litestar side of the app (admin API, health, metrics) is given."""

    settings: Settings
    recorder: Recorder
    metrics: Metrics
    log: Logger
    engine: AsyncEngine


def _state(request: Request) -> ServiceState:
    return request.app.state.airuns


@get("/healthz", sync_to_thread=False)
def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz")
async def readyz(request: Request) -> Response:
    """The database answers; includes the write backlog (records not yet stored). Proxying
    goes on while this says 503: it is a signal for operators, not a gate on calls."""
    state = _state(request)
    database = "ok"
    try:
        async with asyncio.timeout(_READY_TIMEOUT), state.engine.connect() as conn:
            await conn.execute(text("select 1"))
    except Exception as exc:  # any failure to answer means "not ready"; the reason is shown
        database = f"unreachable ({type(exc).__name__})"
    report = {"database": database, **state.recorder.status()}
    status = 200 if database == "ok" else 503
    report["status"] = "ok" if status == 200 else "unavailable"
    return Response(report, status_code=status)


@get("/metrics", sync_to_thread=False)
def metrics(request: Request) -> Response:
    body = generate_latest(_state(request).metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def service_routes() -> list:
    return [healthz, readyz, metrics]
