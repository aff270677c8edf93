"""The proxy path against a real fake upstream on loopback, through a real ASGI server."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from proxy.mock_upstream import MockUpstreamServer
from tests.support.raw_upstream import http_response, raw_provider, raw_upstream

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}


async def test_non_streaming_chat_is_relayed_and_recorded(proxy):
    response = await proxy.client.post(
        "/v1/chat/completions", json=CHAT, headers={"X-Run-Id": "r1"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Mock reply to: hello there"
    assert response.headers["x-run-id"] == "r1"
    record = proxy.final(response.headers["x-task-id"])
    assert record.status == "completed"
    assert record.run.id == "r1"
    assert record.response_text == "Mock reply to: hello there"
    assert record.usage.prompt_tokens == body["usage"]["prompt_tokens"]
    assert record.provider == "mock" and record.upstream_model == "gpt-4o-mini"
    assert record.ttft_ms is None
    # airuns' own time: positive, and less than the call's total (the upstream wait is excluded)
    assert 0 < record.overhead_ms < record.total_time_ms
    assert record.upstream_latency_ms <= record.total_time_ms


async def test_stream_relays_events_and_hides_injected_usage_chunk(proxy):
    async with proxy.client.stream(
        "POST", "/v1/chat/completions", json={**CHAT, "stream": True}
    ) as response:
        raw = b"".join([chunk async for chunk in response.aiter_bytes()])
    events = [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["choices"] for c in chunks), "the usage-only chunk must not be relayed"
    sent_upstream = proxy.mock.state.requests[-1]["json"]
    assert sent_upstream["stream_options"] == {"include_usage": True}
    record = (await proxy.wait_final())[0]
    assert record.usage is not None and record.usage.completion_tokens > 0
    assert record.response_text == "Mock reply to: hello there"
    assert record.ttft_ms is not None


async def test_client_asking_for_usage_gets_the_usage_chunk(proxy):
    payload = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with proxy.client.stream("POST", "/v1/chat/completions", json=payload) as response:
        raw = (await response.aread()).decode()
    chunks = [json.loads(line[6:]) for line in raw.split("\n") if line.startswith("data: {")]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


async def test_malformed_json_is_400_and_not_forwarded(proxy):
    response = await proxy.client.post(
        "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert len(proxy.mock.state.requests) == 0
    assert proxy.recorder.records == []


async def test_alias_and_provider_prefix_are_rewritten_upstream(proxy):
    for model in ("fast", "mock/gpt-4o-mini"):
        response = await proxy.client.post("/v1/chat/completions", json={**CHAT, "model": model})
        assert response.status_code == 200
        assert proxy.mock.state.requests[-1]["json"]["model"] == "gpt-4o-mini"
    records = await proxy.wait_final(2)
    assert [r.model for r in records] == ["fast", "mock/gpt-4o-mini"]
    assert {r.upstream_model for r in records} == {"gpt-4o-mini"}


async def test_unknown_provider_is_400_naming_model(proxy):
    response = await proxy.client.post("/v1/chat/completions", json={**CHAT, "model": "nope/x"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"
    assert len(proxy.mock.state.requests) == 0


async def test_provider_key_replaces_client_authorization(proxy):
    headers = {"Authorization": "Bearer sk-client"}
    await proxy.client.post(
        "/v1/chat/completions", json={**CHAT, "model": "keyed/gpt-4o-mini"}, headers=headers
    )
    assert proxy.mock.state.requests[-1]["headers"]["authorization"] == "Bearer sk-provider-secret"
    await proxy.client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert proxy.mock.state.requests[-1]["headers"]["authorization"] == "Bearer sk-client"
    assert "sk-provider-secret" not in proxy.log.getvalue()
    assert "sk-client" not in proxy.log.getvalue()


async def test_one_log_line_per_call_with_ids_and_timings(proxy):
    await proxy.client.post("/v1/chat/completions", json=CHAT, headers={"X-Run-Id": "logged"})
    async with proxy.client.stream(
        "POST",
        "/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers={"x-mock-chunks": "20"},
    ) as response:
        await response.aread()
    lines = [json.loads(line) for line in proxy.log.getvalue().splitlines()]
    calls = [line for line in lines if line["event"] == "call"]
    assert len(calls) == 2
    assert calls[0]["run_id"] == "logged" and calls[0]["status"] == "completed"
    assert calls[1]["ttft_ms"] is not None and calls[1]["total_ms"] >= calls[1]["ttft_ms"]


@pytest.mark.parametrize(
    "headers, param",
    [
        ({"X-Run-Id": "bad id!"}, "X-Run-Id"),
        ({"X-Run-Id": "x" * 129}, "X-Run-Id"),
        ({"X-Run-Metadata": "[1]"}, "X-Run-Metadata"),
        ({"X-Run-Metadata": "{oops"}, "X-Run-Metadata"),
        ({"X-Task-Id": "a b"}, "X-Task-Id"),
        ({"X-User-Id": ""}, "X-User-Id"),
    ],
)
async def test_bad_header_values_are_400_and_nothing_is_forwarded(proxy, headers, param):
    response = await proxy.client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert len(proxy.mock.state.requests) == 0 and proxy.recorder.records == []


async def test_oversize_body_is_413_from_content_length(proxy_factory):
    async with proxy_factory("server_limits: {max_request_bytes: 1000}") as proxy:
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
        response = await proxy.client.post("/v1/chat/completions", json=big)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"

        async def chunks():
            for _ in range(10):
                yield b"x" * 500

        response = await proxy.client.post("/v1/chat/completions", content=chunks())
        assert response.status_code == 413
        assert len(proxy.mock.state.requests) == 0 and proxy.recorder.records == []


async def test_duplicate_task_id_is_409_before_forwarding(proxy):
    headers = {"X-Task-Id": "task-1"}
    first = await proxy.client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert first.status_code == 200 and first.headers["x-task-id"] == "task-1"
    second = await proxy.client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert second.status_code == 409
    assert second.json()["error"]["param"] == "X-Task-Id"
    assert len(proxy.mock.state.requests) == 1


async def test_tracking_off_forwards_unchanged_and_records_nothing(proxy):
    payload = {**CHAT, "stream": True}
    headers = {"X-Run-Track": "off", "X-Run-Id": "r"}
    async with proxy.client.stream(
        "POST", "/v1/chat/completions", json=payload, headers=headers
    ) as response:
        await response.aread()
        assert response.headers["x-task-id"]
        assert "x-run-id" not in response.headers
    assert "stream_options" not in proxy.mock.state.requests[-1]["json"]
    assert proxy.recorder.records == []


async def test_upstream_error_status_and_body_pass_through(proxy):
    response = await proxy.client.post(
        "/v1/chat/completions", json=CHAT, headers={"x-mock-status": "429"}
    )
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "mock_429"
    record = proxy.final()
    assert record.status == "error" and record.http_status == 429
    assert record.error_message == "mock error 429"


async def test_unreachable_upstream_is_502(proxy):
    response = await proxy.client.post("/v1/chat/completions", json={**CHAT, "model": "dead/x"})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unreachable"
    record = (await proxy.wait_final())[0]
    assert record.status == "error" and record.http_status == 502


async def test_upstream_read_timeout_is_504(proxy_factory):
    async with proxy_factory("timeouts: {connect: 5, read: 0.3, stream_idle: 0.3}") as proxy:
        response = await proxy.client.post(
            "/v1/chat/completions", json=CHAT, headers={"x-mock-first-delay-ms": "2000"}
        )
        assert response.status_code == 504
        assert response.json()["error"]["type"] == "timeout_error"
        record = (await proxy.wait_final())[0]
        assert record.status == "timeout" and record.http_status == 504


async def test_stalled_stream_ends_with_sse_error_and_timeout_task(proxy_factory):
    async with proxy_factory("timeouts: {connect: 5, read: 30, stream_idle: 0.3}") as proxy:
        headers = {"x-mock-stall-after": "2"}
        async with proxy.client.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers
        ) as response:
            raw = (await response.aread()).decode()
        assert response.status_code == 200
        assert "event: error" in raw and "timeout_error" in raw
        record = (await proxy.wait_final())[0]
        assert record.status == "timeout"
        assert record.response_text == "Mock reply "  # the two pieces received before the stall


async def test_upstream_disconnect_mid_stream_is_error_with_partial_text(proxy):
    headers = {"x-mock-disconnect-after": "2"}
    async with proxy.client.stream(
        "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers
    ) as response:
        raw = (await response.aread()).decode()
    assert "event: error" in raw
    record = (await proxy.wait_final())[0]
    assert record.status == "error"
    assert record.response_text == "Mock reply "


async def test_client_disconnect_closes_upstream_and_records_cancelled(proxy):
    await _leave_after_three_events(proxy, {"x-mock-chunk-delay-ms": "200", "x-mock-chunks": "50"})
    event = await proxy.mock.state.wait_for_event("client_disconnected", timeout=5)
    assert event["chunks_sent"] < 50
    record = (await proxy.wait_final())[0]
    assert record.status == "cancelled"
    assert record.response_text  # what was received so far


async def test_responses_api_stream_and_whole(proxy):
    payload = {"model": "gpt-4o-mini", "input": "tell me"}
    whole = await proxy.client.post("/v1/responses", json=payload)
    assert whole.status_code == 200
    async with proxy.client.stream(
        "POST", "/v1/responses", json={**payload, "stream": True}
    ) as response:
        raw = (await response.aread()).decode()
    assert "response.completed" in raw
    first, second = await proxy.wait_final(2)
    for record in (first, second):
        assert record.response_text == "Mock reply to: tell me"
        assert record.usage.prompt_tokens == 2
    assert second.stream and second.ttft_ms is not None


async def test_embeddings_and_completions_usage(proxy):
    emb = await proxy.client.post(
        "/v1/embeddings", json={"model": "text-embedding-3-small", "input": ["a b", "c"]}
    )
    assert emb.status_code == 200
    comp = await proxy.client.post("/v1/completions", json={"model": "gpt-4o-mini", "prompt": "hi"})
    assert comp.status_code == 200
    emb_record, comp_record = await proxy.wait_final(2)
    assert emb_record.usage.prompt_tokens == emb.json()["usage"]["prompt_tokens"]
    assert emb_record.usage.completion_tokens == 0
    assert comp_record.response_text == comp.json()["choices"][0]["text"]


async def test_other_v1_paths_pass_through_and_are_recorded(proxy):
    response = await proxy.client.get("/v1/files/abc?purpose=x")
    assert response.status_code == 404  # the fake upstream's own answer
    assert proxy.mock.state.requests[-1]["path"] == "/v1/files/abc"
    record = (await proxy.wait_final())[0]
    assert record.endpoint == "/v1/files/abc" and record.http_status == 404


async def test_models_lists_aliases_and_provider_models(proxy):
    response = await proxy.client.get("/v1/models", headers={"Authorization": "Bearer sk-own"})
    ids = [m["id"] for m in response.json()["data"]]
    assert "fast" in ids and "mock/gpt-4o-mini" in ids and "keyed/gpt-4o-mini" in ids
    sent = {r["headers"].get("authorization") for r in proxy.mock.state.requests}
    # the keyed provider is asked with its own key, the others with the client's
    assert sent == {"Bearer sk-provider-secret", "Bearer sk-own"}


async def _leave_after_three_events(proxy, headers):
    async with proxy.client.stream(
        "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers
    ) as response:
        received = b""
        async for chunk in response.aiter_bytes():
            received += chunk
            if received.count(b"data: ") >= 3:
                break


async def test_cancel_policy_estimates_usage_instead_of_zero(proxy):
    await _leave_after_three_events(proxy, {"x-mock-chunk-delay-ms": "100", "x-mock-chunks": "30"})
    record = (await proxy.wait_final())[0]
    assert record.status == "cancelled"
    assert record.usage_source == "estimated"
    assert record.usage.prompt_tokens == 3  # "hello there" is 11 characters, ~4 a token
    assert record.usage.completion_tokens > 0


async def test_drain_policy_reads_on_and_records_provider_usage(proxy_factory):
    config = "capture: {on_client_disconnect: drain, drain_timeout: 10}"
    async with proxy_factory(config) as proxy:
        headers = {"x-mock-chunk-delay-ms": "20", "x-mock-chunks": "30"}
        await _leave_after_three_events(proxy, headers)
        record = (await proxy.wait_final())[0]
        assert record.status == "cancelled"
        assert record.usage_source == "provider"
        assert record.usage.completion_tokens == 30
        completed = await proxy.mock.state.wait_for_event("stream_completed", timeout=5)
        assert completed["chunks_sent"] >= 30


async def test_upstream_connect_timeout_is_504(proxy_factory):
    # A listener whose accept queue is full: the kernel drops further SYNs, so connecting hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        providers = (
            f'  blackhole: {{base_url: "http://127.0.0.1:{port}/v1", '
            "timeouts: {connect: 0.5, read: 5, stream_idle: 5}}"
        )
        try:
            async with proxy_factory(providers=providers) as proxy:
                started = time.monotonic()
                response = await proxy.client.post(
                    "/v1/chat/completions", json={**CHAT, "model": "blackhole/x"}
                )
                assert response.status_code == 504
                assert time.monotonic() - started < 4
                record = (await proxy.wait_final())[0]
                assert record.status == "timeout"
        finally:
            for filler in fillers:
                filler.close()


async def test_overhead_excludes_the_upstream_wait(proxy):
    headers = {"x-mock-first-delay-ms": "300", "x-mock-chunk-delay-ms": "50", "x-mock-chunks": "4"}
    async with proxy.client.stream(
        "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers
    ) as response:
        await response.aread()
    record = (await proxy.wait_final())[0]
    assert record.total_time_ms >= 300 + 3 * 50
    assert record.ttft_ms >= 300
    # The ~450 ms spent waiting on the upstream is not airuns' overhead.
    assert record.overhead_ms < 100


async def test_capture_settings_leave_out_or_truncate_bodies(proxy_factory):
    config = "capture: {request_bodies: false, response_bodies: false}"
    async with proxy_factory(config) as proxy:
        await proxy.client.post("/v1/chat/completions", json=CHAT, headers={"X-Run-Id": "r"})
        record = (await proxy.wait_final())[0]
        assert record.request is None and record.response_text is None
        assert record.usage is not None  # usage and cost are recorded all the same
    async with proxy_factory("capture: {max_body_bytes: 10}") as proxy:
        async with proxy.client.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "stream": True}
        ) as response:
            await response.aread()
        record = (await proxy.wait_final())[0]
        assert record.response_text == "Mock reply"  # the first 10 characters
        assert record.usage is not None  # the stream's usage is read whatever its length
        assert record.request["_truncated"] is True and "messages" not in record.request


async def test_a_whole_body_over_the_capture_limit_is_relayed_but_not_kept(proxy_factory):
    async with proxy_factory("capture: {max_body_bytes: 100}") as proxy:
        response = await proxy.client.post("/v1/chat/completions", json=CHAT)
        assert response.status_code == 200 and response.json()["usage"]["total_tokens"] > 0
        record = (await proxy.wait_final())[0]
        assert record.status == "completed" and record.http_status == 200
        assert record.response_text is None and record.usage is None
        assert record.usage_source == "missing"


# -- intake: the client's own malformed input is a 400 and nothing is forwarded ----------------


@pytest.mark.parametrize(
    "headers, param",
    [
        ({"X-Run-Metadata": '{"a": NaN}'}, "X-Run-Metadata"),
        ({"X-Run-Metadata": '{"a": Infinity}'}, "X-Run-Metadata"),
        ({"X-Run-Metadata": '{"a": [-Infinity]}'}, "X-Run-Metadata"),
        ({"X-Run-Metadata": '{"a": "' + "x" * 16_400 + '"}'}, "X-Run-Metadata"),
        ([("X-Run-Id", "one"), ("X-Run-Id", "two")], "X-Run-Id"),
        ([("X-Task-Id", "t1"), ("X-Task-Id", "t1")], "X-Task-Id"),
        ([("X-Run-Metadata", "{}"), ("x-run-metadata", '{"a": 1}')], "X-Run-Metadata"),
        ([("X-Run-Track", "off"), ("X-Run-Track", "on")], "X-Run-Track"),
    ],
)
async def test_non_strict_metadata_and_repeated_tracking_headers_are_a_400(proxy, headers, param):
    response = await proxy.client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert len(proxy.mock.state.requests) == 0 and proxy.recorder.records == []


async def test_metadata_of_16_kib_is_accepted(proxy):
    metadata = '{"a": "' + "x" * (16 * 1024 - 9) + '"}'
    assert len(metadata) == 16 * 1024
    response = await proxy.client.post(
        "/v1/chat/completions", json=CHAT, headers={"X-Run-Metadata": metadata, "X-Run-Id": "r"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("stream", ["yes", 1, 0, "true", [], {}])
async def test_stream_that_is_not_a_boolean_is_a_400(proxy, stream):
    response = await proxy.client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stream"
    assert len(proxy.mock.state.requests) == 0 and proxy.recorder.records == []


async def test_stream_null_is_a_whole_response(proxy):
    response = await proxy.client.post("/v1/chat/completions", json={**CHAT, "stream": None})
    assert response.status_code == 200 and response.json()["object"] == "chat.completion"
    assert proxy.final().stream is False


# -- the request edge: keys and paths ---------------------------------------------------------


async def test_models_asks_keyed_providers_and_the_default_one_with_the_clients_key(
    proxy_factory,
):
    async with MockUpstreamServer() as other:  # a keyless provider that is not the default
        provider = f'  other: {{base_url: "{other.base_url}"}}'
        async with proxy_factory(providers=provider) as proxy:
            response = await proxy.client.get(
                "/v1/models", headers={"Authorization": "Bearer sk-client-own"}
            )
            assert response.status_code == 200
            sent = sorted(r["headers"].get("authorization") for r in proxy.mock.state.requests)
            assert sent == ["Bearer sk-client-own", "Bearer sk-provider-secret"]
            assert list(other.state.requests) == []  # never sent the client's key


async def test_a_call_sends_the_clients_key_only_to_the_provider_that_serves_it(proxy_factory):
    async with MockUpstreamServer() as other:
        provider = f'  other: {{base_url: "{other.base_url}"}}'
        async with proxy_factory(providers=provider) as proxy:
            headers = {"Authorization": "Bearer sk-client-own"}
            await proxy.client.post("/v1/chat/completions", json=CHAT, headers=headers)
            await proxy.client.post(
                "/v1/chat/completions", json={**CHAT, "model": "keyed/x"}, headers=headers
            )
            sent = [r["headers"].get("authorization") for r in proxy.mock.state.requests]
            assert sent == ["Bearer sk-client-own", "Bearer sk-provider-secret"]
            assert list(other.state.requests) == []


async def raw_request(url: str, request_line: bytes, body: bytes = b"") -> bytes:
    """Send a request exactly as written (no client normalises its path); the status line."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        request_line + b"\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
    )  # fmt: skip
    response = await reader.read()
    writer.close()
    return response.split(b"\r\n", 1)[0]


