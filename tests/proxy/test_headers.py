"""Tracking-header validation and the headers forwarded each way."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from proxy.errors import BadRequest
from proxy.headers import (
    TRACKING_HEADERS,
    Tracking,
    forwarded_headers,
    parse_tracking,
    returned_headers,
)

TITLES = {
    b"x-run-id": "X-Run-Id",
    b"x-run-name": "X-Run-Name",
    b"x-run-source-type": "X-Run-Source-Type",
    b"x-run-source-id": "X-Run-Source-Id",
    b"x-run-metadata": "X-Run-Metadata",
    b"x-task-id": "X-Task-Id",
    b"x-task-name": "X-Task-Name",
    b"x-user-id": "X-User-Id",
    b"x-run-track": "X-Run-Track",
}


def rejected(values: dict[bytes, bytes]) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse_tracking(values)
    assert caught.value.status == 400
    return caught.value


# -- parse_tracking -----------------------------------------------------------------------------


def test_no_tracking_headers_give_default_tracking() -> None:
    assert parse_tracking({}) == Tracking(track=True)


def test_every_tracking_header_is_read_into_its_field() -> None:
    tracking = parse_tracking(
        {
            b"x-run-id": b"run-1",
            b"x-run-name": "R\u00e9sum\u00e9 \u2615".encode(),
            b"x-run-source-type": b"agent",
            b"x-run-source-id": b"agent/42",
            b"x-run-metadata": b'{"team": "search", "n": 1}',
            b"x-task-id": b"task.1",
            b"x-task-name": b"summarize",
            b"x-user-id": b"user@example.com",
            b"x-run-track": b"on",
        }
    )

    assert tracking == Tracking(
        run_id="run-1",
        run_name="R\u00e9sum\u00e9 \u2615",
        source_type="agent",
        source_id="agent/42",
        run_metadata={"team": "search", "n": 1},
        task_id="task.1",
        task_name="summarize",
        user_id="user@example.com",
        track=True,
    )


@pytest.mark.parametrize("name", [b"x-run-id", b"x-task-id"])
@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"a", "a"),
        (b"run-1", "run-1"),
        (b"A.b_c:d-9", "A.b_c:d-9"),
        (b"0123456789", "0123456789"),
        (b"x" * 128, "x" * 128),
        (b"  padded  ", "padded"),
    ],
    ids=["one-char", "dash", "whole-charset", "digits", "128-chars", "surrounding-space"],
)
def test_identifier_of_the_allowed_charset_is_accepted(name: bytes, raw: bytes, value: str) -> None:
    tracking = parse_tracking({name: raw})

    assert (tracking.run_id if name == b"x-run-id" else tracking.task_id) == value


@pytest.mark.parametrize("name", [b"x-run-id", b"x-task-id"])
@pytest.mark.parametrize(
    "raw",
    [
        b"x" * 129,
        b"run 1",
        b"run/1",
        b"run#1",
        b"run?x=1",
        b"run\t1",
        "r\u00fcn".encode(),
        "\uff21\uff22".encode(),  # full-width letters
        "\u0661\u0662".encode(),  # Arabic-Indic digits
    ],
    ids=[
        "129-chars",
        "space",
        "slash",
        "hash",
        "query",
        "tab",
        "umlaut",
        "fullwidth",
        "arabic-digits",
    ],
)
def test_identifier_outside_the_charset_or_length_is_a_400_naming_the_header(
    name: bytes, raw: bytes
) -> None:
    error = rejected({name: raw})

    assert error.param == TITLES[name]
    assert TITLES[name] in error.message


@pytest.mark.parametrize("name", sorted(TRACKING_HEADERS))
@pytest.mark.parametrize("raw", [b"", b"   ", b"\t"], ids=["empty", "spaces", "tab"])
def test_empty_value_of_any_tracking_header_is_a_400_naming_it(name: bytes, raw: bytes) -> None:
    error = rejected({name: raw})

    assert error.param == TITLES[name]
    assert TITLES[name] in error.message


@pytest.mark.parametrize("name", sorted(TRACKING_HEADERS))
def test_non_utf8_value_of_any_tracking_header_is_a_400_naming_it(name: bytes) -> None:
    error = rejected({name: b"caf\xe9"})

    assert error.param == TITLES[name]


def test_one_bad_header_rejects_the_request_even_when_others_are_valid() -> None:
    error = rejected({b"x-run-id": b"ok", b"x-task-id": b"not ok"})

    assert error.param == "X-Task-Id"


@pytest.mark.parametrize(
    ("raw", "metadata"),
    [
        (b"{}", {}),
        (b'{"a": 1}', {"a": 1}),
        (
            b'{"nested": {"list": [1, "two", null]}, "flag": true}',
            {"nested": {"list": [1, "two", None]}, "flag": True},
        ),
        ('{"name": "\u00e9t\u00e9"}'.encode(), {"name": "\u00e9t\u00e9"}),
    ],
)
def test_metadata_json_object_is_parsed(raw: bytes, metadata: dict) -> None:
    assert parse_tracking({b"x-run-metadata": raw}).run_metadata == metadata


@pytest.mark.parametrize(
    "raw",
    [b"{", b"{'a': 1}", b"a=1", b"[1, 2]", b"[]", b"null", b"1", b'"text"', b"true"],
    ids=[
        "truncated",
        "single-quotes",
        "form",
        "array",
        "empty-array",
        "null",
        "number",
        "string",
        "bool",
    ],
)
def test_metadata_that_is_not_a_json_object_is_a_400(raw: bytes) -> None:
    error = rejected({b"x-run-metadata": raw})

    assert error.param == "X-Run-Metadata"
    assert "JSON object" in error.message


def test_deeply_nested_metadata_is_a_400_not_a_crash() -> None:
    error = rejected({b"x-run-metadata": b"[" * 5000})

    assert error.param == "X-Run-Metadata"


@pytest.mark.parametrize(
    ("raw", "track"),
    [(b"on", True), (b"off", False), (b"OFF", False), (b"On", True), (b" off ", False)],
)
def test_run_track_on_or_off_sets_track(raw: bytes, track: bool) -> None:
    assert parse_tracking({b"x-run-track": raw}).track is track


def test_tracking_is_on_without_run_track_header() -> None:
    assert parse_tracking({b"x-run-id": b"r1"}).track is True


@pytest.mark.parametrize("raw", [b"false", b"0", b"no", b"yes", b"true", b"disabled"])
def test_run_track_other_than_on_or_off_is_a_400(raw: bytes) -> None:
    error = rejected({b"x-run-track": raw})

    assert error.param == "X-Run-Track"


def test_label_of_512_characters_is_accepted_and_longer_is_a_400() -> None:
    assert parse_tracking({b"x-run-name": b"n" * 512}).run_name == "n" * 512

    error = rejected({b"x-run-name": b"n" * 513})

    assert error.param == "X-Run-Name"


@given(
    st.dictionaries(
        st.sampled_from(sorted(TRACKING_HEADERS)),
        st.binary(max_size=140) | st.sampled_from([b"{}", b"on", b"off", b"run-1"]),
        max_size=len(TRACKING_HEADERS),
    )
)
def test_parse_tracking_returns_tracking_or_raises_bad_request_for_any_bytes(
    values: dict[bytes, bytes],
) -> None:
    try:
        result = parse_tracking(values)
    except BadRequest as error:
        assert error.param in TITLES.values()
    else:
        assert isinstance(result, Tracking)


# -- forwarded_headers --------------------------------------------------------------------------

CLIENT_HEADERS = [
    (b"host", b"127.0.0.1:8080"),
    (b"content-length", b"123"),
    (b"content-type", b"application/json"),
    (b"accept", b"text/event-stream"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"connection", b"keep-alive"),
    (b"keep-alive", b"timeout=5"),
    (b"proxy-authorization", b"Basic abc"),
    (b"proxy-connection", b"keep-alive"),
    (b"te", b"trailers"),
    (b"trailer", b"x-checksum"),
    (b"transfer-encoding", b"chunked"),
    (b"upgrade", b"h2c"),
    (b"authorization", b"Bearer sk-client"),
    (b"user-agent", b"OpenAI/Python 1.50.0"),
    (b"openai-organization", b"org-1"),
    (b"x-stainless-retry-count", b"0"),
    (b"x-custom", b"kept"),
    *[(name, b"value") for name in sorted(TRACKING_HEADERS)],
]
DROPPED = {
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    *(name.decode() for name in TRACKING_HEADERS),
}


def test_hop_by_hop_length_encoding_host_and_tracking_headers_are_not_forwarded() -> None:
    out = forwarded_headers(CLIENT_HEADERS, api_key=None)

    assert DROPPED.isdisjoint(out)
    assert out == {
        "accept-encoding": "identity",  # bodies are relayed as they are: never compressed
        "content-type": "application/json",
        "accept": "text/event-stream",
        "authorization": "Bearer sk-client",
        "user-agent": "OpenAI/Python 1.50.0",
        "openai-organization": "org-1",
        "x-stainless-retry-count": "0",
        "x-custom": "kept",
    }


def test_provider_api_key_replaces_the_client_authorization() -> None:
    out = forwarded_headers(CLIENT_HEADERS, api_key="sk-provider")

    assert out["authorization"] == "Bearer sk-provider"
    assert "sk-client" not in " ".join(out.values())


def test_provider_api_key_is_sent_when_the_client_sends_no_authorization() -> None:
    out = forwarded_headers([(b"content-type", b"application/json")], api_key="sk-provider")

    assert out == {
        "content-type": "application/json",
        "authorization": "Bearer sk-provider",
        "accept-encoding": "identity",
    }


@pytest.mark.parametrize("api_key", [None, ""])
def test_without_provider_api_key_the_client_authorization_is_forwarded(api_key) -> None:
    out = forwarded_headers([(b"authorization", b"Bearer sk-byok")], api_key=api_key)

    assert out == {"authorization": "Bearer sk-byok", "accept-encoding": "identity"}


def test_without_any_key_no_authorization_is_sent() -> None:
    assert "authorization" not in forwarded_headers([(b"accept", b"*/*")], api_key=None)


def test_non_ascii_header_bytes_are_forwarded_as_latin1_unchanged() -> None:
    out = forwarded_headers([(b"x-note", b"caf\xe9")], api_key=None)

    assert out["x-note"].encode("latin-1") == b"caf\xe9"


# -- returned_headers ---------------------------------------------------------------------------


def test_length_transfer_encoding_and_connection_are_not_returned() -> None:
    upstream = CIMultiDict(
        [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Content-Length", "10"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=5"),
            ("Content-Encoding", "gzip"),  # the upstream client already decompressed the body
            ("x-request-id", "req_1"),
            ("openai-processing-ms", "12"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ]
    )

    assert returned_headers(upstream) == [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"x-request-id", b"req_1"),
        (b"openai-processing-ms", b"12"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]


def test_no_upstream_headers_return_nothing() -> None:
    assert returned_headers(CIMultiDict()) == []
