"""The proxy path: every `/v1/*` call, as a raw ASGI app. It only sequences:

validate (headers, path, body: `headers`, `paths`, `intake`) → route (`intake.prepare`) →
recognise a client's retry (`retries`) and claim a client-chosen task id (`task_ids`) → record
`pending` → forward (`upstream`) → relay (`relay`, which says how the call ended) → record the
outcome (`call.final_record`).

Recording never waits: the recorder takes records without blocking, and the database is never
touched here (the one exception is a client-chosen `X-Task-Id`, checked for duplicates before
anything is forwarded, with a bounded, fail-open lookup).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time

from persistence.record import (
    CANCELLED,
    COMPLETED,
    ERROR,
    JSON_ENDPOINTS,
    MODELS,
    PENDING,
    STREAMING,
    Recorder,
)
from proxy.call import Call
from proxy.drains import Drains
from proxy.errors import Conflict, ProxyError
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
from proxy.headers import collect_tracking, forwarded_headers, parse_tracking, returned_headers
from proxy.intake import parse_body, prepare
from proxy.models_listing import list_models
from proxy.observability import Logger, Metrics
from proxy.outcome import Outcome, client_left, refused
from proxy.paths import ProxyPath, normalize_path
from proxy.redaction import Redactor, bearer_token
from proxy.relay import relay_stream, relay_whole
from proxy.retries import FIRST, Attempt, Fingerprint, Retries, read_retry_signal
from proxy.routing import Router
from proxy.settings import Settings
from proxy.sse import SSEDecoder
from proxy.task_ids import TaskIds
from proxy.upstream import UpstreamPool, UpstreamResponse

Headers = list[tuple[bytes, bytes]]


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
        task_ids: TaskIds,
        *,
        log: Logger,
        metrics: Metrics,
        retries: Retries | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.recorder = recorder
        self.task_ids = task_ids
        self.retries = retries if retries is not None else Retries()
        self.router = Router(settings)
        self.log = log
        self.metrics = metrics
        capture = settings.capture
        self.drains = Drains(
            capture.on_client_disconnect == "drain", capture.drain_timeout, capture.max_drains
        )
        self.redactor = Redactor(p.api_key for p in settings.providers.values())
        self.calls_ended = 0

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        arrived = time.perf_counter()  # "request received": TTFT and latency count from here
        headers: Headers = scope["headers"]
        task_id = new_task_id()
        ids = [(b"x-task-id", task_id.encode())]
        try:
            tracking = parse_tracking(collect_tracking(headers))
            if tracking.task_id:
                task_id, ids = tracking.task_id, [(b"x-task-id", tracking.task_id.encode())]
            raw_path = scope.get("raw_path") or scope["path"].encode()
            path = normalize_path(raw_path, scope.get("query_string", b""))
            limit = self.settings.server_limits.max_request_bytes
            body = await read_body(receive, limit, _header(headers, b"content-length"))
        except ProxyError as error:
            await send_error(send, error, ids)
            return
        except ClientGone:
            return
        if scope["method"] == "GET" and path.endpoint == MODELS:
            await self._send_models(send, ids, headers)
            return
        if tracking.run_id is not None and tracking.track:
            ids.append((b"x-run-id", tracking.run_id.encode()))
        capture = self.settings.capture
        try:
            request = parse_body(
                scope["method"], path.endpoint, _header(headers, b"content-type"), body
            )
            prepared = prepare(
                self.router,
                path.endpoint,
                request,
                body,
                track=tracking.track,
                keep_request=capture.request_bodies,
                max_kept=capture.max_body_bytes,
            )
            credential = bearer_token(_header(headers, b"authorization"))
            attempt = FIRST
            if tracking.track:
                # What is sent upstream: the same for every attempt, and held by the call anyway.
                fingerprint = Fingerprint(
                    tracking.run_id, credential, scope["method"], path.upstream, prepared.body
                )
                attempt = self.retries.begin(read_retry_signal(headers), fingerprint, task_id)
                task_id, attempt = await self._claim(task_id, tracking.task_id, attempt)
                ids[0] = (b"x-task-id", task_id.encode())
        except ProxyError as error:
            await send_error(send, error, ids)
            return
        call = Call.begin(
            task_id, tracking, path.endpoint, arrived, prepared, capture.max_body_bytes, credential,
            attempt,
        )  # fmt: skip
        if tracking.track:
            self.recorder.submit(call.record(PENDING))
        await self._forward(scope, receive, send, call, path, ids)

    async def _claim(
        self, task_id: str, chosen: str | None, attempt: Attempt
    ) -> tuple[str, Attempt]:
        """The id this attempt is stored under. A client-chosen id already taken is a 409,
        unless this is a retry of the call this process stored under that very id (SDK
        retries repeat every header): then this attempt gets an id of its own. A retry count
        alone proves nothing: it is the client's to set."""
        try:
            free = chosen is None or await self.task_ids.claim(chosen)
        except BaseException:
            self.retries.refuse(attempt)
            raise
        if free:
            return task_id, attempt
        if attempt.of is not None and attempt.of == chosen:
            return new_task_id(), attempt
        self.retries.refuse(attempt)
        raise _duplicate(chosen)

    async def _forward(
        self, scope: dict, receive: Receive, send: Send, call: Call, path: ProxyPath, ids: Headers
    ) -> None:
        prepared, track = call.prepared, call.tracking.track
        provider = self.pool.providers[prepared.provider]
        headers = forwarded_headers(scope["headers"], provider.api_key)
        watcher = DisconnectWatcher(receive)
        watcher.start()
        upstream: UpstreamResponse | None = None
        decoder = SSEDecoder(self.settings.server_limits.max_event_bytes)
        outcome = Outcome(ERROR, None, "airuns failed while relaying the call")
        drained = False
        try:
            upstream = await self.pool.send(
                prepared.provider, scope["method"], path.upstream, headers, prepared.body or None,
                stream=prepared.stream,
            )  # fmt: skip
            response_headers = returned_headers(upstream.headers) + ids
            gone, capture = watcher.client_gone, call.capture
            if upstream.is_event_stream:
                if track:
                    self.recorder.submit(call.record(STREAMING, upstream.status))
                relayed = await relay_stream(
                    capture, upstream, send, response_headers, decoder, gone
                )
            else:
                keep = self.settings.capture.max_body_bytes if track else 0
                relayed = await relay_whole(capture, upstream, send, response_headers, keep, gone)
            outcome, drained = relayed.outcome, relayed.drained
        except ProxyError as error:  # before the response started: airuns answers
            outcome = refused(error)
            await _send_error_quietly(send, error, ids)
        except asyncio.CancelledError:
            if not watcher.client_gone():
                raise
            outcome = client_left(call.capture, None, False)
        finally:
            watcher.stop()
            self._end(call, upstream, decoder, outcome, drained)

    def _end(
        self,
        call: Call,
        upstream: UpstreamResponse | None,
        decoder: SSEDecoder,
        outcome: Outcome,
        drained: bool,
    ) -> None:
        """Give the upstream connection back (to the pool when its body was read whole) and
        record the call; a cancelled stream may be drained first. The client knows how the
        call ended now: a retry of it may come before a drain is done."""
        self.retries.end(call.attempt, failed=outcome.status != COMPLETED)

        def finish() -> None:
            self._finish(call, upstream, outcome)

        if upstream is None:
            finish()
        elif drained:
            upstream.release()
            finish()
        elif not (
            outcome.status == CANCELLED
            and call.tracking.track
            and upstream.is_event_stream
            and self.drains.start(call.capture, upstream, decoder, finish)
        ):
            upstream.close()
            finish()

    def _finish(self, call: Call, upstream: UpstreamResponse | None, outcome: Outcome) -> None:
        self.calls_ended += 1
        capture = self.settings.capture
        record = call.final_record(
            outcome,
            upstream,
            time.perf_counter(),
            self.redactor,
            keep_response=capture.response_bodies,
            max_text=capture.max_body_bytes,
        )
        if call.tracking.track:
            self.recorder.submit(record)
        endpoint = call.endpoint if call.endpoint in JSON_ENDPOINTS else "other"
        provider = call.prepared.provider
        overhead = (record.overhead_ms or 0) / 1000
        self.metrics.observe_call(provider, endpoint, outcome.status, overhead, record.ttft_ms)
        self.log.info(
            "call",
            task_id=call.task_id,
            run_id=call.tracking.run_id,
            provider=provider,
            model=call.prepared.model,
            status=outcome.status,
            http_status=outcome.http_status,
            upstream_status=upstream.status if upstream is not None else None,
            ttft_ms=_round(record.ttft_ms),
            total_ms=_round(record.total_time_ms),
            tracked=call.tracking.track,
            attempt=call.attempt.number,
            attempt_of=call.attempt.of,
        )

    async def wait_for_drains(self) -> None:
        await self.drains.wait()

    async def _send_models(self, send: Send, ids: Headers, headers: Headers) -> None:
        authorization = _header(headers, b"authorization")
        client_key = authorization.decode("latin-1") if authorization else None
        payload = await list_models(self.settings, self.pool, client_key)
        await send_response(send, 200, [*JSON_HEADERS, *ids], json.dumps(payload).encode())


def _header(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


async def _send_error_quietly(send: Send, error: ProxyError, ids: Headers) -> None:
    # The client is gone or the response already started; the record says what happened.
    with contextlib.suppress(OSError, RuntimeError):
        await send_error(send, error, ids)


def _duplicate(task_id: str) -> Conflict:
    return Conflict(
        f"task id {task_id!r} already exists", param="X-Task-Id", code="duplicate_task_id"
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
