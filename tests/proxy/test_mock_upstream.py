"""The mock upstream, driven over loopback by httpx and by the official openai SDK."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from proxy.mock_replies import MockOptions, parse_options, split_reply
from proxy.mock_upstream import MockState, MockUpstreamServer

USER = [{"role": "user", "content": "Tell me a joke about cats please"}]
REPLY = "Mock reply to: Tell me a joke about cats please"


@pytest.fixture
async def mock() -> AsyncIterator[MockUpstreamServer]:
    async with MockUpstreamServer(host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
async def http(mock: MockUpstreamServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=mock.base_url, timeout=10) as client:
        yield client


@pytest.fixture
async def sdk(mock: MockUpstreamServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=mock.base_url, api_key="x", max_retries=0) as client:
        yield client


def chat(stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": USER, "stream": stream, **extra}


async def read_events(http: httpx.AsyncClient, path: str, body: dict, **kw: Any) -> list[str]:
    """The `data:` payloads of an SSE response, in order."""
    async with http.stream("POST", path, json=body, **kw) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = (await response.aread()).decode()
    return [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]


def chunks_of(events: list[str]) -> list[dict[str, Any]]:
    assert events[-1] == "[DONE]"
    return [json.loads(event) for event in events[:-1]]


def content_of(chunks: list[dict[str, Any]]) -> list[str]:
    return [c["choices"][0]["delta"]["content"] for c in chunks[1:] if c["choices"][0]["delta"]]


# --- pure parts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "joined"),
    [
        (None, "Mock reply to: one two three"),
        (1, "Mock reply to: one two three"),
        (2, "Mock reply to: one two three"),
        (6, "Mock reply to: one two three"),
        (8, "Mock reply to: one two three lorem lorem"),
    ],
)
def test_reply_pieces_join_back_to_the_reply(chunks: int | None, joined: str) -> None:
    pieces = split_reply("Mock reply to: one two three", chunks)
    assert len(pieces) == (chunks or 6)
    assert "".join(pieces) == joined


@pytest.mark.parametrize(
    ("model", "headers", "expected"),
    [
        ("gpt-4o-mini", {}, MockOptions(model="gpt-4o-mini")),
        (
            "gpt-4o-mini+delay=200+chunk_delay=10+chunks=20+error=429+disconnect=3+stall=2"
            "+model=gpt-4o-mini-2024-07-18",
            {},
            MockOptions(
                model="gpt-4o-mini-2024-07-18",
                first_delay_ms=200,
                chunk_delay_ms=10,
                chunks=20,
                status=429,
                disconnect_after=3,
                stall_after=2,
            ),
        ),
        (
            "m+chunks=2",
            {"x-mock-chunks": "5", "x-mock-response-model": "snap", "x-mock-cached-tokens": "4"},
            MockOptions(model="snap", chunks=5, cached_tokens=4),
        ),
    ],
)
def test_options_come_from_model_name_and_headers(
    model: str, headers: dict[str, str], expected: MockOptions
) -> None:
    assert parse_options(model, headers) == expected


@pytest.mark.parametrize(
    ("model", "headers"),
    [("m+bogus=1", {}), ("m+delay=soon", {}), ("m", {"x-mock-status": "200"}), ("m+chunks=0", {})],
)
def test_bad_options_are_rejected(model: str, headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        parse_options(model, headers)


# --- chat completions ------------------------------------------------------------------


async def test_chat_reply_and_usage(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert completion.id.startswith("chatcmpl-mock-")
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (7, 10, 17)
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details.reasoning_tokens == 0


async def test_stream_has_role_content_finish_and_done_without_usage(
    http: httpx.AsyncClient,
) -> None:
    chunks = chunks_of(await read_events(http, "/chat/completions", chat(stream=True)))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert "".join(content_of(chunks)) == REPLY
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all("usage" not in chunk for chunk in chunks)


async def test_stream_usage_chunk_only_when_asked(http: httpx.AsyncClient) -> None:
    body = chat(stream=True, stream_options={"include_usage": True})
    chunks = chunks_of(await read_events(http, "/chat/completions", body))
    *others, usage_chunk = chunks
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 10
    assert all(chunk["usage"] is None for chunk in others)


@pytest.mark.parametrize("k", [1, 3, 20])
async def test_chunks_header_gives_exactly_k_content_chunks(
    http: httpx.AsyncClient, k: int
) -> None:
    headers = {"x-mock-chunks": str(k)}
    events = await read_events(http, "/chat/completions", chat(stream=True), headers=headers)
    pieces = content_of(chunks_of(events))
    assert len(pieces) == k
    whole = (await http.post("/chat/completions", json=chat(), headers=headers)).json()
    assert "".join(pieces) == whole["choices"][0]["message"]["content"]
    assert whole["usage"]["completion_tokens"] == k


async def test_sdk_streams_chat(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        usage = chunk.usage or usage
    assert text == REPLY
    assert usage is not None and usage.total_tokens == 17


async def test_first_delay_is_honoured(http: httpx.AsyncClient) -> None:
    started = time.perf_counter()
    response = await http.post("/chat/completions", json=chat(model="gpt-4o-mini+delay=300"))
    assert response.status_code == 200
    assert time.perf_counter() - started >= 0.25

    started = time.perf_counter()
    async with http.stream(
        "POST",
        "/chat/completions",
        json=chat(stream=True),
        headers={"x-mock-first-delay-ms": "300"},
    ) as stream:
        assert time.perf_counter() - started >= 0.25
        await stream.aread()


@pytest.mark.parametrize(
    ("model", "headers"), [("gpt-4o-mini+error=429", {}), ("gpt-4o-mini", {"x-mock-status": "429"})]
)
async def test_error_injection_answers_status_and_openai_error_body(
    http: httpx.AsyncClient, model: str, headers: dict[str, str]
) -> None:
    response = await http.post("/chat/completions", json=chat(model=model), headers=headers)
    assert response.status_code == 429
    assert response.json() == {
        "error": {
            "message": "mock error 429",
            "type": "mock_error",
            "code": "mock_429",
            "param": None,
        }
    }


async def test_sdk_sees_injected_error(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        await sdk.chat.completions.create(model="gpt-4o-mini+error=503", messages=USER)
    assert caught.value.status_code == 503


# --- misbehaving streams ---------------------------------------------------------------


async def test_disconnect_after_truncates_the_stream(
    http: httpx.AsyncClient, mock: MockUpstreamServer
) -> None:
    raw = b""
    with pytest.raises(httpx.RemoteProtocolError):
        async with http.stream(
            "POST", "/chat/completions", json=chat(stream=True, model="gpt-4o-mini+disconnect=3")
        ) as response:
            async for data in response.aiter_raw():
                raw += data
    assert raw.count(b'"content":"') == 1 + 3  # role chunk + three pieces
    assert b"[DONE]" not in raw
    event = await mock.state.wait_for_event("disconnect_injected", timeout=2)
    assert event["chunks_sent"] == 3
    assert not [e for e in mock.state.events if e["kind"] == "client_disconnected"]


async def test_stall_makes_the_client_read_timeout_fire(
    mock: MockUpstreamServer,
) -> None:
    timeout = httpx.Timeout(5, read=0.3)
    async with httpx.AsyncClient(base_url=mock.base_url, timeout=timeout) as http:
        pieces = []
        with pytest.raises(httpx.ReadTimeout):
            body = chat(stream=True, model="gpt-4o-mini+stall=2")
            async with http.stream("POST", "/chat/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if '"content":"' in line:
                        pieces.append(line)
    assert len(pieces) == 1 + 2
    event = await mock.state.wait_for_event("client_disconnected", timeout=2)
    assert event["chunks_sent"] == 2


async def test_client_closing_mid_stream_is_observed(mock: MockUpstreamServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", mock.port)
    body = json.dumps(chat(stream=True, model="gpt-4o-mini+chunks=20+chunk_delay=50")).encode()
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: mock\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    received = b""
    while received.count(b"data: ") < 3:  # role chunk + two content chunks
        received += await reader.read(65536)
    writer.close()
    await writer.wait_closed()

    event = await mock.state.wait_for_event("client_disconnected", timeout=2)
    assert event["path"] == "/v1/chat/completions"
    assert 2 <= event["chunks_sent"] < 20
    assert not [e for e in mock.state.events if e["kind"] == "stream_completed"]


async def test_completed_stream_is_observed(http: httpx.AsyncClient, mock: MockUpstreamServer):
    await read_events(http, "/chat/completions", chat(stream=True))
    event = await mock.state.wait_for_event("stream_completed", timeout=2)
    assert event["chunks_sent"] == 10


async def test_wait_for_event_times_out() -> None:
    with pytest.raises(TimeoutError):
        await MockState().wait_for_event("stream_completed", timeout=0.05)


# --- tool calls ------------------------------------------------------------------------

TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


async def test_tool_call_is_streamed_in_argument_pieces(sdk: openai.AsyncOpenAI) -> None:
    messages = [{"role": "user", "content": "please call a tool"}]
    stream = await sdk.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=TOOLS, stream=True
    )
    ids, names, arguments, finish = [], [], [], None
    async for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for call in choice.delta.tool_calls or []:
            ids += [call.id] if call.id else []
            names += [call.function.name] if call.function.name else []
            arguments += [call.function.arguments] if call.function.arguments else []
    assert ids == ["call_mock_1"] and names == ["lookup"]
    assert len(arguments) >= 2 and json.loads("".join(arguments)) == {"x": 1}
    assert finish == "tool_calls"


async def test_tool_call_header_forces_a_call(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        tools=TOOLS,
        extra_headers={"x-mock-tool-call": "1"},
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls[0].function.name == "lookup"
    assert choice.message.tool_calls[0].function.arguments == '{"x": 1}'


# --- model-name options ----------------------------------------------------------------


async def test_model_name_options_are_applied_and_stripped(sdk: openai.AsyncOpenAI) -> None:
    model = "gpt-4o-mini+chunks=4+cached=3+reasoning=5+model=gpt-4o-mini-2024-07-18"
    completion = await sdk.chat.completions.create(model=model, messages=USER)
    assert completion.model == "gpt-4o-mini-2024-07-18"
    usage = completion.usage
    assert usage.prompt_tokens_details.cached_tokens == 3
    assert usage.completion_tokens_details.reasoning_tokens == 5
    assert usage.completion_tokens == 4 + 5

    plain = await sdk.chat.completions.create(model="gpt-4o+chunks=2", messages=USER)
    assert plain.model == "gpt-4o"


# --- other endpoints -------------------------------------------------------------------


async def test_completions_stream_and_not(http: httpx.AsyncClient) -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"}
    whole = (await http.post("/completions", json=body)).json()
    assert whole["object"] == "text_completion"
    assert whole["choices"][0]["text"] == "Mock reply to: Say hi"

    body |= {"stream": True, "stream_options": {"include_usage": True}}
    chunks = chunks_of(await read_events(http, "/completions", body))
    assert (
        "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "Mock reply to: Say hi"
    )
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 2


async def test_responses_non_stream(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(model="gpt-4o-mini", input="Tell me a joke")
    assert response.id.startswith("resp_mock_")
    assert response.output_text == "Mock reply to: Tell me a joke"
    assert response.usage.input_tokens == 4 and response.usage.output_tokens == 7


async def test_responses_stream_is_parsed_by_the_sdk(sdk: openai.AsyncOpenAI) -> None:
    async with sdk.responses.stream(model="gpt-4o-mini", input=USER) as stream:
        deltas = [
            event.delta async for event in stream if event.type == "response.output_text.delta"
        ]
        final = await stream.get_final_response()
    assert "".join(deltas) == REPLY
    assert final.output_text == REPLY
    assert final.usage.total_tokens == 17


async def test_responses_stream_event_order(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.responses.create(
        model="gpt-4o-mini", input="a b", stream=True, extra_headers={"x-mock-chunks": "2"}
    )
    events = [event async for event in stream]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 2
    for kind in ("output_item.added", "content_part.added", "output_text.done", "output_item.done"):
        assert f"response.{kind}" in kinds


async def test_embeddings_are_deterministic(sdk: openai.AsyncOpenAI) -> None:
    one = await sdk.embeddings.create(model="text-embedding-3-small", input="hello world")
    many = await sdk.embeddings.create(model="text-embedding-3-small", input=["x", "hello world"])
    assert len(one.data[0].embedding) == 8
    assert [d.index for d in many.data] == [0, 1]
    assert many.data[1].embedding == one.data[0].embedding
    assert one.usage.prompt_tokens == 2 and one.model == "text-embedding-3-small"


async def test_models_are_listed(sdk: openai.AsyncOpenAI) -> None:
    models = [model async for model in sdk.models.list()]
    assert "gpt-4o-mini" in {model.id for model in models}
    assert all(model.owned_by == "mock" for model in models)


async def test_unknown_path_is_404_in_openai_shape(http: httpx.AsyncClient) -> None:
    response = await http.post("/nope", json={})
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "not_found",
        None,
    )


async def test_malformed_json_is_400_in_openai_shape(http: httpx.AsyncClient) -> None:
    response = await http.post("/chat/completions", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


# --- observations ----------------------------------------------------------------------


async def test_requests_are_recorded_and_served_until_reset(
    http: httpx.AsyncClient, mock: MockUpstreamServer
) -> None:
    await http.post("/chat/completions", json=chat(), headers={"X-Run-Id": "r1"})
    seen = mock.state.requests[-1]
    assert (seen["method"], seen["path"], seen["json"]) == ("POST", "/v1/chat/completions", chat())
    assert seen["headers"]["x-run-id"] == "r1"

    root = mock.base_url.removesuffix("/v1")
    served = (await http.get(f"{root}/_mock/requests")).json()["data"]
    assert served[-1]["id"] == seen["id"]
    await http.post(f"{root}/_mock/reset")
    assert (await http.get(f"{root}/_mock/events")).json()["data"] == []
    assert len(mock.state.requests) == 0
