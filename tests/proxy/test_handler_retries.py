"""A client's retries through the proxy: the official SDK's own retries (default settings) and
`Idempotency-Key` repeats are recorded as attempts of one call; hostile retry headers change
nothing but that."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from proxy.retries import DEFAULT_CAPACITY

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
MESSAGES = CHAT["messages"]


def attempts(records) -> list[tuple[int, str | None, str, int | None]]:
    return [(r.attempt, r.attempt_of, r.status, r.http_status) for r in records]


async def fail_first_attempt(request: httpx.Request) -> None:
    """An httpx hook: the mock answers 500 to the SDK's first attempt only."""
    if request.headers.get("x-stainless-retry-count") == "0":
        request.headers["x-mock-status"] = "500"


async def test_sdk_default_retries_of_a_502_are_three_attempts_of_one_call(proxy):
    sdk = openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test")
    with pytest.raises(openai.InternalServerError):
        await sdk.chat.completions.create(
            model="gpt-4o-mini+error=502", messages=MESSAGES, extra_headers={"X-Run-Id": "r1"}
        )
    finals = await proxy.wait_final(3)
    first = finals[0].task_id
    assert attempts(finals) == [
        (1, None, "error", 502),
        (2, first, "error", 502),
        (3, first, "error", 502),
    ]
    assert len({r.task_id for r in finals}) == 3
    await sdk.close()


async def test_a_retry_that_succeeds_is_the_calls_last_attempt(proxy):
    hooks = {"request": [fail_first_attempt]}
    async with httpx.AsyncClient(event_hooks=hooks) as client:
        sdk = openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", http_client=client)
        reply = await sdk.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers={"X-Run-Id": "r1"}
        )
        text = "".join([c.choices[0].delta.content or "" async for c in reply if c.choices])
    assert text == "Mock reply to: hello there"
    finals = await proxy.wait_final(2)
    assert attempts(finals) == [(1, None, "error", 500), (2, finals[0].task_id, "completed", 200)]


async def test_sdk_retries_with_a_client_chosen_task_id_are_not_duplicates(proxy):
    """The SDK repeats every header, `X-Task-Id` too: the retries are attempts of that task,
    each stored under an id of its own (the response's `X-Task-Id`), not refused with 409."""
    sdk = openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test")
    headers = {"X-Run-Id": "r1", "X-Task-Id": "my-task"}
    raw = sdk.chat.completions.with_raw_response
    with pytest.raises(openai.InternalServerError) as failed:
        await raw.create(model="gpt-4o-mini+error=503", messages=MESSAGES, extra_headers=headers)
    finals = await proxy.wait_final(3)
    assert [r.task_id for r in finals][0] == "my-task"
    assert attempts(finals) == [
        (1, None, "error", 503),
        (2, "my-task", "error", 503),
        (3, "my-task", "error", 503),
    ]
    assert failed.value.response.headers["x-task-id"] == finals[2].task_id
    await sdk.close()


async def test_a_client_chosen_task_id_sent_again_without_a_retry_is_still_409(proxy):
    headers = {"X-Task-Id": "once", "x-stainless-retry-count": "0"}
    first = await proxy.client.post("/v1/chat/completions", json=CHAT, headers=headers)
    again = await proxy.client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert (first.status_code, again.status_code) == (200, 409)


async def test_an_sdk_call_reusing_a_taken_task_id_gets_one_409_and_is_not_forwarded(proxy):
    """The SDKs retry a 409 unless told not to: the 409 says `x-should-retry: false`, and the
    call it refused is no call a retry could join."""
    taken = await proxy.client.post("/v1/chat/completions", json=CHAT, headers={"X-Task-Id": "t"})
    assert taken.status_code == 200
    forwarded = len(proxy.mock.state.requests)
    sdk = openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="sk-other")
    with pytest.raises(openai.ConflictError) as refused:
        await sdk.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Task-Id": "t"}
        )
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert len(proxy.mock.state.requests) == forwarded
    for count in ("1", "2"):  # as an SDK told to retry anyway would send them
        again = await proxy.client.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={"X-Task-Id": "t", "x-stainless-retry-count": count},
        )
        assert again.status_code == 409
    assert len(proxy.mock.state.requests) == forwarded
    assert [r.task_id for r in proxy.recorder.finals()] == ["t"]
    await sdk.close()


