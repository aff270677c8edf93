"""SSEDecoder and parse_event: every line-end form, events split anywhere decode the same, raw
bytes round-trip, one event is capped, and a huge event costs linear work."""

from __future__ import annotations

import dataclasses
import re
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.sse import EventTooLarge, SSEDecoder, SSEEvent, parse_event

_EXPECTED = [
    (None, None),
    ("message", '{"a": 1}'),
    (None, "line one\nline two"),
    (None, '{"choices":[{"delta":{"content":"h\u00e9llo \u2603"}}]}'),
    (None, "no-space"),
    (None, "with fields"),
    (None, "[DONE]"),
]
# Their lines; STREAMS writes them with each form of line end.
_LINES = [
    [": ping"],
    ["event: message", 'data: {"a": 1}'],
    ["data: line one", "data: line two"],
    ['data: {"choices":[{"delta":{"content":"h\u00e9llo \u2603"}}]}'],
    ["data:no-space"],
    ["id: 7", "retry: 100", "data: with fields"],
    ["data: [DONE]"],
]
# Mixed: each event's line ends, the last two forming its blank line; between them every form
# of blank line but LF LF: LF CR, CRLF LF, CR CR, LF CRLF, CRLF CR, CR CRLF, CRLF CRLF.
_MIXED_ENDS = [
    ["\n", "\r"],
    ["\r\n", "\r\n", "\n"],
    ["\r", "\r", "\r"],
    ["\n", "\r\n"],
    ["\r\n", "\r"],
    ["\r", "\n", "\r", "\r\n"],
    ["\r\n", "\r\n"],
]


def _stream(ends_per_event: list[list[str]]) -> bytes:
    """_LINES with these line ends: one per line, then the blank line's."""
    return "".join(
        line + end
        for lines, ends in zip(_LINES, ends_per_event, strict=True)
        for line, end in zip([*lines, ""], ends, strict=True)
    ).encode()


def _uniform(newline: str) -> bytes:
    return _stream([[newline] * (len(lines) + 1) for lines in _LINES])


STREAMS = {
    "lf": _uniform("\n"),
    "crlf": _uniform("\r\n"),
    "cr": _uniform("\r"),
    "mixed": _stream(_MIXED_ENDS),
}
BLANK_LINES = ["\n\n", "\r\r", "\r\n\r\n", "\n\r\n", "\r\n\n", "\r\r\n", "\n\r", "\r\n\r"]


def decode_all(chunks: list[bytes], max_event_bytes: int | None = None) -> list[SSEEvent]:
    decoder = SSEDecoder(max_event_bytes)
    events = [event for chunk in chunks for event in decoder.decode(chunk)]
    return events + decoder.flush()


def summary(events: list[SSEEvent]) -> list[tuple[str | None, str | None]]:
    return [(event.event, event.data) for event in events]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    cuts = sorted(min(cut, len(data)) for cut in cuts)
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def settle(events: list[SSEEvent]) -> list[SSEEvent]:
    """Move each stray LF back to the event whose CRLF it finishes.

    A read that ends in the CR completing a blank line returns its event at once; a LF starting
    the next read goes at the start of the next event's raw bytes (and is flushed alone if the
    stream ends there). That is all a split may change: `settle(decode(any split))` equals
    `decode(whole input)`, raw bytes and parsed fields alike. In a whole-input decode no event
    ending in CR is followed by another, so only a stray LF can match here."""
    settled: list[SSEEvent] = []
    for event in events:
        if settled and settled[-1].raw.endswith(b"\r") and event.raw.startswith(b"\n"):
            settled[-1] = dataclasses.replace(settled[-1], raw=settled[-1].raw + b"\n")
            if event.raw == b"\n":
                continue
            event = dataclasses.replace(event, raw=event.raw[1:])
        settled.append(event)
    return settled


_LINE_END = re.compile(rb"\r\n|\r|\n")