HOSTILE_PATHS = [
    b"/v%31%2F@127.0.0.1:{other}/v1/chat/completions",
    b"/v1/../admin/runs",
    b"/v1/../../../../etc/passwd",
    b"/v1/%2e%2e/admin/runs",
    b"/v1/%2E%2E/%2e%2e/etc/passwd",
    b"/v1/chat/completions/..%2F..%2Fadmin",
    b"/v1/files/a%5C..%5Cb",
]


@pytest.mark.parametrize("keyed", [False, True])
@pytest.mark.parametrize("base_path", ["", "/v1"])
@pytest.mark.parametrize("path", HOSTILE_PATHS)
async def test_no_request_path_reaches_another_host_or_leaves_the_base_path(
    proxy_factory, keyed, base_path, path
):
    async with (
        raw_upstream(http_response(b"{}")) as (upstream_port, upstream_requests),
        raw_upstream(http_response(b"{}")) as (other_port, other_requests),
    ):
        provider = raw_provider(upstream_port, path=base_path)
        if keyed:
            provider = provider.replace("timeouts:", 'api_key: "sk-raw-key", timeouts:')
        async with proxy_factory("default_provider: raw", provider) as proxy:
            target = path.replace(b"{other}", str(other_port).encode())
            body = json.dumps({"model": "x", "messages": []}).encode()
            status = await raw_request(proxy.url, b"POST " + target + b" HTTP/1.1", body)
            assert status.startswith(b"HTTP/1.1 400"), status
        assert upstream_requests == [] and other_requests == []


