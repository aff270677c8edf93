"""The HTTP server airuns runs under: uvicorn (httptools) with an edge that enforces
`server_limits` on what a client sends before the app sees it.

uvicorn's httptools protocol has no header-size limit, and times nothing between a connection
opening and its first response: a 96 MB header block was parsed whole, a header line every 2 s
kept a connection forever, a body that stops mid-way was waited on forever. `EdgeProtocol`
adds three checks, for a few µs per request (measured in docs/server-choice.md):

- a request line + header block over `max_header_bytes` gets a 431, and the parser is never
  fed past the limit (httptools buffers a header value until it is complete, so counting in
  `on_header` would come too late);
- headers must be complete within `header_timeout` of the connection opening or of the
  request's first byte, else 408 (a connection that sent nothing is just closed);
- a body may not stall for more than `body_timeout` between reads while we are reading it,
  else 408 (when uvicorn's flow control has paused reading because the app has not taken the
  body yet, or the client waits for our `100 Continue`, the wait is ours and the clock stops).

`max_connections` is uvicorn's own `limit_concurrency` (503). The protocol must be importable
at module level and get its limits from the `uvicorn.Config` (`ServerConfig`): `--workers`
pickles the config into each worker process.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from proxy.settings import ServerLimits

# What a refused client may still send, read and dropped, so that closing does not reset the
# connection (an RST can discard the answer before the client reads it).
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024

_HEAD, _BODY, _CLOSING = "head", "body", "closing"


class ServerConfig(uvicorn.Config):
    """uvicorn's config serving with `EdgeProtocol` under `limits`. The whole object is
    pickled into `--workers` processes, so the limits travel with it."""

    def __init__(self, app: Any, *, limits: ServerLimits, **options: Any) -> None:
        # uvicorn counts the asking connection itself (`connections >= limit` → 503), so
        # serving N connections takes a limit of N + 1.
        concurrency = limits.max_connections + 1 if limits.max_connections else None
        super().__init__(app, http=EdgeProtocol, limit_concurrency=concurrency, **options)
        self.server_limits = limits


def run_server(config: ServerConfig, on_started: Callable[[], None] = lambda: None) -> None:
    """What `uvicorn.run` does with a config it built itself: one server, or a supervisor of
    `config.workers` processes sharing one socket. `on_started` runs once the socket listens
    (and, with one process, the app has started), so the start line never precedes the fact."""
    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess  # with the reloaders: only when needed

        class AnnouncingSupervisor(Multiprocess):
            """Announces once every worker has started its app; a worker that could not
            start stops the supervisor, and the process exits as uvicorn's single server
            does (STARTUP_FAILURE), not 0."""

            started = False

            def init_processes(self) -> None:
                super().init_processes()
                timeout = max(60, self.config.timeout_worker_healthcheck)  # a slow machine
                ready = [p.wait_until_ready(timeout, self.should_exit) for p in self.processes]
                if all(ready):
                    self.started = True
                    on_started()

        supervisor = AnnouncingSupervisor(config, sockets=[config.bind_socket()])
        supervisor.run()
        if not supervisor.started:
            sys.exit(STARTUP_FAILURE)
        return
    server = _AnnouncingServer(config, on_started)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class _AnnouncingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()


def check_can_listen(host: str, port: int) -> None:
    """Bind every address `host` resolves to, as the server will, and let go: raises the
    `OSError` (`socket.gaierror` for a name that does not resolve) the server would meet.
    SO_REUSEADDR like uvicorn's, so a port left in TIME_WAIT is not taken for a busy one."""
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio binds it: v6 only, beside any v4 bind
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind(address)


class Deadline:
    """When the current wait on the client ends, on one lazily re-armed timer: moving the
    deadline later (every body read) is a clock read and an attribute write, not a new timer."""

    __slots__ = ("_loop", "_on_expiry", "_due", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_expiry: Callable[[], None]) -> None:
        self._loop = loop
        self._on_expiry = on_expiry
        self._due: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    @property
    def running(self) -> bool:
        return self._due is not None

    def start(self, seconds: float) -> None:
        self._due = due = self._loop.time() + seconds
        if self._timer is None or due < self._timer_at:
            self._arm(due)

    def stop(self) -> None:
        self._due = None

    def cancel(self) -> None:
        self._due = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self._loop.call_at(due, self._fire), due

    def _fire(self) -> None:
        self._timer = None
        if self._due is None:
            return
        if self._loop.time() < self._due:  # moved later since this timer was set
            self._arm(self._due)
            return
        self._due = None
        self._on_expiry()


