"""The proxy path: every `/v1/*` call, as a raw ASGI app.

validate headers and body → resolve the route → record `pending` → forward → relay the
response (whole, or event by event) → record the outcome. Recording never waits: the recorder
takes records without blocking, and the database is never touched here (the one exception is a
client-chosen `X-Task-Id`, checked for duplicates before anything is forwarded).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from typing import Any

from proxy.call import Call
from proxy.capture import CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, Capture
from proxy.errors import BadRequest, Conflict, ProxyError, UpstreamTimeout, UpstreamUnreachable
from proxy.exchange import (
    JSON_HEADERS,
    ClientGone,
    DisconnectWatcher,
    Receive,
    Send,
    read_body,
    send_error,
    send_response,
)
from proxy.headers import (
    TRACKING_HEADERS,
    forwarded_headers,
    parse_tracking,
    returned_headers,
)
from proxy.jsonfast import decode_json
from proxy.models_listing import list_models
from proxy.recording import CANCELLED, COMPLETED, ERROR, PENDING, STREAMING, TIMEOUT, Recorder
from proxy.relay import drain_stream, relay_stream
from proxy.routing import Router
from proxy.settings import Settings
from proxy.sse import SSEDecoder
from proxy.upstream import (
    UpstreamIdleTimeout,
    UpstreamPool,
    UpstreamResponse,
    UpstreamStreamError,
)

_JSON_ENDPOINTS = frozenset({CHAT, COMPLETIONS, RESPONSES, EMBEDDINGS})


def new_task_id() -> str:
    """`task_` + 12 hex digits of milliseconds + 20 random ones: unique, and time-ordered so
    the tasks' primary-key index grows at its end instead of on random pages."""
    return f"task_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