def reference_event_bytes(stream: bytes) -> list[bytes]:
    """The events' raw bytes by the SSE line rules, read line by line: lines end at CRLF, LF
    or CR (CRLF first), and an event ends with the second of two line ends in a row."""
    events, start, after_line_end = [], 0, -1
    for line_end in _LINE_END.finditer(stream):
        if line_end.start() == after_line_end:
            events.append(stream[start : line_end.end()])
            start, after_line_end = line_end.end(), -1
        else:
            after_line_end = line_end.end()
    return events + ([stream[start:]] if stream[start:] else [])


# -- every line-end form, split at every byte ---------------------------------------------------


@pytest.mark.parametrize("name", STREAMS)
def test_whole_stream_decodes_to_its_events(name: str) -> None:
    events = decode_all([STREAMS[name]])

    assert summary(events) == _EXPECTED
    assert [event.raw for event in events] == reference_event_bytes(STREAMS[name])


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
    assert settle(events) == decode_all([stream])


@pytest.mark.parametrize("name", STREAMS)
def test_stream_split_in_three_anywhere_decodes_the_same_events(name: str) -> None:
    stream = STREAMS[name]
    whole = decode_all([stream])
    for first in range(0, len(stream) + 1, 3):
        for second in range(first, len(stream) + 1, 2):
            events = decode_all([stream[:first], stream[first:second], stream[second:]])
            assert b"".join(event.raw for event in events) == stream, (first, second)
            assert settle(events) == whole, (first, second)


@pytest.mark.parametrize("name", STREAMS)
def test_stream_fed_one_byte_at_a_time_decodes_the_same_events(name: str) -> None:
    stream = STREAMS[name]

    events = decode_all([stream[i : i + 1] for i in range(len(stream))])

    assert b"".join(event.raw for event in events) == stream
    assert settle(events) == decode_all([stream])


@pytest.mark.parametrize("blank", BLANK_LINES, ids=[b.encode().hex() for b in BLANK_LINES])
def test_each_form_of_blank_line_ends_an_event_wherever_the_stream_is_split(blank: str) -> None:
    stream = f"data: a{blank}event: e\rdata: b{blank}: c{blank}".encode()
    whole = decode_all([stream])

    assert summary(whole) == [(None, "a"), ("e", "b"), (None, None)]
    assert [event.raw for event in whole] == reference_event_bytes(stream)
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1):
            events = decode_all([stream[:first], stream[first:second], stream[second:]])
            assert b"".join(event.raw for event in events) == stream, (first, second)
            assert settle(events) == whole, (first, second)


def test_each_event_keeps_its_exact_raw_bytes_including_the_blank_line() -> None:
    events = SSEDecoder().decode(STREAMS["mixed"])

    assert events[0].raw == b": ping\n\r"
    assert events[1].raw == b'event: message\r\ndata: {"a": 1}\r\n\n'
    assert events[2].raw == b"data: line one\rdata: line two\r\r"
    assert events[-1].raw == b"data: [DONE]\r\n\r\n"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_event_is_returned_only_once_its_blank_line_arrives(newline: bytes) -> None:
    decoder = SSEDecoder()

    assert decoder.decode(b"data: a" + newline) == []
    assert decoder.decode(b"data: b" + newline) == []
    events = decoder.decode(newline)

    assert summary(events) == [(None, "a\nb")]
    assert decoder.flush() == []


# -- a read ending in CR -------------------------------------------------------------------------


@pytest.mark.parametrize("read", [b"data: x\r\n\r", b"data: x\r\r", b"data: x\n\r"])
def test_read_ending_in_the_cr_of_a_blank_line_returns_its_event_at_once(read: bytes) -> None:
    events = SSEDecoder().decode(read)

    assert [(event.raw, event.data) for event in events] == [(read, "x")]


def test_lf_after_that_cr_starts_the_next_events_raw_bytes() -> None:
    decoder = SSEDecoder()
    decoder.decode(b"data: x\r\n\r")

    events = decoder.decode(b"\ndata: y\r\n\r\n")

    assert [(event.raw, event.data) for event in events] == [(b"\ndata: y\r\n\r\n", "y")]


