"""An ASGI app whose startup fails: what a server worker meets when its app cannot start."""

from __future__ import annotations


def create() -> object:
    async def app(scope: dict, receive, send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "cannot start"})

    return app
