"""What the request edge costs per call, without sockets: `python bench/edge.py`.

The socket benchmark (`bench/overhead.py --servers uvicorn,edge,h11`) measures whole calls of
~300–1,000 µs, where a few µs of edge checks drown in the machine's noise. This one feeds the
same keep-alive requests straight into each HTTP protocol class (a fake transport, a trivial
app on uvloop) and times many requests per round, rounds alternated, so the difference
between protocol classes is the protocol's own CPU:

- `httptools`: uvicorn's stock protocol (what `airuns serve` ran before the edge);
- `edge`: `proxy.server.EdgeProtocol` (431 / 408 / body stalls), default `server_limits`;
- `h11`: uvicorn's h11 protocol with `h11_max_incomplete_event_size` (its only limit: a head
  over it is a 400, and it has no header or body timeouts either).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
import uvloop
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.server import EdgeProtocol, ServerConfig  # noqa: E402
from proxy.settings import ServerLimits  # noqa: E402

BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there, how are you?"}]}'
CHAT = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"Accept: application/json\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n"
    b"User-Agent: OpenAI/Python 1.99.0\r\nAuthorization: Bearer sk-test\r\n"
    b"Content-Type: application/json\r\nX-Run-Id: run-123\r\n"
    b"Content-Length: %d\r\n\r\n" % len(BODY)
) + BODY
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"


async def app(scope: dict, receive: Any, send: Any) -> None:
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


class Transport(asyncio.Transport):
    """Enough of a socket transport for uvicorn's protocols; counts what is written."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def make_config(name: str) -> uvicorn.Config:
    quiet = {"log_level": "warning", "access_log": False}
    if name == "edge":
        config: uvicorn.Config = ServerConfig(app, limits=ServerLimits(), **quiet)
    elif name == "h11":
        config = uvicorn.Config(app, http="h11", h11_max_incomplete_event_size=65536, **quiet)
    else:
        config = uvicorn.Config(app, http="httptools", **quiet)
    config.load()
    return config


PROTOCOLS = {"httptools": HttpToolsProtocol, "edge": EdgeProtocol, "h11": H11Protocol}


async def measure(name: str, request: bytes, requests: int) -> float:
    """CPU µs per request: `requests` keep-alive requests on one connection, one at a time."""
    loop = asyncio.get_running_loop()
    protocol = PROTOCOLS[name](make_config(name), ServerState(), {}, _loop=loop)
    transport = Transport()
    protocol.connection_made(transport)
    state = protocol.server_state
    started = time.process_time()
    for _ in range(requests):
        protocol.data_received(request)
        while state.tasks:
            await asyncio.sleep(0)
    elapsed = time.process_time() - started
    assert transport.written > 0 and not transport.closed, name
    protocol.connection_lost(None)
    return elapsed / requests * 1e6


async def run(args: argparse.Namespace) -> dict[tuple[str, str], list[float]]:
    """Rounds of one batch per protocol, back to back: each round's batches share the
    machine's load of that moment, so ratios are taken within a round (paired)."""
    results: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds + 1):  # round 0 warms up and is dropped
        for request_name, request in (("chat POST", CHAT), ("GET /healthz", HEALTHZ)):
            for name in args.protocols.split(","):
                per_request = await measure(name, request, args.requests)
                if round_:
                    results.setdefault((request_name, name), []).append(per_request)
    return results


def report(results: dict[tuple[str, str], list[float]], reference: str) -> str:
    """Per protocol: the median and the minimum µs per request, and the median of the
    per-round ratios to `reference` with their spread (quartiles)."""
    lines = [
        f"{'request':<14} {'protocol':<10} {'median µs':>10} {'min µs':>8}"
        f" {'ratio vs ' + reference:>19} {'(q1–q3)':>13}"
    ]
    for (request_name, name), values in results.items():
        base = results[(request_name, reference)]
        ratios = sorted(value / ref for value, ref in zip(values, base, strict=True))
        q1, q2, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        lines.append(
            f"{request_name:<14} {name:<10} {statistics.median(values):>10.2f}"
            f" {min(values):>8.2f} {statistics.median(ratios):>18.3f}x"
            f"   ({q1:.3f}–{q3:.3f})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocols", default="httptools,edge,h11")
    parser.add_argument("--requests", type=int, default=3000, help="per batch")
    parser.add_argument("--rounds", type=int, default=31)
    args = parser.parse_args(argv)
    results = uvloop.run(run(args))
    print(report(results, args.protocols.split(",")[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