def test_lf_after_that_cr_is_no_line_end_of_its_own() -> None:
    decoder = SSEDecoder()
    decoder.decode(b"data: x\r\r")

    assert decoder.decode(b"\n") == []
    assert decoder.decode(b"\n") == []  # one line end since the last event, not a blank line
    (event,) = decoder.decode(b"data: y\n\n")

    assert (event.raw, event.data) == (b"\n\ndata: y\n\n", "y")


def test_lf_after_that_cr_is_recognised_after_empty_reads() -> None:
    decoder = SSEDecoder()
    decoder.decode(b"data: x\r\r")
    decoder.decode(b"")

    assert decoder.decode(b"\n") == []
    assert decoder.decode(b"\n") == []


def test_cr_ending_a_read_after_a_line_waits_for_the_next_line_end() -> None:
    decoder = SSEDecoder()

    assert decoder.decode(b"data: x\r") == []
    assert decoder.decode(b"\n") == []  # CR LF: one line end
    (event,) = decoder.decode(b"\r\n")

    assert (event.raw, event.data) == (b"data: x\r\n\r\n", "x")


def test_stream_ending_right_after_that_lf_flushes_it_as_a_dataless_event() -> None:
    decoder = SSEDecoder()
    decoder.decode(b"data: x\r\n\r")
    decoder.decode(b"\n")

    assert decoder.flush() == [SSEEvent(b"\n")]


# -- flush -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tail",
    [
        b"data: tail\n",
        b"data: tail",
        b"data: tail\r\n",
        b"data: tail\r",
        b"event: last\ndata: tail",
        b"event: last\rdata: tail",
    ],
)
def test_flush_returns_a_trailing_event_without_blank_line(tail: bytes) -> None:
    decoder = SSEDecoder()
    first = decoder.decode(b"data: one\n\n" + tail)

    rest = decoder.flush()

    assert [event.data for event in first] == ["one"]
    assert [event.data for event in rest] == ["tail"]
    assert rest[0].raw == tail


@pytest.mark.parametrize("tail", [b"\n", b"\r\n", b"\r", b"  \n"])
def test_flush_keeps_trailing_whitespace_as_a_dataless_event(tail: bytes) -> None:
    decoder = SSEDecoder()
    decoder.decode(b"data: one\n\n" + tail)

    rest = decoder.flush()

    assert rest == [SSEEvent(tail)]
    assert rest[0].data is None


def test_flush_empties_the_decoder() -> None:
    decoder = SSEDecoder()
    decoder.decode(b"data: partial\r")
    decoder.flush()

    assert decoder.flush() == []
    assert summary(decoder.decode(b"\rdata: next\n\n")) == [(None, "next")]


def test_empty_input_yields_no_events() -> None:
    decoder = SSEDecoder()

    assert decoder.decode(b"") == []
    assert decoder.flush() == []


def test_multibyte_character_split_across_reads_is_decoded_intact() -> None:
    stream = 'data: "caf\u00e9 \U0001f600"\n\n'.encode()
    cut = stream.index("\u00e9".encode()) + 1

    events = decode_all([stream[:cut], stream[cut:]])

    assert [event.data for event in events] == ['"caf\u00e9 \U0001f600"']


