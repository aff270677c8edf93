"""Operational endpoints: `/healthz`, `/readyz`, `/metrics`. No key needed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy.settings import Settings


@dataclass
class ServiceState:
    settings: Settings
    recorder: Any
    metrics: Any
    log: Any
    engine: Any = None


def _state(request: Request) -> ServiceState:
    return request.app.state.airuns


@get("/healthz", sync_to_thread=False)
def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz")
async def readyz(request: Request) -> Response:
    """The database answers; includes the write backlog (records not yet stored)."""
    recorder = _state(request).recorder
    check = getattr(recorder, "readiness", None)
    report = await check() if check is not None else {"database": "ok", "backlog": 0}
    status = 200 if report.get("database") == "ok" else 503
    return Response(
        {"status": "ok" if status == 200 else "unavailable", **report}, status_code=status
    )


@get("/metrics", sync_to_thread=False)
def metrics(request: Request) -> Response:
    body = generate_latest(_state(request).metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def service_routes() -> list:
    return [healthz, readyz, metrics]
