"""Capture: what a response says (text, tool calls, usage, model, TTFT), streamed or whole."""

from __future__ import annotations

import json
from typing import Any

import pytest

from persistence.record import CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES
from pricing.usage import Usage
from proxy.capture import Capture
from proxy.sse import SSEEvent, parse_event

STARTED = 100.0
DONE = parse_event(b"data: [DONE]\n\n")
PING = parse_event(b": ping\n\n")


def sse(obj: Any, event: str | None = None) -> SSEEvent:
    head = f"event: {event}\n" if event else ""
    return parse_event(f"{head}data: {json.dumps(obj)}\n\n".encode())


def chat_chunk(
    delta: dict | None = None, finish_reason: str | None = None, **extra: Any
) -> SSEEvent:
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish_reason}
    return sse({"id": "c1", "model": "gpt-4o-mini-2024-07-18", "choices": [choice], **extra})


def usage_chunk(**usage: int) -> SSEEvent:
    return sse({"id": "c1", "model": "gpt-4o-mini-2024-07-18", "choices": [], "usage": usage})


def feed(capture: Capture, events: list[SSEEvent], start: float = 100.5) -> list[bool]:
    """Observe events 0.25 s apart from `start`; return what observe said to relay."""
    return [capture.observe(event, start + 0.25 * i) for i, event in enumerate(events)]


# -- chat streams -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role_delta",
    [
        {"role": "assistant"},
        {"role": "assistant", "content": ""},
        {"role": "assistant", "content": None, "refusal": None},
    ],
)
def test_role_only_chunk_does_not_stamp_ttft(role_delta: dict) -> None:
    capture = Capture(CHAT, started=STARTED)

    capture.observe(chat_chunk(role_delta), 100.1)

    assert capture.first_token_at is None
    assert capture.ttft_ms is None
    assert capture.text is None


def test_first_content_delta_stamps_ttft_once_with_its_time() -> None:
    capture = Capture(CHAT, started=STARTED)

    capture.observe(chat_chunk({"role": "assistant", "content": ""}), 100.125)
    capture.observe(chat_chunk({"content": "Hel"}), 100.25)
    capture.observe(chat_chunk({"content": "lo"}), 100.5)

    assert capture.first_token_at == 100.25
    assert capture.ttft_ms == 250.0
    assert capture.text == "Hello"


def test_full_chat_stream_captures_text_finish_reason_model_and_done() -> None:
    capture = Capture(CHAT, started=STARTED)
    events = [
        chat_chunk({"role": "assistant", "content": ""}),
        chat_chunk({"content": "Hi"}),
        chat_chunk({"content": " there"}),
        chat_chunk({}, finish_reason="stop"),
        DONE,
    ]

    relayed = feed(capture, events)

    assert relayed == [True] * 5
    assert capture.text == "Hi there"
    assert capture.finish_reason == "stop"
    assert capture.response_model == "gpt-4o-mini-2024-07-18"
    assert capture.finished is True
    assert capture.ttft_ms == 750.0
    assert capture.usage is None


def test_stream_is_not_finished_before_done() -> None:
    capture = Capture(CHAT, started=STARTED)

    feed(capture, [chat_chunk({"content": "Hi"}), chat_chunk({}, finish_reason="stop")])

    assert capture.finished is False


def test_response_model_is_taken_from_the_first_chunk_that_names_one() -> None:
    capture = Capture(CHAT, started=STARTED)

    capture.observe(sse({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}), 100.1)
    capture.observe(sse({"model": "first", "choices": [{"delta": {"content": "a"}}]}), 100.2)
    capture.observe(sse({"model": "second", "choices": [{"delta": {"content": "b"}}]}), 100.3)

    assert capture.response_model == "first"