async def test_an_encoded_version_prefix_reaches_the_upstream_normalised(proxy_factory):
    async with raw_upstream(http_response(b"{}")) as (port, requests):
        async with proxy_factory("default_provider: raw", raw_provider(port)) as proxy:
            body = json.dumps({"model": "x", "messages": []}).encode()
            line = b"POST /%76%31/chat/completions HTTP/1.1"
            assert (await raw_request(proxy.url, line, body)).startswith(b"HTTP/1.1 200")
        assert requests == [b"POST /v1/chat/completions HTTP/1.1"]


async def test_redirects_from_the_upstream_are_passed_on_not_followed(proxy_factory):
    async with raw_upstream(http_response(b"{}")) as (other_port, other_requests):
        redirect = http_response(
            b"", status=b"307 Temporary Redirect", Location=f"http://127.0.0.1:{other_port}/v1/x"
        )
        async with (
            raw_upstream(redirect) as (port, _),
            proxy_factory("default_provider: raw", raw_provider(port)) as proxy,
        ):
            response = await proxy.client.post("/v1/chat/completions", json=CHAT)
            assert response.status_code == 307
        assert other_requests == []


async def test_credentials_in_upstream_error_text_are_masked_before_they_are_stored(
    proxy_factory,
):
    echoed = {
        "error": {
            "message": "Incorrect API key provided: sk-client-very-secret-1. Also saw "
            "Bearer sk-client-very-secret-1 and sk-raw-provider-key-9 and my-plain-key-123456.",
            "type": "invalid_request_error",
        }
    }
    upstream = http_response(json.dumps(echoed).encode(), status=b"401 Unauthorized")
    async with raw_upstream(upstream) as (port, _):
        provider = raw_provider(port).replace(
            "timeouts:", 'api_key: "my-plain-key-123456", timeouts:'
        )
        async with proxy_factory("default_provider: raw", provider) as proxy:
            headers = {"Authorization": "Bearer sk-client-very-secret-1"}
            response = await proxy.client.post("/v1/chat/completions", json=CHAT, headers=headers)
            assert response.status_code == 401 and response.json() == echoed  # relayed as sent
            record = (await proxy.wait_final())[0]
    stored = record.error_message
    for secret in ("very-secret", "raw-provider-key", "my-plain-key"):
        assert secret not in stored and secret not in proxy.log.getvalue()
    assert stored.startswith("Incorrect API key provided: ***")
