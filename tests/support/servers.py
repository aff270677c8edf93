"""Serving under test: an ASGI app under uvicorn in this event loop, or a real process."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn

from proxy.server import ServerConfig
from proxy.settings import ServerLimits


@asynccontextmanager
async def serve_asgi(app: Any) -> AsyncIterator[str]:
    """`app` (an `AirunsApp`) on a free loopback port, in this event loop, under the server
    `airuns serve` runs: uvicorn with the edge protocol and the app's `server_limits`."""
    async with serve_limited(app, app.state.settings.server_limits) as url:
        yield url


@asynccontextmanager
async def serve_limited(app: Any, limits: ServerLimits) -> AsyncIterator[str]:
    """Any ASGI `app` under the production server with `limits` (edge tests use raw apps)."""
    config = ServerConfig(
        app,
        limits=limits,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        loop="none",
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Poll `url` until it answers below 500; fail early if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up within {timeout}s")