def test_tool_call_deltas_are_merged_by_index() -> None:
    capture = Capture(CHAT, started=STARTED)
    calls = [
        [
            {
                "index": 0,
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ],
        [{"index": 0, "function": {"arguments": '{"city":'}}],
        [
            {
                "index": 1,
                "id": "call_b",
                "type": "function",
                "function": {"name": "get_time", "arguments": '{"tz"'},
            }
        ],
        [{"index": 0, "function": {"arguments": ' "Paris"}'}}],
        [{"index": 1, "function": {"arguments": ': "CET"}'}}],
    ]
    events = [chat_chunk({"role": "assistant", "content": None})]
    events += [chat_chunk({"tool_calls": delta}) for delta in calls]
    events += [chat_chunk({}, finish_reason="tool_calls"), DONE]

    feed(capture, events)

    assert capture.tool_call_list == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {
            "id": "call_b",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"tz": "CET"}'},
        },
    ]
    assert capture.finish_reason == "tool_calls"
    assert capture.text is None
    assert capture.first_token_at == 100.75  # the first tool-call delta, not the role chunk


def test_tool_call_list_is_ordered_by_index_not_arrival() -> None:
    capture = Capture(CHAT, started=STARTED)

    feed(
        capture,
        [
            chat_chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g"}}]}),
            chat_chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}),
        ],
    )

    assert [call["id"] for call in capture.tool_call_list] == ["a", "b"]


@pytest.mark.parametrize(
    "delta",
    [
        {"refusal": "I can't help with that."},
        {"reasoning_content": "Let me think"},
        {"reasoning": "Let me think"},
        {"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "f"}}]},
    ],
    ids=["refusal", "reasoning_content", "reasoning", "tool_call"],
)
def test_non_text_output_deltas_stamp_ttft(delta: dict) -> None:
    capture = Capture(CHAT, started=STARTED)

    capture.observe(chat_chunk({"role": "assistant"}), 100.1)
    capture.observe(chat_chunk(delta), 100.5)
    capture.observe(chat_chunk({"content": "later"}), 100.9)

    assert capture.ttft_ms == 500.0


def test_usage_chunk_airuns_asked_for_is_not_relayed_but_is_captured() -> None:
    capture = Capture(CHAT, started=STARTED, usage_injected=True)
    events = [
        chat_chunk({"content": "Hi"}, usage=None),
        chat_chunk({}, finish_reason="stop", usage=None),
        usage_chunk(
            prompt_tokens=12,
            completion_tokens=3,
            total_tokens=15,
            prompt_tokens_details={"cached_tokens": 4},
            completion_tokens_details={"reasoning_tokens": 1},
        ),
        DONE,
    ]

    relayed = feed(capture, events)

    assert relayed == [True, True, False, True]
    assert capture.usage == Usage(12, 3, 15, cached_tokens=4, reasoning_tokens=1)


def test_usage_chunk_the_client_asked_for_is_relayed() -> None:
    capture = Capture(CHAT, started=STARTED, usage_injected=False)

    relayed = capture.observe(usage_chunk(prompt_tokens=12, completion_tokens=3), 101.0)

    assert relayed is True
    assert capture.usage == Usage(12, 3, 15)


def test_empty_choices_chunk_without_usage_is_relayed_even_when_usage_injected() -> None:
    capture = Capture(CHAT, started=STARTED, usage_injected=True)
    filter_results = sse({"choices": [], "prompt_filter_results": [{"prompt_index": 0}]})

    assert capture.observe(filter_results, 100.1) is True
    assert capture.observe(sse({"choices": [], "usage": None}), 100.2) is True


def test_usage_on_a_chunk_with_choices_is_relayed_even_when_usage_injected() -> None:
    capture = Capture(CHAT, started=STARTED, usage_injected=True)
    event = chat_chunk({}, finish_reason="stop", usage={"prompt_tokens": 2, "completion_tokens": 1})

    assert capture.observe(event, 100.1) is True
    assert capture.usage == Usage(2, 1, 3)


@pytest.mark.parametrize(
    "event",
    [
        PING,
        parse_event(b"event: ping\n\n"),
        parse_event(b"data: not json\n\n"),
        parse_event(b"data: [1, 2]\n\n"),
        parse_event(b"data: 42\n\n"),
    ],
    ids=["comment", "event-without-data", "not-json", "json-array", "json-number"],
)
def test_events_without_a_json_object_are_relayed_and_ignored(event: SSEEvent) -> None:
    capture = Capture(CHAT, started=STARTED, usage_injected=True)

    assert capture.observe(event, 100.1) is True
    assert capture.events == 0
    assert capture.first_token_at is None
    assert capture.finished is False


def test_error_chunk_in_a_chat_stream_sets_the_error_message() -> None:
    capture = Capture(CHAT, started=STARTED)

    relayed = capture.observe(sse({"error": {"message": "overloaded", "type": "server_error"}}), 1)

    assert relayed is True
    assert capture.error_message == "overloaded"


def test_legacy_completions_stream_captures_text_and_ttft() -> None:
    capture = Capture(COMPLETIONS, started=STARTED)
    events = [
        sse(
            {
                "model": "gpt-3.5-turbo-instruct",
                "choices": [{"index": 0, "text": "", "finish_reason": None}],
            }
        ),
        sse(
            {
                "model": "gpt-3.5-turbo-instruct",
                "choices": [{"index": 0, "text": "Once", "finish_reason": None}],
            }
        ),
        sse(
            {
                "model": "gpt-3.5-turbo-instruct",
                "choices": [{"index": 0, "text": " upon", "finish_reason": "length"}],
            }
        ),
        DONE,
    ]

    feed(capture, events)

    assert capture.text == "Once upon"
    assert capture.finish_reason == "length"
    assert capture.response_model == "gpt-3.5-turbo-instruct"
    assert capture.ttft_ms == 750.0  # the empty first text is not a token
    assert capture.finished is True


# -- Responses API streams ----------------------------------------------------------------------


def responses_event(kind: str, **fields: Any) -> SSEEvent:
    return sse({"type": kind, **fields}, event=kind)


COMPLETED_RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "model": "gpt-4.1-2025-04-14",
    "status": "completed",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello world", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "lookup",
            "arguments": '{"q": "x"}',
        },
    ],
    "usage": {
        "input_tokens": 20,
        "input_tokens_details": {"cached_tokens": 8},
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 29,
    },
}