class _ObservedFlowControl(FlowControl):
    """uvicorn's flow control, telling the edge when reading resumes (the body clock restarts)."""

    def __init__(self, transport: asyncio.Transport, on_resume: Callable[[], None]) -> None:
        super().__init__(transport)
        self._on_resume = on_resume

    def resume_reading(self) -> None:
        if self.read_paused:
            super().resume_reading()
            self._on_resume()


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header-size and header/body-time limits."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        limits = config.server_limits if isinstance(config, ServerConfig) else ServerLimits()
        self._max_head = limits.max_header_bytes
        self._header_timeout = limits.header_timeout
        self._body_timeout = limits.body_timeout
        self._phase = _HEAD
        self._head_bytes = 0  # of the request being read, while in the head phase
        self._deadline = Deadline(self.loop, self._on_deadline)
        self._lingered = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = _ObservedFlowControl(transport, self._on_reading_resumed)
        self._deadline.start(self._header_timeout)  # also a connection that never sends a byte

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline.cancel()
        self._phase = _CLOSING
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._deadline.cancel()  # the connection belongs to the websocket protocol from here
        self._phase = _CLOSING
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        if phase is _HEAD:
            if not self._deadline.running:  # a request's first bytes on a kept-alive connection
                self._deadline.start(self._header_timeout)
            self._head_bytes += len(data)
            if self._head_bytes > self._max_head:
                self._receive_past_limit(data)
                return
        elif phase is _BODY:
            self._deadline.start(self._body_timeout)
        else:
            self._linger(data)
            return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        self._deadline.start(self._body_timeout)
        super().on_headers_complete()
        if self.expect_100_continue:  # the client waits for our 100 before sending the body
            self.flow.pause_reading()

    def on_message_complete(self) -> None:
        self._phase = _HEAD
        self._head_bytes = 0
        self._deadline.stop()
        super().on_message_complete()

    def _receive_past_limit(self, data: bytes) -> None:
        """Feed the parser only what fits the limit: a head that is not complete there gets a
        431; one that is goes on, and a next head starting in the same read is counted anew.
        (A loop, not recursion: one read may hold many small pipelined requests. The bytes of
        a next head that starts inside what fitted are not counted: at most one read more.)"""
        while self._head_bytes > self._max_head:
            fits = len(data) - (self._head_bytes - self._max_head)
            super().data_received(data[:fits])
            if self._phase is _CLOSING or self.transport.is_closing():  # e.g. the parser's 400
                return
            if self._phase is _HEAD and self._head_bytes > self._max_head:
                message = f"request line and headers exceed {self._max_head} bytes"
                self._refuse(431, "request_header_fields_too_large", message)
                return
            data = data[fits:]
            if self._phase is not _HEAD or not data:
                break
            self._deadline.start(self._header_timeout)  # the next request's head begins
            self._head_bytes = len(data)
        if data:
            super().data_received(data)

    def _on_reading_resumed(self) -> None:
        if self._phase is _BODY:
            self._deadline.start(self._body_timeout)

    def _on_deadline(self) -> None:
        if self._phase is _HEAD:
            if self._head_bytes == 0:  # no request began: there is nothing to answer
                self.transport.close()
                return
            message = f"request headers not received within {self._header_timeout:g} s"
        elif self._phase is _BODY:
            if self.flow.read_paused:  # the app has not taken the body yet: not the client's stall
                return
            message = f"request body stalled for more than {self._body_timeout:g} s"
        else:
            self.transport.close()  # the linger is over
            return
        self._refuse(408, "request_timeout", message)

    def _refuse(self, status: int, code: str, message: str) -> None:
        """End the app's view of the request (its `receive()` says `http.disconnect`, its
        `send()` writes nothing), answer `status` if no other response has begun, close."""
        answer = self._can_answer()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        if not answer:
            self.transport.close()
            return
        self.transport.write(_error_response(status, code, message, self.server_state))
        self._close_lingering()

    def _can_answer(self) -> bool:
        if self._phase is _HEAD:  # the previous response (if any) must be complete
            return self.cycle is None or self.cycle.response_complete
        return not self.cycle.response_started

    def _close_lingering(self) -> None:
        self._phase = _CLOSING
        self._lingered = 0
        try:
            self.transport.write_eof()
        except (NotImplementedError, RuntimeError, OSError):  # TLS cannot half-close
            self.transport.close()
            return
        self._deadline.start(LINGER_SECONDS)

    def _linger(self, data: bytes) -> None:
        self._lingered += len(data)
        if self._lingered > LINGER_BYTES:
            self.transport.close()


def _error_response(status: int, code: str, message: str, server_state: Any) -> bytes:
    """A complete `connection: close` response with an OpenAI-shaped error body."""
    error = {"message": message, "type": "invalid_request_error", "code": code, "param": None}
    body = json.dumps({"error": error}).encode()
    head = [STATUS_LINE[status]]
    for name, value in server_state.default_headers:
        head += [name, b": ", value, b"\r\n"]
    head.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body))
    head.append(b"connection: close\r\n\r\n")
    return b"".join(head) + body
