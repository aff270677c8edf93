"""Raw ASGI I/O for the proxy path: read a bounded body, send whole responses and errors.

The proxy path talks ASGI directly (not through the framework's request/response objects):
it is the hot path, and it needs byte-level control of bodies and streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from proxy.errors import PayloadTooLarge, ProxyError

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]


class ClientGone(Exception):
    """The client disconnected before its request was answered."""


async def read_body(receive: Receive, limit: int, declared_length: bytes | None) -> bytes:
    """Read the request body; refuse with 413 as soon as it is known to exceed `limit`
    (from Content-Length before reading anything, else while reading)."""
    if declared_length is not None:
        try:
            if int(declared_length) > limit:
                raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        except ValueError:
            pass
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone()
    body = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def send_response(send: Send, status: int, headers: Headers, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(send: Send, error: ProxyError, extra_headers: Headers = ()) -> None:
    body = error.body()
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode()), *error.headers]
    headers += extra_headers
    await send_response(send, error.status, headers, body)


def sse_error_event(error: ProxyError) -> bytes:
    """How an error reaches a client whose stream has already started."""
    return b"event: error\ndata: " + error.body() + b"\n\n"


class DisconnectWatcher:
    """Cancels the call's task when the client disconnects, so a stalled upstream wait ends
    promptly and the upstream request is closed (SPEC: a client that leaves ends the call)."""

    __slots__ = ("_receive", "_task", "_watcher", "disconnected")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task = asyncio.current_task()
        self._watcher: asyncio.Task[None] | None = None
        self.disconnected = False

    def start(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                if self._task is not None:
                    self._task.cancel()
                return

    def client_gone(self) -> bool:
        """Whether a cancellation of the call was the client leaving."""
        return self.disconnected

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