def test_responses_stream_captures_text_ttft_usage_model_and_tool_calls() -> None:
    capture = Capture(RESPONSES, started=STARTED, usage_injected=True)
    created = {"id": "resp_1", "model": "gpt-4.1-2025-04-14", "status": "in_progress"}
    events = [
        responses_event("response.created", response=created),
        responses_event("response.output_item.added", output_index=0, item={"type": "message"}),
        responses_event("response.output_text.delta", delta="Hello"),
        responses_event("response.output_text.delta", delta=" world"),
        responses_event("response.output_text.done", text="Hello world"),
        responses_event("response.completed", response=COMPLETED_RESPONSE),
    ]

    relayed = feed(capture, events)

    assert relayed == [True] * 6
    assert capture.text == "Hello world"  # not doubled by the final response object
    assert capture.ttft_ms == 1000.0
    assert capture.usage == Usage(20, 9, 29, cached_tokens=8, reasoning_tokens=2)
    assert capture.response_model == "gpt-4.1-2025-04-14"
    assert capture.finish_reason == "completed"
    assert capture.finished is True
    assert capture.tool_call_list == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": "x"}'},
        },
    ]


@pytest.mark.parametrize(
    "kind",
    [
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
    ],
)
def test_responses_output_deltas_other_than_text_stamp_ttft(kind: str) -> None:
    capture = Capture(RESPONSES, started=STARTED)

    capture.observe(responses_event("response.created", response={"status": "in_progress"}), 100.1)
    capture.observe(responses_event(kind, delta="x"), 100.5)
    capture.observe(responses_event("response.output_text.delta", delta="y"), 100.9)

    assert capture.ttft_ms == 500.0


def test_responses_incomplete_event_finishes_with_the_incomplete_reason() -> None:
    capture = Capture(RESPONSES, started=STARTED)
    response = {
        "model": "gpt-4.1",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "usage": {"input_tokens": 5, "output_tokens": 16, "total_tokens": 21},
    }

    capture.observe(responses_event("response.incomplete", response=response), 101.0)

    assert capture.finished is True
    assert capture.finish_reason == "max_output_tokens"
    assert capture.usage == Usage(5, 16, 21)


def test_responses_error_event_sets_the_error_message() -> None:
    capture = Capture(RESPONSES, started=STARTED)

    relayed = capture.observe(
        responses_event("error", code="server_error", message="The server had an error"), 101.0
    )

    assert relayed is True
    assert capture.error_message == "The server had an error"


