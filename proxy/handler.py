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
from proxy.errors import BadRequest, Conflict, ProxyError
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
    collect_tracking,
    forwarded_headers,
    parse_tracking,
    returned_headers,
)
from proxy.jsonfast import decode_json
from proxy.models_listing import list_models
from proxy.outcome import Outcome, client_left, refused
from proxy.paths import ProxyPath, normalize_path
from proxy.recording import CANCELLED, ERROR, PENDING, STREAMING, Recorder
from proxy.redaction import Redactor, bearer_token
from proxy.relay import drain_stream, relay_stream, relay_whole
from proxy.routing import Router
from proxy.settings import Settings
from proxy.sse import SSEDecoder
from proxy.upstream import UpstreamPool, UpstreamResponse

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
        self.max_event = settings.server_limits.max_event_bytes
        self.capture_requests = settings.capture.request_bodies
        self.max_captured = settings.capture.max_body_bytes
        self.capture_responses = settings.capture.response_bodies
        self.redactor = Redactor(p.api_key for p in settings.providers.values())
        self._drains: set[asyncio.Task[None]] = set()
        self._claimed: set[str] = set()  # client-chosen task ids of calls under way here
        self.calls_ended = 0

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        arrived = time.perf_counter()  # "request received": TTFT and latency count from here
        headers = scope["headers"]
        task_id = new_task_id()
        try:
            tracking = parse_tracking(collect_tracking(headers))
            task_id = tracking.task_id or task_id
            path = normalize_path(
                scope.get("raw_path") or scope["path"].encode(), scope.get("query_string", b"")
            )
            body = await read_body(receive, self.max_body, _header(headers, b"content-length"))
        except ProxyError as error:
            await send_error(send, error, [(b"x-task-id", task_id.encode())])
            return
        except ClientGone:
            return
        if scope["method"] == "GET" and path.endpoint == "/v1/models":
            await self._send_models(send, task_id, headers)
            return
        call = Call.begin(task_id, tracking, path.endpoint, scope["method"], arrived)
        call.credential = bearer_token(_header(headers, b"authorization"))
        claimed = tracking.track and tracking.task_id is not None
        if claimed and task_id in self._claimed:
            await send_error(send, _duplicate(task_id), [(b"x-task-id", task_id.encode())])
            return
        if claimed:  # held until the call ends, so a concurrent duplicate is refused too
            self._claimed.add(task_id)
        try:
            await self._proxy(scope, receive, send, call, path, body)
        finally:
            if claimed:
                self._claimed.discard(task_id)

    async def _proxy(
        self, scope: dict, receive: Receive, send: Send, call: Call, path: ProxyPath, body: bytes
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
        await self._forward(scope, receive, send, call, path, body, ids)

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
        if call.endpoint in _JSON_ENDPOINTS:
            stream = request.get("stream")
            if stream is not None and not isinstance(stream, bool):
                raise BadRequest("'stream' must be a boolean", param="stream")
            call.stream = stream is True
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
        self,
        scope: dict,
        receive: Receive,
        send: Send,
        call: Call,
        path: ProxyPath,
        body: bytes,
        ids: list,
    ) -> None:
        provider = self.pool.providers[call.provider]
        headers = forwarded_headers(scope["headers"], provider.api_key)
        track = call.tracking.track
        call.capture = Capture(
            call.endpoint,
            started=call.started,
            usage_injected=call.usage_injected,
            max_text=self.max_captured if track else 0,
        )
        watcher = DisconnectWatcher(receive)
        watcher.start()
        upstream: UpstreamResponse | None = None
        decoder = SSEDecoder(self.max_event)
        outcome = Outcome(ERROR, None, "airuns failed while relaying the call")
        try:
            sent_at = time.perf_counter()
            upstream = await self.pool.send(
                call.provider, scope["method"], path.upstream, headers, body or None,
                stream=call.stream,
            )  # fmt: skip
            call.headers_at = time.perf_counter()
            call.upstream_wait += call.headers_at - sent_at
            response_headers = returned_headers(upstream.headers) + ids
            if upstream.is_event_stream:
                if track:
                    self.recorder.submit(call.record(STREAMING, upstream.status))
                outcome = await relay_stream(call, upstream, send, response_headers, decoder)
            else:
                keep = self.max_captured if track else 0
                outcome = await relay_whole(call, upstream, send, response_headers, keep)
        except ProxyError as error:
            outcome = refused(error)
            await _send_error_quietly(send, error, ids)
        except asyncio.CancelledError:
            if not watcher.disconnected:
                raise
            outcome = client_left(call.capture, call.http_status, call.terminal_relayed)
        finally:
            watcher.stop()
            draining = outcome.status == CANCELLED and self._start_drain(
                call, upstream, decoder, outcome
            )
            if not draining:  # else the drain task closes the upstream and finishes the call
                if upstream is not None:  # back to the pool only when its body was read whole
                    upstream.release() if call.upstream_drained else upstream.close()
                self._finish(call, outcome)

    def _start_drain(
        self,
        call: Call,
        upstream: UpstreamResponse | None,
        decoder: SSEDecoder,
        outcome: Outcome,
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
        drain = self._drain(call, upstream, decoder, outcome)
        task = asyncio.get_running_loop().create_task(drain)
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)
        return True

    async def _drain(
        self, call: Call, upstream: UpstreamResponse, decoder: SSEDecoder, outcome: Outcome
    ) -> None:
        try:
            await drain_stream(call, upstream, decoder, self.settings.capture.drain_timeout)
        finally:
            upstream.close()
            self._finish(call, outcome)

    async def wait_for_drains(self) -> None:
        """Shutdown: let background drains end (each is bounded by drain_timeout)."""
        if self._drains:
            await asyncio.gather(*self._drains, return_exceptions=True)

    def _finish(self, call: Call, outcome: Outcome) -> None:
        self.calls_ended += 1
        now = time.perf_counter()
        record = call.final_record(
            outcome,
            now,
            self.redactor,
            keep_response=self.capture_responses,
            max_text=self.max_captured,
        )
        if call.tracking.track:
            self.recorder.submit(record)
        endpoint = call.endpoint if call.endpoint in _JSON_ENDPOINTS else "other"
        status = outcome.status
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
            http_status=outcome.http_status,
            upstream_status=call.http_status,
            ttft_ms=_round(record.ttft_ms),
            total_ms=_round(record.total_time_ms),
            tracked=call.tracking.track,
        )

    async def _send_models(self, send: Send, task_id: str, headers: list) -> None:
        authorization = _header(headers, b"authorization")
        client_key = authorization.decode("latin-1") if authorization else None
        payload = await list_models(self.settings, self.pool, client_key)
        body = json.dumps(payload).encode()
        await send_response(send, 200, [*JSON_HEADERS, (b"x-task-id", task_id.encode())], body)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


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


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
