"""Responses requests → chat messages: what a run stores so it can be read and resumed."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from persistence.conversation import build_conversation, conversation_input, responses_messages
from persistence.record import CHAT, RESPONSES


def responses(input_: Any, **fields: Any) -> dict:
    return {"model": "m", "input": input_, **fields}


def text(kind: str, value: str) -> dict:
    return {"type": kind, "text": value}


def call_item(call_id: str, name: str = "lookup", arguments: str = '{"q":1}') -> dict:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def tool_call(call_id: str, name: str = "lookup", arguments: str = '{"q":1}') -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def output_item(call_id: str, output: Any) -> dict:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def message(role: str, content: Any, **fields: Any) -> dict:
    return {"role": role, "content": content, **fields}


def calls(*call_ids: str) -> list[dict]:
    return [tool_call(call_id) for call_id in call_ids]


USER_HI = message("user", "hi")
IMAGE_URL = "https://example.com/cat.png"
IMAGE = {"type": "input_image", "image_url": IMAGE_URL, "detail": "low"}
CHAT_IMAGE = {"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "low"}}
FILE = {"type": "input_file", "file_id": "file-1", "filename": "a.pdf"}
CHAT_FILE = {"type": "file", "file": {"file_id": "file-1", "filename": "a.pdf"}}
REFUSAL = {"type": "refusal", "refusal": "no"}
REASONING = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "x"}]}
OTHER_ITEMS = [
    REASONING,
    {"type": "item_reference", "id": "msg_1"},
    {"type": "web_search_call", "id": "ws_1", "status": "completed"},
    {"type": "custom_tool_call", "call_id": "c9", "name": "x", "input": "y"},
]


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        pytest.param(responses("hi"), [USER_HI], id="string input is one user message"),
        pytest.param(
            responses("hi", instructions="Be terse."),
            [message("system", "Be terse."), USER_HI],
            id="instructions lead as a system message",
        ),
        pytest.param(responses("hi", instructions=""), [USER_HI], id="empty instructions"),
        pytest.param(responses("hi", instructions=["x"]), [USER_HI], id="odd instructions"),
        pytest.param(responses([]), [], id="empty input list"),
        pytest.param(
            responses([USER_HI, {"type": "message", **message("assistant", "hello")}]),
            [USER_HI, message("assistant", "hello")],
            id="message items with and without a type",
        ),
        pytest.param(
            responses([message("developer", "dev"), message("system", "sys")]),
            [message("system", "dev"), message("system", "sys")],
            id="developer becomes system",
        ),
        pytest.param(
            responses([message("user", [text("input_text", "a")])]),
            [message("user", "a")],
            id="one text part is a plain string",
        ),
        pytest.param(
            responses([message("assistant", [text("output_text", "a"), text("output_text", "b")])]),
            [message("assistant", "a\nb")],
            id="text parts are joined by newlines",
        ),
        pytest.param(
            responses([message("user", [])]), [message("user", "")], id="no parts is empty text"
        ),
        pytest.param(
            responses([message("user", [text("input_text", "what is this?"), IMAGE])]),
            [message("user", [text("text", "what is this?"), CHAT_IMAGE])],
            id="an image makes chat content parts",
        ),
        pytest.param(
            responses([message("user", [FILE, {"type": "input_image", "file_id": "f2"}, IMAGE])]),
            [message("user", [CHAT_FILE, CHAT_IMAGE])],
            id="files kept, an image without a url skipped",
        ),
        pytest.param(
            responses([message("assistant", [REFUSAL])]),
            [message("assistant", [REFUSAL])],
            id="refusal part",
        ),
        pytest.param(
            responses(["hi", call_item("c1"), output_item("c1", "42")]),
            [
                message("assistant", None, tool_calls=calls("c1")),
                message("tool", "42", tool_call_id="c1"),
            ],
            id="a function call and its output (non-dict items skipped)",
        ),
        pytest.param(
            responses([USER_HI, call_item("c1"), call_item("c2"), output_item("c1", "1")]),
            [
                USER_HI,
                message("assistant", None, tool_calls=calls("c1", "c2")),
                message("tool", "1", tool_call_id="c1"),
            ],
            id="consecutive calls merge into one assistant message",
        ),
        pytest.param(
            responses([USER_HI, REASONING, message("assistant", "let me look"), call_item("c1")]),
            [USER_HI, message("assistant", "let me look", tool_calls=calls("c1"))],
            id="calls join the assistant text of their turn",
        ),
        pytest.param(
            responses([call_item("c1"), output_item("c1", "1"), call_item("c2")]),
            [
                message("assistant", None, tool_calls=calls("c1")),
                message("tool", "1", tool_call_id="c1"),
                message("assistant", None, tool_calls=calls("c2")),
            ],
            id="calls after a tool result start a new message",
        ),
        pytest.param(
            responses([output_item("c1", [text("input_text", "a"), text("input_text", "b")])]),
            [message("tool", "a\nb", tool_call_id="c1")],
            id="tool output given as parts",
        ),
        pytest.param(
            responses([output_item("c1", {"odd": True}), output_item("c2", None)]),
            [message("tool", "", tool_call_id="c1"), message("tool", "", tool_call_id="c2")],
            id="tool output of another type is empty text",
        ),
        pytest.param(
            responses([*OTHER_ITEMS, USER_HI]),
            [USER_HI],
            id="reasoning, references and other items are skipped",
        ),
    ],
)
def test_responses_request_as_chat_messages(request_body: dict, expected: list) -> None:
    assert responses_messages(request_body) == expected


@pytest.mark.parametrize(
    "item",
    [None, 7, "text", ["user", "hi"], {}, {"type": None}, {"type": ["message"]},
     {"type": {"a": 1}}, {"role": "user"}, {"role": "user", "content": 5},
     {"role": "tool", "content": "x"}, {"role": ["user"], "content": "x"},
     {"role": {"u": 1}, "content": "x"}, {"type": "message", "role": "bot", "content": "x"},
     {"type": "function_call", "name": "f"}, {"type": "function_call", "call_id": "c"},
     {"type": "function_call", "call_id": 3, "name": "f"},
     {"type": "function_call", "call_id": "c", "name": {"x": 1}},
     {"type": "function_call_output", "output": "x"},
     {"type": "function_call_output", "call_id": ["c"], "output": "x"},
     {"type": "function_call_output", "call_id": "", "output": "x"}],
)  # fmt: skip
def test_unusable_items_are_skipped(item: Any) -> None:
    assert responses_messages(responses([item, USER_HI])) == [USER_HI]


@pytest.mark.parametrize(
    "part",
    [None, 3, "loose text", [], {}, {"type": None}, {"type": ["input_text"]},
     {"type": "input_text"}, {"type": "input_text", "text": 3}, {"type": "input_image"},
     {"type": "input_image", "image_url": {"url": "x"}}, {"type": "input_file"},
     {"type": "input_audio", "input_audio": {}}, {"type": "refusal", "refusal": None}],
)  # fmt: skip
def test_unusable_parts_are_skipped(part: Any) -> None:
    request = responses([message("user", [part, text("input_text", "kept")])])
    assert responses_messages(request) == [message("user", "kept")]


def test_function_call_with_odd_arguments_keeps_the_call() -> None:
    item = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": {"q": 1}}
    assert responses_messages(responses([item]))[0]["tool_calls"] == [tool_call("c1", "f", "")]


@pytest.mark.parametrize(
    "request_body",
    [None, "text", [], {}, {"model": "m"}, {"input": None}, {"input": 5},
     {"input": {"role": "user", "content": "hi"}}, {"messages": [USER_HI]},
     {"_truncated": True, "_bytes": 9_000_000, "instructions": "kept"}],
)  # fmt: skip
def test_requests_without_input_hold_no_conversation(request_body: Any) -> None:
    assert responses_messages(request_body) is None
    assert conversation_input(RESPONSES, request_body) is None


def test_deeply_nested_input_does_not_raise() -> None:
    deep: Any = "bottom"
    for _ in range(10_000):
        deep = [{"type": "input_text", "text": deep, "content": deep}]
    item = {"role": "user", "content": deep}
    assert responses_messages(responses([item, output_item("c", deep)])) == [
        {"role": "user", "content": ""},
        {"role": "tool", "tool_call_id": "c", "content": ""},
    ]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)
# fmt: off
KEYS = st.sampled_from(["type", "role", "content", "call_id", "name", "arguments", "output",
                        "text", "image_url", "file_id", "refusal"])
WORDS = st.sampled_from(["message", "user", "developer", "function_call",
                         "function_call_output", "input_text", "input_image"])
# fmt: on
ITEMISH = st.dictionaries(KEYS, JSON | WORDS)


@given(st.lists(ITEMISH | JSON, max_size=6), JSON)
def test_any_json_converts_without_raising_into_chat_messages(
    items: list, instructions: Any
) -> None:
    messages = responses_messages({"input": items, "instructions": instructions})
    assert isinstance(messages, list)
    for converted in messages:
        assert converted["role"] in {"system", "user", "assistant", "tool"}
        assert isinstance(converted["content"], str | list | None)


def test_input_items_are_copied_not_shared() -> None:
    """The stored request must not change when the conversation is extended."""
    request = responses([{"role": "assistant", "content": "a"}, call_item("c1")])
    messages = responses_messages(request)
    messages[0]["tool_calls"].append("extra")
    assert request["input"][0] == {"role": "assistant", "content": "a"}


@pytest.mark.parametrize(
    ("endpoint", "request_body", "expected"),
    [
        (CHAT, {"messages": [USER_HI]}, [USER_HI]),
        (CHAT, {"input": "hi"}, None),
        (RESPONSES, {"input": "hi"}, [USER_HI]),
        (RESPONSES, {"messages": [USER_HI]}, None),
        ("/v1/embeddings", {"input": "hi"}, None),
        ("/v1/completions", {"prompt": "hi"}, None),
    ],
)
def test_conversation_input_by_endpoint(endpoint: str, request_body: dict, expected: Any) -> None:
    assert conversation_input(endpoint, request_body) == expected


def test_responses_conversation_ends_with_the_captured_reply() -> None:
    calls = [tool_call("call_9", "weather", '{"city":"Paris"}')]
    request = responses("Weather in Paris?", instructions="Use tools.")
    assert build_conversation(request, "Checking.", calls, endpoint=RESPONSES) == [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": calls},
    ]