# -- non-streaming bodies -----------------------------------------------------------------------


def body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def test_chat_body_captures_content_finish_reason_model_and_detailed_usage() -> None:
    capture = Capture(CHAT, started=STARTED)

    capture.observe_body(
        body(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "gpt-4o-2024-08-06",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Paris.", "refusal": None},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 30,
                    "completion_tokens": 12,
                    "total_tokens": 42,
                    "prompt_tokens_details": {"cached_tokens": 16, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 5, "audio_tokens": 0},
                },
            }
        )
    )

    assert capture.text == "Paris."
    assert capture.finish_reason == "stop"
    assert capture.response_model == "gpt-4o-2024-08-06"
    assert capture.usage == Usage(30, 12, 42, cached_tokens=16, reasoning_tokens=5)
    assert capture.tool_call_list is None
    assert capture.ttft_ms is None


def test_chat_body_with_tool_calls_captures_them_and_no_text() -> None:
    capture = Capture(CHAT, started=STARTED)
    tool_calls = [
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": '{"x":1}'}},
    ]

    capture.observe_body(
        body(
            {
                "model": "gpt-4o",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": None, "tool_calls": tool_calls},
                        "finish_reason": "tool_calls",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
            }
        )
    )

    assert capture.tool_call_list == tool_calls
    assert capture.text is None
    assert capture.finish_reason == "tool_calls"


def test_completions_body_captures_text() -> None:
    capture = Capture(COMPLETIONS, started=STARTED)

    capture.observe_body(
        body(
            {
                "object": "text_completion",
                "model": "gpt-3.5-turbo-instruct",
                "choices": [{"text": "\n\nThis is a test.", "index": 0, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
            }
        )
    )

    assert capture.text == "\n\nThis is a test."
    assert capture.finish_reason == "length"
    assert capture.usage == Usage(5, 7, 12)


def test_responses_body_captures_output_text_usage_status_and_tool_calls() -> None:
    capture = Capture(RESPONSES, started=STARTED)

    capture.observe_body(body(COMPLETED_RESPONSE))

    assert capture.text == "Hello world"
    assert capture.usage == Usage(20, 9, 29, cached_tokens=8, reasoning_tokens=2)
    assert capture.response_model == "gpt-4.1-2025-04-14"
    assert capture.finish_reason == "completed"
    assert [call["id"] for call in capture.tool_call_list] == ["call_1"]
    assert capture.ttft_ms is None


def test_responses_body_joins_the_text_of_every_output_text_part() -> None:
    capture = Capture(RESPONSES, started=STARTED)

    capture.observe_body(
        body(
            {
                "status": "completed",
                "output": [
                    {
                        "type": "message",
                        "content": [
                            {"type": "output_text", "text": "one "},
                            {"type": "refusal", "refusal": "no"},
                            {"type": "output_text", "text": "two"},
                        ],
                    },
                ],
            }
        )
    )

    assert capture.text == "one two"


def test_embeddings_body_captures_usage_with_zero_completion_tokens() -> None:
    capture = Capture(EMBEDDINGS, started=STARTED)

    capture.observe_body(
        body(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]}],
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 8, "total_tokens": 8},
            }
        )
    )

    assert capture.usage == Usage(8, 0, 8)
    assert capture.response_model == "text-embedding-3-small"
    assert capture.text is None
    assert capture.finish_reason is None


@pytest.mark.parametrize("endpoint", [CHAT, COMPLETIONS, RESPONSES, EMBEDDINGS])
@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b"42",
        b'"text"',
        b"null",
        b"{}",
        b'{"choices": "x"}',
        b'{"choices": []}',
        b'{"choices": {}}',
        b'{"usage": "x"}',
        b'{"usage": {"prompt_tokens": "many"}}',
        b'{"output": null, "status": null}',
    ],
)
def test_garbage_body_is_ignored_without_raising(endpoint: str, raw: bytes) -> None:
    capture = Capture(endpoint, started=STARTED)

    capture.observe_body(raw)

    assert capture.text is None
    assert capture.tool_call_list is None


