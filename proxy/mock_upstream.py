"""The fake OpenAI-compatible provider behind `airuns mock-upstream`.

Replies are deterministic (see `mock_replies`); behaviour is chosen per request by `x-mock-*`
headers or by options in the model name (`gpt-4o-mini+delay=200+chunks=20+disconnect=3`), so
SDK users can pick it without custom headers. What the mock saw is kept in a `MockState`
(also served at `/_mock/requests` and `/_mock/events` for out-of-process tests).
No per-request logging: benchmarks run against it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from proxy.mock_replies import (
    MockOptions,
    Stream,
    build_reply,
    chat_completion,
    chat_stream,
    count_words,
    dumps,
    embedding_for,
    endless_chat_stream,
    error_body,
    message_texts,
    parse_options,
    response_object,
    responses_stream,
    text_completion,
    text_stream,
    tool_to_call,
)

MODEL_IDS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "o3-mini", "text-embedding-3-small")
STALL_SECONDS = 3600.0


class MockState:
    """What the mock observed: the last 1000 requests and the stream lifecycle events."""

    def __init__(self) -> None:
        self.requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()

    def next_id(self) -> int:
        return next(self._ids)

    def add_event(self, kind: str, **fields: Any) -> None:
        self.events.append({"kind": kind, **fields})
        # Wake current waiters; later waiters get a fresh, unset event.
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for_event(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The first event of `kind`, waiting for it if needed; TimeoutError after `timeout`."""
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if event["kind"] == kind:
                        return event
                await self._changed.wait()

    def reset(self) -> None:
        self.requests.clear()
        self.events.clear()


MOCK_STATE = web.AppKey("mock_state", MockState)


@dataclass(slots=True)
class _Call:
    id: int
    path: str
    body: dict[str, Any]
    opts: MockOptions
    chunks_sent: int = 0
    closed_by_mock: bool = False


def _error(status: int, message: str, type_: str, code: str | None) -> web.Response:
    return web.json_response(error_body(message, type_, code), status=status, dumps=dumps)