@pytest.mark.parametrize("count", ["1", "999999"])
async def test_a_retry_count_alone_cannot_join_someone_elses_task(proxy, count):
    """Another client's task id with a made-up retry count: a 409, nothing forwarded, and the
    task keeps its place as its call's only attempt."""
    victim = {"X-Run-Id": "theirs", "X-Task-Id": "their-task"}
    assert (await proxy.client.post("/v1/chat/completions", json=CHAT, headers=victim)).is_success
    forged = {"X-Run-Id": "mine", "X-Task-Id": "their-task", "x-stainless-retry-count": count}
    other = {**CHAT, "messages": [{"role": "user", "content": "something else"}]}
    response = await proxy.client.post("/v1/chat/completions", json=other, headers=forged)
    assert response.status_code == 409
    assert len(proxy.mock.state.requests) == 1
    assert attempts(proxy.recorder.finals()) == [(1, None, "completed", 200)]


async def test_requests_repeating_an_idempotency_key_are_attempts_of_one_call(proxy):
    headers = {"X-Run-Id": "r1", "Idempotency-Key": "order-42"}
    for _ in range(2):
        response = await proxy.client.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert response.status_code == 200
    other = await proxy.client.post(
        "/v1/chat/completions", json=CHAT, headers={"X-Run-Id": "r1", "Idempotency-Key": "o-43"}
    )
    assert other.status_code == 200
    finals = await proxy.wait_final(3)
    assert [(r.attempt, r.attempt_of) for r in finals] == [
        (1, None),
        (2, finals[0].task_id),
        (1, None),
    ]


async def test_untracked_calls_are_never_attempts(proxy):
    headers = {"X-Run-Track": "off", "x-stainless-retry-count": "0"}
    await proxy.client.post("/v1/chat/completions", json=CHAT, headers=headers)
    headers["x-stainless-retry-count"] = "1"
    response = await proxy.client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert response.status_code == 200 and proxy.recorder.records == []


HOSTILE = [
    {"x-stainless-retry-count": "-1"},
    {"x-stainless-retry-count": "1e30"},
    {"x-stainless-retry-count": "18446744073709551616"},
    {"x-stainless-retry-count": "9" * 40},
    {"x-stainless-retry-count": "NaN"},
    {"x-stainless-retry-count": "1" * 10_000},
    {"Idempotency-Key": "k" * 10_240},
    {"Idempotency-Key": "a%2Fb"},
    {"Idempotency-Key": b"\xed\xa0\x80"},  # a lone surrogate, UTF-8-encoded
    {"Idempotency-Key": b"caf\xc3\xa9"},
]


@pytest.mark.parametrize("headers", HOSTILE)
async def test_hostile_retry_headers_are_proxied_and_recorded_as_calls(proxy, headers):
    """Forwarded as they came: the fake upstream (aiohttp) refuses a header line over 8 KiB
    with a 400, which reaches the client as the upstream's answer."""
    huge = any(len(value) > 8190 for value in headers.values())
    for _ in range(2):
        response = await proxy.client.post(
            "/v1/chat/completions", json=CHAT, headers={"X-Run-Id": "r1", **headers}
        )
        assert response.status_code == (400 if huge else 200)
    finals = await proxy.wait_final(2)
    assert {r.http_status for r in finals} == {response.status_code}
    expected = (2, finals[0].task_id) if headers == {"Idempotency-Key": "a%2Fb"} else (1, None)
    assert (finals[1].attempt, finals[1].attempt_of) == expected
    assert {r.status for r in finals} == {"error" if huge else "completed"}


async def test_a_nul_in_a_retry_header_does_not_break_the_server(proxy):
    """httpx refuses to send a NUL, so this request is written by hand; the next call is
    served as usual."""
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = b'{"model":"gpt-4o-mini","messages":[]}'
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"x-stainless-retry-count: 1\x00\r\nidempotency-key: a\x00b\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    assert status_line.split()[1] == b"400"  # the HTTP parser refuses a NUL in a header
    after = await proxy.client.post("/v1/chat/completions", json=CHAT)
    assert after.status_code == 200


def test_the_remembered_calls_are_bounded_by_default() -> None:
    assert 0 < DEFAULT_CAPACITY <= 100_000