@pytest.mark.parametrize(
    ("endpoint", "raw"),
    [
        (CHAT, b'{"choices": [null]}'),
        (CHAT, b'{"choices": ["x"]}'),
        (RESPONSES, b'{"output": ["x"]}'),
        (RESPONSES, b'{"output": 5}'),
        (RESPONSES, b'{"status": "failed", "error": "boom"}'),
    ],
)
def test_body_of_unexpected_json_shape_is_ignored_without_raising(
    endpoint: str, raw: bytes
) -> None:
    Capture(endpoint, started=STARTED).observe_body(raw)


@pytest.mark.parametrize(
    "chunk",
    [
        {"choices": [None]},
        {"choices": [{"delta": "x"}]},
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": {"a": 1}}}]}}
            ]
        },
    ],
    ids=["null-choice", "string-delta", "object-arguments"],
)
def test_chunk_of_unexpected_shape_is_relayed_without_raising(chunk: dict) -> None:
    assert Capture(CHAT, started=STARTED).observe(sse(chunk), 100.1) is True


# -- bounded memory and what the upstream says -------------------------------------------------


def test_streamed_text_is_kept_up_to_max_text_while_usage_stays_exact() -> None:
    capture = Capture(CHAT, started=STARTED, max_text=1000)
    pieces = [chat_chunk({"content": f"{n:04d}" * 10}) for n in range(5000)]  # 200,000 chars
    feed(capture, [*pieces, usage_chunk(prompt_tokens=3, completion_tokens=5000)])
    assert capture.text == "".join(f"{n:04d}" * 10 for n in range(25))  # the first 1000 chars
    assert len(capture.text_parts) <= 512  # compacted, not thousands of small strings
    assert capture.usage == Usage(3, 5000, 5003)


def test_text_over_the_cap_in_one_piece_is_cut_at_the_cap() -> None:
    capture = Capture(CHAT, started=STARTED, max_text=10)
    feed(capture, [chat_chunk({"content": "0123456789abcdef"}), chat_chunk({"content": "x"})])
    assert capture.text == "0123456789"


def test_tool_call_arguments_are_kept_up_to_max_text() -> None:
    capture = Capture(CHAT, started=STARTED, max_text=100)
    call = {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}
    deltas = [{"index": 0, "function": {"arguments": "a" * 30}} for _ in range(10)]
    feed(capture, [chat_chunk({"tool_calls": [call]})] + [
        chat_chunk({"tool_calls": [d]}) for d in deltas
    ])  # fmt: skip
    assert capture.tool_call_list[0]["function"]["arguments"] == "a" * 90


def test_usage_that_cannot_be_right_is_dropped_and_the_reason_kept() -> None:
    capture = Capture(CHAT, started=STARTED)
    feed(capture, [chat_chunk({"content": "hi"}), usage_chunk(prompt_tokens=-3,
                                                              completion_tokens=1)])  # fmt: skip
    assert capture.usage is None
    assert capture.usage_problem == "prompt_tokens is out of range (-3)"


@pytest.mark.parametrize(
    "raw, error",
    [
        (b'{"error": {"message": "overloaded", "type": "server_error"}}', "overloaded"),
        (b'{"error": "quota exceeded"}', "quota exceeded"),
        (b'{"error": {"code": 500}}', "{'code': 500}"),
    ],
)
def test_a_body_that_is_only_an_error_sets_the_error_message(raw: bytes, error: str) -> None:
    capture = Capture(CHAT, started=STARTED)
    capture.observe_body(raw)
    assert capture.error_message == error and capture.text is None


def test_a_result_body_with_an_error_field_is_not_an_error() -> None:
    capture = Capture(CHAT, started=STARTED)
    capture.observe_body(body({"choices": [{"message": {"content": "ok"}}], "error": None}))
    capture.observe_body(body({"object": "list", "data": [], "error": {"message": "partial"}}))
    assert capture.error_message is None


def test_responses_failed_event_sets_the_error_and_finishes() -> None:
    capture = Capture(RESPONSES, started=STARTED)
    failed = {"status": "failed", "error": {"code": "server_error", "message": "model crashed"}}
    feed(capture, [responses_event("response.failed", response=failed)])
    assert capture.finished and capture.error_message == "model crashed"