class _Handlers:
    def __init__(self, state: MockState) -> None:
        self.state = state

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        call = await self._begin(request)
        texts, last_user = message_texts(call.body.get("messages"))
        tool = tool_to_call(call.body, last_user, call.opts)
        reply = build_reply(texts, last_user, call.opts, tool)
        cid, model = f"chatcmpl-mock-{call.id}", call.opts.model
        if call.body.get("stream") and call.opts.endless:
            return await self._answer(request, call, endless_chat_stream(cid, model))
        if call.body.get("stream"):
            stream = chat_stream(cid, model, reply, _include_usage(call.body))
            return await self._answer(request, call, stream)
        return await self._answer(request, call, chat_completion(cid, model, reply))

    async def completions(self, request: web.Request) -> web.StreamResponse:
        call = await self._begin(request)
        prompt = call.body.get("prompt")
        prompts = prompt if isinstance(prompt, list) else [prompt]
        texts = [p for p in prompts if isinstance(p, str)]
        reply = build_reply(texts, texts[-1] if texts else "", call.opts, None)
        cid, model = f"cmpl-mock-{call.id}", call.opts.model
        if call.body.get("stream"):
            stream = text_stream(cid, model, reply, _include_usage(call.body))
            return await self._answer(request, call, stream)
        return await self._answer(request, call, text_completion(cid, model, reply))

    async def responses(self, request: web.Request) -> web.StreamResponse:
        call = await self._begin(request)
        texts, last_user = message_texts(call.body.get("input"))
        if isinstance(call.body.get("instructions"), str):
            texts.append(call.body["instructions"])
        reply = build_reply(texts, last_user, call.opts, None)
        rid, model = f"resp_mock_{call.id}", call.opts.model
        if call.body.get("stream"):
            return await self._answer(request, call, responses_stream(rid, model, reply))
        return await self._answer(request, call, response_object(rid, model, reply))

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        call = await self._begin(request)
        raw = call.body.get("input")
        items = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []
        inputs = [item if isinstance(item, str) else str(item) for item in items]
        data = [
            {"object": "embedding", "index": i, "embedding": embedding_for(text)}
            for i, text in enumerate(inputs)
        ]
        tokens = count_words(inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        payload = {"object": "list", "data": data, "model": call.opts.model, "usage": usage}
        return await self._answer(request, call, payload)

    async def models(self, request: web.Request) -> web.StreamResponse:
        call = await self._begin(request)
        data = [
            {"id": model, "object": "model", "created": 1700000000, "owned_by": "mock"}
            for model in MODEL_IDS
        ]
        return await self._answer(request, call, {"object": "list", "data": data})

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            await self._begin(request)
        message = f"Unknown request URL: {request.method} {request.path}"
        return _error(404, message, "invalid_request_error", "not_found")

    async def list_requests(self, request: web.Request) -> web.Response:
        return web.json_response({"data": list(self.state.requests)}, dumps=dumps)

    async def list_events(self, request: web.Request) -> web.Response:
        return web.json_response({"data": self.state.events}, dumps=dumps)

    async def reset(self, request: web.Request) -> web.Response:
        self.state.reset()
        return web.json_response({"reset": True})

    async def _begin(self, request: web.Request) -> _Call:
        """Record the request and read its options; bad JSON or options answer 400."""
        call_id = self.state.next_id()
        headers = {name.lower(): value for name, value in request.headers.items()}
        raw = await request.read()
        try:
            body, bad_json = (json.loads(raw) if raw else None), False
        except ValueError:
            body, bad_json = None, True
        record = {"method": request.method, "path": request.path, "headers": headers, "json": body}
        self.state.requests.append({"id": call_id, **record})
        if bad_json:
            raise _bad_request("We could not parse the JSON body of your request.", "invalid_json")
        if request.method == "POST" and not isinstance(body, dict):
            raise _bad_request("The request body must be a JSON object.", "invalid_json")
        body = body if isinstance(body, dict) else {}
        model = body.get("model")
        try:
            opts = parse_options(model if isinstance(model, str) else "", headers)
        except ValueError as exc:
            raise _bad_request(str(exc), "invalid_mock_option") from None
        return _Call(call_id, request.path, body, opts)

    async def _answer(
        self, request: web.Request, call: _Call, payload: dict[str, Any] | Stream
    ) -> web.StreamResponse:
        """Apply the first delay and error injection, then answer; notes client disconnects."""
        try:
            if call.opts.first_delay_ms:
                await asyncio.sleep(call.opts.first_delay_ms / 1000)
            if call.opts.status:
                status = call.opts.status
                return _error(status, f"mock error {status}", "mock_error", f"mock_{status}")
            if isinstance(payload, dict):
                response = web.json_response(payload, dumps=dumps)
                response.headers["x-mock-request-id"] = str(call.id)
                return response
            return await self._stream(request, call, payload)
        except asyncio.CancelledError:
            if not call.closed_by_mock:
                self._note(call, "client_disconnected")
            raise

    async def _stream(
        self, request: web.Request, call: _Call, stream: Stream
    ) -> web.StreamResponse:
        opts = call.opts
        response = web.StreamResponse(headers={"x-mock-request-id": str(call.id)})
        response.content_type = "text/event-stream"
        response.charset = "utf-8"
        response.headers["Cache-Control"] = "no-cache"
        await response.prepare(request)
        try:
            for data, is_content in stream:
                if is_content:
                    if call.chunks_sent == opts.disconnect_after:
                        return self._disconnect(request, call, response)
                    if call.chunks_sent == opts.stall_after:
                        await asyncio.sleep(STALL_SECONDS)
                    if call.chunks_sent and opts.chunk_delay_ms:
                        await asyncio.sleep(opts.chunk_delay_ms / 1000)
                await response.write(data)
                call.chunks_sent += is_content
            if opts.linger_ms:  # the body ends a little after its last event, as over a network
                await asyncio.sleep(opts.linger_ms / 1000)
        except ConnectionError:
            self._note(call, "client_disconnected")
            return response
        await response.write_eof()
        self._note(call, "stream_completed")
        return response

    def _disconnect(
        self, request: web.Request, call: _Call, response: web.StreamResponse
    ) -> web.StreamResponse:
        """Close the socket mid-body so the client sees a truncated stream (no [DONE])."""
        call.closed_by_mock = True
        self._note(call, "disconnect_injected")
        if request.transport is not None:
            request.transport.close()
        return response

    def _note(self, call: _Call, kind: str) -> None:
        self.state.add_event(kind, request_id=call.id, path=call.path, chunks_sent=call.chunks_sent)


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _bad_request(message: str, code: str) -> web.HTTPBadRequest:
    body = dumps(error_body(message, "invalid_request_error", code))
    return web.HTTPBadRequest(text=body, content_type="application/json")


def create_mock_app(state: MockState | None = None) -> web.Application:
    handlers = _Handlers(state or MockState())
    app = web.Application()
    app[MOCK_STATE] = handlers.state
    routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
        ("POST", "/v1/chat/completions", handlers.chat_completions),
        ("POST", "/v1/completions", handlers.completions),
        ("POST", "/v1/responses", handlers.responses),
        ("POST", "/v1/embeddings", handlers.embeddings),
        ("GET", "/v1/models", handlers.models),
        ("GET", "/_mock/requests", handlers.list_requests),
        ("GET", "/_mock/events", handlers.list_events),
        ("POST", "/_mock/reset", handlers.reset),
        ("*", "/{tail:.*}", handlers.not_found),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    return app


class MockUpstreamServer:
    """The mock on a loopback port for in-process tests: `async with MockUpstreamServer() as m`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, state: MockState | None = None):
        self.host = host
        self.port = port
        self.state = state or MockState()
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def __aenter__(self) -> MockUpstreamServer:
        # handler_cancellation: a client that goes away cancels its handler, even mid-sleep.
        self._runner = web.AppRunner(
            create_mock_app(self.state),
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=1.0,
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def run_mock_upstream(host: str = "127.0.0.1", port: int = 9000) -> None:
    """Serve until SIGINT/SIGTERM (uvloop when installed)."""
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with (
        asyncio.Runner(loop_factory=loop_factory) as runner,
        contextlib.suppress(KeyboardInterrupt),
    ):
        runner.run(_serve(host, port))


async def _serve(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with MockUpstreamServer(host, port) as mock:
        print(f"mock-upstream listening on {mock.base_url}", file=sys.stderr, flush=True)
        await stop.wait()