# -- parse_event -----------------------------------------------------------------------------------


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
        pytest.param(b"data: x\r\r", None, "x", id="cr"),
        pytest.param(b"data: a\rdata: b\r\r", None, "a\nb", id="cr-multi-line"),
        pytest.param(b"event: e\rdata: x\r\r", "e", "x", id="cr-event"),
        pytest.param(b"data: a\r\ndata: b\rdata: c\n\r\n", None, "a\nb\nc", id="mixed"),
        pytest.param(b"data: x\r\n\r", None, "x", id="crlf-then-cr"),
        pytest.param(b"\ndata: x\n\n", None, "x", id="leading-lf-from-the-last-crlf"),
        pytest.param(b"data: a\r\rdata: b\r\r", None, "a\nb", id="not-split-at-blank-lines"),
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
        (b"data: [DONE]\r\n\r\n", True),
        (b"data: [DONE]\r\r", True),
        (b"data: [DONE]\n\r\n", True),
        (b"data: [DONE]\r\n\r", True),
        (b"\ndata: [DONE]\r\n\r\n", True),
        (b"data:[DONE]\n\n", True),
        (b"data:[DONE]\r\r", True),
        (b"data: [DONE] \n\n", False),
        (b'data: {"x": "[DONE]"}\n\n', False),
        (b": [DONE]\n\n", False),
        (b": [DONE]\r\r", False),
    ],
)
def test_is_done_only_for_the_exact_done_sentinel(raw: bytes, done: bool) -> None:
    assert parse_event(raw).is_done is done


@pytest.mark.parametrize(
    "separator",
    ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c"],
    ids=["u2028", "u2029", "nel", "vt", "ff", "fs"],
)
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("comment", ["", ": c"], ids=["one-line", "with-comment"])
def test_other_line_breaks_inside_a_data_value_do_not_split_it(
    separator: str, newline: str, comment: str
) -> None:
    value = f'{{"content": "a{separator}b"}}'
    lines = [f"data: {value}", comment] if comment else [f"data: {value}"]

    (event,) = decode_all(["".join(line + newline for line in [*lines, ""]).encode()])

    assert event.data == value


# -- the cap on one event ------------------------------------------------------------------------

_EVENT = b'data: {"content": "' + b"x" * 100 + b'"}\n\n'
READS = {"whole": len(_EVENT), "7-byte": 7, "1-byte": 1}


def reads_of(stream: bytes, size: int) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


@pytest.mark.parametrize("size", READS.values(), ids=list(READS))
def test_event_exactly_at_the_cap_is_decoded(size: int) -> None:
    events = decode_all(reads_of(_EVENT * 3, size), max_event_bytes=len(_EVENT))

    assert [event.raw for event in events] == [_EVENT] * 3


@pytest.mark.parametrize("size", READS.values(), ids=list(READS))
def test_event_one_byte_over_the_cap_raises(size: int) -> None:
    with pytest.raises(EventTooLarge) as caught:
        decode_all(reads_of(_EVENT, size), max_event_bytes=len(_EVENT) - 1)

    assert caught.value.limit == len(_EVENT) - 1
    assert caught.value.size == len(_EVENT)
    assert isinstance(caught.value, ValueError)


def test_unfinished_event_raises_as_soon_as_it_holds_more_than_the_cap() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    for _ in range(10):
        assert decoder.decode(b"data: " + b"x" * 94) == []  # 1000 bytes held after the tenth

    with pytest.raises(EventTooLarge) as caught:
        decoder.decode(b"x")

    assert (caught.value.size, caught.value.limit) == (1001, 1000)


def test_cap_is_per_event_not_per_stream() -> None:
    events = decode_all(reads_of(_EVENT * 50, 64), max_event_bytes=len(_EVENT))

    assert len(events) == 50


def test_events_completed_before_the_oversized_one_come_with_the_error() -> None:
    decoder = SSEDecoder(max_event_bytes=20)

    with pytest.raises(EventTooLarge) as caught:
        decoder.decode(b"data: a\n\ndata: b\r\r" + b"data: " + b"x" * 20)

    assert summary(caught.value.events) == [(None, "a"), (None, "b")]


# -- cost ------------------------------------------------------------------------------------------


def test_huge_event_in_small_reads_is_copied_a_bounded_number_of_times() -> None:
    """A decoder that re-joins what it holds on every read copies ~size²/(2·read) bytes in all
    (1 GiB here); one that holds each read once and joins once copies a few times the size."""
    event = b"data: " + b"x" * (2 * 1024 * 1024) + b"\n\n"
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    allocated = 0
    tracemalloc.start()
    try:
        for read in reads_of(event, 2048):
            held = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            events += decoder.decode(read)
            allocated += tracemalloc.get_traced_memory()[1] - held
    finally:
        tracemalloc.stop()

    assert [len(e.raw) for e in events] == [len(event)]
    assert allocated < 8 * len(event)


