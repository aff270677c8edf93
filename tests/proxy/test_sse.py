"""SSEDecoder and parse_event: events split anywhere decode the same, and raw bytes round-trip."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.sse import SSEDecoder, SSEEvent, parse_event

_BLOCKS = [
    ": ping\n\n",
    'event: message\ndata: {"a": 1}\n\n',
    "data: line one\ndata: line two\n\n",
    'data: {"choices":[{"delta":{"content":"h\u00e9llo \u2603"}}]}\n\n',
    "data:no-space\n\n",
    "id: 7\nretry: 100\ndata: with fields\n\n",
    "data: [DONE]\n\n",
]
_EXPECTED = [
    (None, None),
    ("message", '{"a": 1}'),
    (None, "line one\nline two"),
    (None, '{"choices":[{"delta":{"content":"h\u00e9llo \u2603"}}]}'),
    (None, "no-space"),
    (None, "with fields"),
    (None, "[DONE]"),
]
LF_STREAM = "".join(_BLOCKS).encode()
CRLF_STREAM = "".join(_BLOCKS).replace("\n", "\r\n").encode()
STREAMS = {"lf": LF_STREAM, "crlf": CRLF_STREAM}


def decode_all(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.decode(chunk)]
    return events + decoder.flush()


def summary(events: list[SSEEvent]) -> list[tuple[str | None, str | None]]:
    return [(event.event, event.data) for event in events]


def split_cases() -> list:
    return [
        pytest.param(name, cut, id=f"{name}-{cut}")
        for name, stream in STREAMS.items()
        for cut in range(len(stream) + 1)
    ]


@pytest.mark.parametrize(("name", "cut"), split_cases())
def test_stream_split_at_any_byte_decodes_the_same_events(name: str, cut: int) -> None:
    stream = STREAMS[name]

    events = decode_all([stream[:cut], stream[cut:]])

    assert b"".join(event.raw for event in events) == stream
    assert summary(events) == _EXPECTED


@pytest.mark.parametrize("name", STREAMS)
def test_stream_split_in_three_anywhere_decodes_the_same_events(name: str) -> None:
    stream = STREAMS[name]
    for first in range(0, len(stream) + 1, 3):
        for second in range(first, len(stream) + 1, 2):
            events = decode_all([stream[:first], stream[first:second], stream[second:]])
            assert b"".join(event.raw for event in events) == stream, (first, second)
            assert summary(events) == _EXPECTED, (first, second)


@pytest.mark.parametrize("name", STREAMS)
def test_stream_fed_one_byte_at_a_time_decodes_the_same_events(name: str) -> None:
    stream = STREAMS[name]

    events = decode_all([stream[i : i + 1] for i in range(len(stream))])

    assert [event.raw for event in events] == [event.raw for event in decode_all([stream])]
    assert summary(events) == _EXPECTED


def test_each_event_keeps_its_exact_raw_bytes_including_the_blank_line() -> None:
    events = SSEDecoder().decode(CRLF_STREAM)

    assert events[0].raw == b": ping\r\n\r\n"
    assert events[1].raw == b'event: message\r\ndata: {"a": 1}\r\n\r\n'
    assert events[-1].raw == b"data: [DONE]\r\n\r\n"


def test_event_is_returned_only_once_its_blank_line_arrives() -> None:
    decoder = SSEDecoder()

    assert decoder.decode(b"data: a\n") == []
    assert decoder.decode(b"data: b\n") == []
    events = decoder.decode(b"\n")

    assert summary(events) == [(None, "a\nb")]
    assert decoder.flush() == []


def test_mixed_lf_and_crlf_events_in_one_stream_are_both_decoded() -> None:
    stream = b"data: a\r\n\r\ndata: b\n\ndata: c\n\r\n"

    events = decode_all([stream])

    assert [event.data for event in events] == ["a", "b", "c"]
    assert b"".join(event.raw for event in events) == stream


@pytest.mark.parametrize(
    "tail",
    [b"data: tail\n", b"data: tail", b"data: tail\r\n", b"event: last\ndata: tail"],
)
def test_flush_returns_a_trailing_event_without_blank_line(tail: bytes) -> None:
    decoder = SSEDecoder()
    first = decoder.decode(b"data: one\n\n" + tail)

    rest = decoder.flush()

    assert [event.data for event in first] == ["one"]
    assert [event.data for event in rest] == ["tail"]
    assert rest[0].raw == tail


@pytest.mark.parametrize("tail", [b"\n", b"\r\n", b"  \n"])
def test_flush_keeps_trailing_whitespace_as_a_dataless_event(tail: bytes) -> None:
    decoder = SSEDecoder()
    decoder.decode(b"data: one\n\n" + tail)

    rest = decoder.flush()

    assert rest == [SSEEvent(tail)]
    assert rest[0].data is None


def test_flush_empties_the_decoder() -> None:
    decoder = SSEDecoder()
    decoder.decode(b"data: partial")
    decoder.flush()

    assert decoder.flush() == []
    assert summary(decoder.decode(b"data: next\n\n")) == [(None, "next")]


def test_empty_input_yields_no_events() -> None:
    decoder = SSEDecoder()

    assert decoder.decode(b"") == []
    assert decoder.flush() == []


def test_multibyte_character_split_across_reads_is_decoded_intact() -> None:
    stream = 'data: "caf\u00e9 \U0001f600"\n\n'.encode()
    cut = stream.index("\u00e9".encode()) + 1

    events = decode_all([stream[:cut], stream[cut:]])

    assert [event.data for event in events] == ['"caf\u00e9 \U0001f600"']


@pytest.mark.parametrize(
    ("raw", "event", "data"),
    [
        pytest.param(b"data: x\n\n", None, "x", id="data"),
        pytest.param(b"data:x\n\n", None, "x", id="no-space-after-colon"),
        pytest.param(b"data:  x\n\n", None, " x", id="only-one-leading-space-stripped"),
        pytest.param(b"data: a:b: c\n\n", None, "a:b: c", id="colon-in-value"),
        pytest.param(b"data\n\n", None, "", id="field-without-colon-is-empty"),
        pytest.param(b"data: \n\n", None, "", id="empty-value"),
        pytest.param(b"data: a\ndata: b\ndata: c\n\n", None, "a\nb\nc", id="multi-line"),
        pytest.param(b"event: ping\n\n", "ping", None, id="event-without-data"),
        pytest.param(b"event: a\nevent: b\ndata: x\n\n", "b", "x", id="last-event-line-wins"),
        pytest.param(b": keep-alive\n\n", None, None, id="comment-only"),
        pytest.param(b": c1\ndata: x\n: c2\n\n", None, "x", id="comments-around-data"),
        pytest.param(b"id: 1\nretry: 5\nfoo: bar\n\n", None, None, id="unknown-fields-ignored"),
        pytest.param(b"data: x\r\n\r\n", None, "x", id="crlf"),
    ],
)
def test_parse_event_reads_fields(raw: bytes, event: str | None, data: str | None) -> None:
    parsed = parse_event(raw)

    assert (parsed.event, parsed.data) == (event, data)
    assert parsed.raw == raw


@pytest.mark.parametrize(
    ("raw", "done"),
    [
        (b"data: [DONE]\n\n", True),
        (b"data:[DONE]\n\n", True),
        (b"data: [DONE] \n\n", False),
        (b'data: {"x": "[DONE]"}\n\n', False),
        (b": [DONE]\n\n", False),
    ],
)
def test_is_done_only_for_the_exact_done_sentinel(raw: bytes, done: bool) -> None:
    assert parse_event(raw).is_done is done


@pytest.mark.parametrize(
    "separator",
    ["\u2028", "\u2029", "\x85"],
    ids=["u2028", "u2029", "nel"],
)
def test_unicode_line_separators_inside_a_data_value_do_not_split_it(separator: str) -> None:
    payload = json.dumps({"content": f"a{separator}b"}, ensure_ascii=False)

    (event,) = decode_all([f"data: {payload}\n\n".encode()])

    assert json.loads(event.data) == {"content": f"a{separator}b"}


# -- properties ---------------------------------------------------------------------------------

# Only CR and LF end an SSE line; everything else, including ':', leading spaces and the other
# Unicode line breaks, is fair game inside a value.
_LINE_BREAKS = "\n\r"
_value = st.text(st.characters(exclude_categories=("Cs",), exclude_characters=_LINE_BREAKS))
_event_spec = st.tuples(
    st.none() | _value,  # event:
    st.none() | st.lists(_value, min_size=1, max_size=3),  # data: lines
    st.lists(_value, max_size=2),  # comments
).filter(lambda spec: spec[0] is not None or spec[1] is not None or spec[2])


def _encode(spec: tuple, newline: str) -> str:
    event, data, comments = spec
    lines = [f":{c}" for c in comments]
    if event is not None:
        lines.append(f"event: {event}")
    lines += [f"data: {line}" for line in data or []]
    return "".join(line + newline for line in lines) + newline


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[tuple], list[bytes]]:
    specs = draw(st.lists(_event_spec, max_size=6))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    stream = "".join(_encode(spec, newline) for spec in specs).encode()
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    expected = [(e, "\n".join(d) if d is not None else None) for e, d, _ in specs]
    return stream, expected, chunks


@given(_streams())
def test_any_partition_of_any_stream_decodes_to_the_encoded_events(case: tuple) -> None:
    stream, expected, chunks = case

    events = decode_all(chunks)

    assert summary(events) == expected
    assert b"".join(event.raw for event in events) == stream


@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=6))
def test_raw_bytes_of_arbitrary_input_concatenate_to_the_input(data: bytes, cuts: list) -> None:
    cuts = sorted(min(c, len(data)) for c in cuts)
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]

    events = decode_all(chunks)

    assert b"".join(event.raw for event in events) == data
    assert summary(events) == summary(decode_all([data]))
