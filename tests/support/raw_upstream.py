"""An upstream a well-behaved fake cannot be: a raw TCP server on loopback that answers every
request with exactly the bytes a test gives it (or a callable that writes them over time)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

Writer = Callable[[asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_upstream(
    response: bytes | Writer, *, then_stall: bool = False
) -> AsyncIterator[tuple[int, list[bytes]]]:
    """Serve `response` to every request, then stall (keep the socket open) or close; yields
    the port and the request lines received (method, target, version)."""
    request_lines: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_lines.append(head.split(b"\r\n", 1)[0])
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    await reader.readexactly(int(line.split(b":")[1]))
            if callable(response):
                await response(writer)
            else:
                writer.write(response)
            await writer.drain()
            if then_stall:
                await asyncio.sleep(30)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], request_lines
    finally:
        server.close()


def raw_provider(port: int, name: str = "raw", path: str = "/v1") -> str:
    """A `providers:` entry (YAML) for the raw upstream, with short timeouts."""
    return (
        f'  {name}: {{base_url: "http://127.0.0.1:{port}{path}", '
        "timeouts: {connect: 2, read: 0.5, stream_idle: 0.5}}"
    )


def http_response(
    body: bytes, content_type: bytes = b"application/json", status: bytes = b"200 OK", **headers
) -> bytes:
    """A whole HTTP/1.1 response with a Content-Length."""
    extra = b"".join(
        f"{name.replace('_', '-')}: {value}\r\n".encode() for name, value in headers.items()
    )
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type + b"\r\n" + extra
        + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    )  # fmt: skip