# -- properties ----------------------------------------------------------------------------------

# Only CR and LF end an SSE line; everything else, including ':', leading spaces and the other
# Unicode line breaks, is fair game inside a value.
_LINE_BREAKS = "\n\r"
_value = st.text(st.characters(exclude_categories=("Cs",), exclude_characters=_LINE_BREAKS))
_event_spec = st.tuples(
    st.none() | _value,  # event:
    st.none() | st.lists(_value, min_size=1, max_size=3),  # data: lines
    st.lists(_value, max_size=2),  # comments
).filter(lambda spec: spec[0] is not None or spec[1] is not None or spec[2])
_newline = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def _encoded_event(draw: st.DrawFn) -> tuple[str, tuple[str | None, str | None]]:
    """One event's text, with any line ends, and the (event, data) it encodes."""
    event, data, comments = draw(_event_spec)
    lines = [f":{c}" for c in comments]
    if event is not None:
        lines.append(f"event: {event}")
    lines += [f"data: {line}" for line in data or []]
    text = "".join(line + draw(_newline) for line in lines)
    # After a lone CR a LF would join it into one CRLF: the blank line is then CR or CRLF.
    text += draw(st.sampled_from(["\r", "\r\n"]) if text.endswith("\r") else _newline)
    return text, (event, "\n".join(data) if data is not None else None)


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[bytes], list[tuple], list[bytes]]:
    encoded = draw(st.lists(_encoded_event(), max_size=6))
    stream = "".join(text for text, _ in encoded).encode()
    cuts = draw(st.lists(st.integers(0, len(stream)), max_size=8))
    raws = [text.encode() for text, _ in encoded]
    return stream, raws, [fields for _, fields in encoded], split(stream, cuts)


@given(_streams())
def test_any_partition_of_any_stream_decodes_to_the_encoded_events(case: tuple) -> None:
    stream, raws, fields, chunks = case

    events = decode_all(chunks)

    assert b"".join(event.raw for event in events) == stream
    assert [event.raw for event in settle(events)] == raws
    # Unsettled, only a stray LF the stream ended on can add an event: a data-less one.
    assert summary(events) == fields + [(None, None)] * (len(events) - len(fields))
    assert summary(settle(events)) == fields


# Bytes that make many line-end combinations, alongside arbitrary ones.
_PIECES = [b"\r", b"\n", b"\r\n", b"data: ", b":", b"a"]
_line_end_heavy = st.lists(st.sampled_from(_PIECES)).map(b"".join)
_cuts = st.lists(st.integers(0, 200), max_size=6)


@given(st.binary(max_size=200) | _line_end_heavy, _cuts)
def test_raw_bytes_of_any_input_concatenate_to_the_input_however_split(data, cuts) -> None:
    events = decode_all(split(data, cuts))

    assert b"".join(event.raw for event in events) == data


@given(st.binary(max_size=200) | _line_end_heavy, _cuts)
def test_any_split_decodes_like_the_whole_input_once_stray_lfs_are_settled(data, cuts) -> None:
    whole = decode_all([data])

    assert [event.raw for event in whole] == reference_event_bytes(data)
    assert settle(decode_all(split(data, cuts))) == whole


@given(_line_end_heavy, _cuts, st.integers(0, 30))
def test_cap_raises_exactly_when_some_event_is_over_it(data, cuts, cap) -> None:
    chunks = split(data, cuts)
    over = any(len(event.raw) > cap for event in decode_all(chunks))

    try:
        decode_all(chunks, max_event_bytes=cap)
    except EventTooLarge:
        raised = True
    else:
        raised = False

    assert raised is over