class ProxyHandler:
    def __init__(
        self,
        settings: Settings,
        pool: UpstreamPool,
        recorder: Recorder,
        *,
        log: Any,
        metrics: Any,
        instance_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.recorder = recorder
        self.router = Router(settings)
        self.log = log
        self.metrics = metrics
        self.instance_id = instance_id
        self.max_body = settings.server_limits.max_request_bytes
        self.capture_requests = settings.capture.request_bodies
        self.max_captured = settings.capture.max_body_bytes
        self.capture_responses = settings.capture.response_bodies
        self._drains: set[asyncio.Task[None]] = set()
        self._claimed: set[str] = set()  # client-chosen task ids of calls under way here

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        arrived = time.perf_counter()  # "request received": TTFT and latency count from here
        tracked: dict[bytes, bytes] = {}
        declared_length = None
        for name, value in scope["headers"]:
            if name in TRACKING_HEADERS:
                tracked[name] = value
            elif name == b"content-length":
                declared_length = value
        task_id = new_task_id()
        try:
            tracking = parse_tracking(tracked)
            task_id = tracking.task_id or task_id
            body = await read_body(receive, self.max_body, declared_length)
        except ProxyError as error:
            await send_error(send, error, [(b"x-task-id", task_id.encode())])
            return
        except ClientGone:
            return
        if scope["method"] == "GET" and scope["path"] == "/v1/models":
            await self._send_models(send, task_id, scope["headers"])
            return
        call = Call.begin(task_id, tracking, scope["path"], scope["method"], arrived)
        claimed = tracking.track and tracking.task_id is not None
        if claimed and task_id in self._claimed:
            await send_error(send, _duplicate(task_id), [(b"x-task-id", task_id.encode())])
            return
        if claimed:  # held until the call ends, so a concurrent duplicate is refused too
            self._claimed.add(task_id)
        try:
            await self._proxy(scope, receive, send, call, body)
        finally:
            if claimed:
                self._claimed.discard(task_id)

    async def _proxy(
        self, scope: dict, receive: Receive, send: Send, call: Call, body: bytes
    ) -> None:
        tracking, task_id, endpoint = call.tracking, call.task_id, call.endpoint
        ids = [(b"x-task-id", task_id.encode())]
        if tracking.run_id is not None and tracking.track:
            ids.append((b"x-run-id", tracking.run_id.encode()))
        try:
            request = self._parse_body(scope, endpoint, body)
            body = self._prepare(call, request, body, tracking.track)
            if tracking.track and tracking.task_id and await self._is_duplicate(task_id):
                raise _duplicate(task_id)
        except ProxyError as error:
            await send_error(send, error, ids)
            return
        call.instance_id = self.instance_id
        if tracking.track:
            self.recorder.submit(call.record(PENDING))
        await self._forward(scope, receive, send, call, body, ids)

    def _parse_body(self, scope: dict, endpoint: str, body: bytes) -> Any:
        if not body or scope["method"] in ("GET", "HEAD"):
            return None
        if endpoint not in _JSON_ENDPOINTS and not _declares_json(scope["headers"]):
            return None
        try:
            return decode_json(body)
        except (ValueError, RecursionError) as exc:
            raise BadRequest(
                f"request body is not valid JSON: {exc}", code="invalid_json"
            ) from None

    def _prepare(self, call: Call, request: Any, body: bytes, track: bool) -> bytes:
        """Route the call; return the body to send upstream (rewritten only when needed)."""
        model = None
        if isinstance(request, dict):
            model = request.get("model")
            if model is not None and not isinstance(model, str):
                raise BadRequest("'model' must be a string", param="model")
        route = self.router.resolve(model)
        call.provider, call.model, call.upstream_model = route.provider, model, route.upstream_model
        if not isinstance(request, dict):
            return body
        call.stream = request.get("stream") is True and call.endpoint in _JSON_ENDPOINTS
        if track and self.capture_requests:
            call.request = (
                request if len(body) <= self.max_captured else _truncated(request, len(body))
            )
        outgoing = request
        if route.rewrites(model):
            outgoing = {**outgoing, "model": route.upstream_model}
        if track and call.stream and call.endpoint in (CHAT, COMPLETIONS):
            options = request.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage")):
                call.usage_injected = True
                extra = options if isinstance(options, dict) else {}
                outgoing = {**outgoing, "stream_options": {**extra, "include_usage": True}}
        if outgoing is request:
            return body
        return json.dumps(outgoing, ensure_ascii=False, separators=(",", ":")).encode()

    async def _is_duplicate(self, task_id: str) -> bool:
        if self.recorder.is_task_active(task_id):
            return True
        exists = getattr(self.recorder, "task_exists", None)
        return bool(exists and await exists(task_id))

    async def _forward(
        self, scope: dict, receive: Receive, send: Send, call: Call, body: bytes, ids: list
    ) -> None:
        provider = self.pool.providers[call.provider]
        headers = forwarded_headers(scope["headers"], provider.api_key)
        # strip "/v1" (provider base URLs end in it); raw, so %2F and friends stay encoded
        path = (scope.get("raw_path") or scope["path"].encode())[3:].decode("latin-1")
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode("latin-1")
        call.capture = Capture(
            call.endpoint, started=call.started, usage_injected=call.usage_injected
        )
        watcher = DisconnectWatcher(receive)
        watcher.start()
        upstream: UpstreamResponse | None = None
        decoder = SSEDecoder()
        status = ERROR
        try:
            sent_at = time.perf_counter()
            upstream = await self.pool.send(
                call.provider, scope["method"], path, headers, body or None, stream=call.stream
            )
            call.headers_at = time.perf_counter()
            call.upstream_wait += call.headers_at - sent_at
            call.http_status = upstream.status
            response_headers = returned_headers(upstream.headers) + ids
            if upstream.is_event_stream:
                if call.tracking.track:
                    self.recorder.submit(call.record(STREAMING))
                status = await relay_stream(call, upstream, send, response_headers, decoder)
            else:
                status = await self._relay_whole(call, upstream, send, response_headers)
        except ProxyError as error:
            call.http_status = error.status
            call.error_message = error.message
            status = TIMEOUT if isinstance(error, UpstreamTimeout) else ERROR
            await _send_error_quietly(send, error, ids)
        except asyncio.CancelledError:
            if not watcher.disconnected:
                raise
            status = CANCELLED
            call.http_status = 499 if call.http_status is None else call.http_status
        finally:
            watcher.stop()
            if status == CANCELLED:
                call.error_message = "client disconnected"
            draining = status == CANCELLED and self._start_drain(call, upstream, decoder)
            if not draining:  # else the drain task closes the upstream and finishes the call
                if upstream is not None:  # back to the pool only when its body was read whole
                    upstream.release() if call.upstream_drained else upstream.close()
                self._finish(call, status)

    def _start_drain(
        self, call: Call, upstream: UpstreamResponse | None, decoder: SSEDecoder
    ) -> bool:
        """With `on_client_disconnect: drain`, read the rest of a stream in the background
        (bounded by drain_timeout and max_drains) so the task gets the provider's usage."""
        capture = self.settings.capture
        if (
            capture.on_client_disconnect != "drain"
            or not call.tracking.track
            or upstream is None
            or not upstream.is_event_stream
            or len(self._drains) >= capture.max_drains
        ):
            return False
        task = asyncio.get_running_loop().create_task(self._drain(call, upstream, decoder))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)
        return True

    async def _drain(self, call: Call, upstream: UpstreamResponse, decoder: SSEDecoder) -> None:
        try:
            await drain_stream(call, upstream, decoder, self.settings.capture.drain_timeout)
        finally:
            upstream.close()
            self._finish(call, CANCELLED)

    async def wait_for_drains(self) -> None:
        """Shutdown: let background drains end (each is bounded by drain_timeout)."""
        if self._drains:
            await asyncio.gather(*self._drains, return_exceptions=True)

    async def _relay_whole(
        self, call: Call, upstream: UpstreamResponse, send: Send, headers: list
    ) -> str:
        t = time.perf_counter()
        try:
            payload = await upstream.read()
        except UpstreamStreamError as exc:
            call.error_message = f"upstream broke off the response: {exc}"
            raise UpstreamUnreachable(call.error_message) from None
        except UpstreamIdleTimeout:
            call.error_message = "upstream stalled while sending its response"
            raise UpstreamTimeout(call.error_message) from None
        call.upstream_drained = True
        call.upstream_wait += time.perf_counter() - t
        headers.append((b"content-length", str(len(payload)).encode()))
        await send_response(send, upstream.status, headers, payload)
        if call.tracking.track:
            call.capture.observe_body(payload)
            if upstream.status >= 400:
                call.error_message = _error_message(payload)
        return COMPLETED if upstream.status < 400 else ERROR

    def _finish(self, call: Call, status: str) -> None:
        now = time.perf_counter()
        record = call.final_record(
            status, now, keep_response=self.capture_responses, max_text=self.max_captured
        )
        if call.tracking.track:
            self.recorder.submit(record)
        endpoint = call.endpoint if call.endpoint in _JSON_ENDPOINTS else "other"
        self.metrics.observe_call(
            call.provider, endpoint, status, (record.overhead_ms or 0) / 1000, record.ttft_ms
        )
        self.log.info(
            "call",
            task_id=call.task_id,
            run_id=call.tracking.run_id,
            provider=call.provider,
            model=call.model,
            status=status,
            http_status=call.http_status,
            upstream_status=call.http_status if call.headers_at else None,
            ttft_ms=_round(record.ttft_ms),
            total_ms=_round(record.total_time_ms),
            tracked=call.tracking.track,
        )

    async def _send_models(self, send: Send, task_id: str, headers: list) -> None:
        authorization = next(
            (v.decode("latin-1") for k, v in headers if k == b"authorization"), None
        )
        payload = await list_models(self.settings, self.pool, authorization)
        body = json.dumps(payload).encode()
        await send_response(send, 200, [*JSON_HEADERS, (b"x-task-id", task_id.encode())], body)


async def _send_error_quietly(send: Send, error: ProxyError, ids: list) -> None:
    # The client is gone or the response already started; the record says what happened.
    with contextlib.suppress(OSError, RuntimeError):
        await send_error(send, error, ids)


def _duplicate(task_id: str) -> Conflict:
    return Conflict(
        f"task id {task_id!r} already exists", param="X-Task-Id", code="duplicate_task_id"
    )


def _declares_json(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return value.split(b";")[0].strip().lower() == b"application/json"
    return False


def _truncated(request: dict, size: int) -> dict:
    """A stored stand-in for a request body over capture.max_body_bytes."""
    kept = {k: v for k, v in request.items() if k not in ("messages", "input", "prompt")}
    return {**kept, "_truncated": True, "_bytes": size}


def _error_message(payload: bytes) -> str | None:
    try:
        error = json.loads(payload).get("error")
    except (ValueError, AttributeError):
        return payload[:200].decode("utf-8", "replace") or None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error) if error else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
