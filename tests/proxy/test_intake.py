"""The request rewrite, table by table: what is parsed, where it is routed, what is recorded of
it, and the exact bytes sent upstream."""

from __future__ import annotations

import json

import pytest

from persistence.record import CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES
from proxy.errors import BadRequest
from proxy.intake import parse_body, prepare
from proxy.routing import Router
from proxy.settings import parse_settings

ROUTER = Router(
    parse_settings(
        """
providers:
  mock: {base_url: "http://127.0.0.1:9/v1"}
  other: {base_url: "http://127.0.0.1:9/v1"}
models: [{name: fast, provider: other, model: gpt-4o-mini}]
default_provider: mock
""",
        {},
    )
)
JSON = b"application/json"


@pytest.mark.parametrize(
    "method, endpoint, content_type, body, parsed",
    [
        ("POST", CHAT, None, b'{"model": "m"}', {"model": "m"}),
        ("POST", "/v1/files", None, b'{"a": 1}', None),  # pass-through: not read
        ("POST", "/v1/files", JSON, b'{"a": 1}', {"a": 1}),
        ("POST", "/v1/files", b"Application/JSON; charset=utf-8", b"[1]", [1]),
        ("GET", CHAT, JSON, b'{"a": 1}', None),
        ("POST", CHAT, None, b"", None),
        ("POST", CHAT, None, b'{"n": 123456789012345678901234567890}',
         {"n": 123456789012345678901234567890}),
    ],
)  # fmt: skip
def test_only_bodies_airuns_needs_are_parsed(method, endpoint, content_type, body, parsed):
    assert parse_body(method, endpoint, content_type, body) == parsed


@pytest.mark.parametrize("body", [b"{oops", b"[" * 2000 + b"]" * 2000, b'{"a": }'])
def test_a_body_that_is_not_json_is_a_400(body):
    with pytest.raises(BadRequest) as refused:
        parse_body("POST", CHAT, None, body)
    assert refused.value.code == "invalid_json"


def prepared(request, endpoint=CHAT, *, track=True, keep=True, max_kept=10_000):
    body = json.dumps(request).encode()
    return prepare(
        ROUTER, endpoint, request, body, track=track, keep_request=keep, max_kept=max_kept
    )


@pytest.mark.parametrize(
    "model, provider, upstream_model",
    [
        ("gpt-4o", "mock", "gpt-4o"),
        ("fast", "other", "gpt-4o-mini"),
        ("other/gpt-4.1", "other", "gpt-4.1"),
        ("mock/org/model", "mock", "org/model"),
        (None, "mock", None),
    ],
)
def test_calls_are_routed_and_the_model_rewritten_only_when_needed(model, provider, upstream_model):
    request = {"model": model, "messages": []} if model else {"messages": []}
    result = prepared(request)
    assert (result.provider, result.model, result.upstream_model) == (
        provider, model, upstream_model
    )  # fmt: skip
    sent = json.loads(result.body)
    assert sent.get("model") == upstream_model
    if model == upstream_model:
        assert result.body == json.dumps(request).encode()  # the bytes as they came


@pytest.mark.parametrize(
    "endpoint, request_, track, injected, options",
    [
        (CHAT, {"stream": True}, True, True, {"include_usage": True}),
        (CHAT, {"stream": True, "stream_options": {"x": 1}}, True, True,
         {"x": 1, "include_usage": True}),
        (CHAT, {"stream": True, "stream_options": {"include_usage": True}}, True, False,
         {"include_usage": True}),
        (COMPLETIONS, {"stream": True}, True, True, {"include_usage": True}),
        (RESPONSES, {"stream": True}, True, False, None),
        (CHAT, {"stream": True}, False, False, None),  # tracking off: forwarded untouched
        (CHAT, {"stream": False}, True, False, None),
    ],
)  # fmt: skip
def test_tracked_streams_ask_for_usage_when_the_client_did_not(
    endpoint, request_, track, injected, options
):
    result = prepared({"model": "m", **request_}, endpoint, track=track)
    assert result.usage_injected is injected
    assert json.loads(result.body).get("stream_options") == options


@pytest.mark.parametrize("stream", ["yes", 1, 0, [], {}])
def test_stream_must_be_a_boolean(stream):
    with pytest.raises(BadRequest) as refused:
        prepared({"model": "m", "stream": stream})
    assert refused.value.param == "stream"


def test_stream_is_read_only_on_the_json_endpoints():
    assert prepared({"model": "m", "stream": "yes"}, "/v1/files").stream is False
    assert prepared({"model": "m", "stream": None}).stream is False


@pytest.mark.parametrize("model", [1, ["m"], {"m": 1}, True])
def test_model_must_be_a_string(model):
    with pytest.raises(BadRequest) as refused:
        prepared({"model": model})
    assert refused.value.param == "model"


@pytest.mark.parametrize(
    "track, keep, max_kept, recorded",
    [
        (True, True, 10_000, {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        (True, True, 10, {"model": "m", "_truncated": True, "_bytes": 63}),
        (True, False, 10_000, None),
        (False, True, 10_000, None),
    ],
)
def test_what_is_recorded_of_the_request(track, keep, max_kept, recorded):
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert prepared(request, track=track, keep=keep, max_kept=max_kept).request == recorded


def test_a_body_that_is_not_an_object_is_routed_to_the_default_and_sent_as_it_is():
    result = prepare(
        ROUTER, EMBEDDINGS, [1, 2], b"[1, 2]", track=True, keep_request=True, max_kept=100
    )
    assert (result.provider, result.body, result.request) == ("mock", b"[1, 2]", None)
