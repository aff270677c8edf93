"""The floor: a bare raw-ASGI passthrough over one aiohttp session, nothing parsed or recorded.

Served by uvicorn (uvloop + httptools) like airuns, it forwards the body and relays response
bytes as they arrive. Its CPU per request is what any Python proxy on this server and client
pays on this machine; airuns' figures are read against it. Upstream: $BENCH_UPSTREAM.
"""

from __future__ import annotations

import os

import aiohttp

_HOP = {b"host", b"content-length", b"connection", b"accept-encoding"}
_DROP = {"content-length", "transfer-encoding", "connection", "date", "server"}


class Passthrough:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k not in _HOP}
        url = self.upstream + scope["path"][3:]
        async with self.session.request(scope["method"], url, data=body, headers=headers) as up:
            out = [(k.lower().encode(), v.encode()) for k, v in up.headers.items()]
            out = [(k, v) for k, v in out if k.decode() not in _DROP]
            await send({"type": "http.response.start", "status": up.status, "headers": out})
            async for chunk in up.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=0)
                self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app() -> Passthrough:
    return Passthrough(os.environ["BENCH_UPSTREAM"])
