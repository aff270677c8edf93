"""Incremental Server-Sent Events decoder.

Pure: `decode(data)` takes bytes as they come off the network (events may be split anywhere)
and returns the events completed so far; `flush()` returns a trailing event the stream ended
without a blank line after. Every event keeps its exact raw bytes, so the relay forwards what
the upstream sent without re-encoding and can drop one event exactly: the `raw` of all events
returned, flush included, always concatenate to the input.

Lines end in CRLF, LF or a lone CR, mixed freely; a CR followed by a LF is one line end
(CRLF), never two. An event ends at its blank line: the second of two consecutive line ends
(`\\n\\n`, `\\r\\r`, `\\r\\n\\r\\n`, `\\n\\r\\n`, `\\r\\n\\n`, `\\r\\r\\n`, ...), counted from the
event's first byte.

Events are returned as soon as their blank line has arrived, even when a chunk ends in a CR
that completes one (`data: x\\r\\r`): waiting to see whether a LF follows would hold a finished
event back for a whole network read. If the next chunk does start with that LF, it finishes the
CRLF already counted, so it is no line end of its own; its byte goes at the start of the next
event's raw bytes, where SSE parsing ignores a leading empty line. So how the input is split
changes nothing but where such a LF sits: move each one back to the event before it (that
event ends in CR) and every split decodes to the same events as the whole input. A stream that
ends right after such a LF flushes it as a data-less event of its own (`b"\\n"`).

Cost is linear in the input however it is split: each chunk is searched once (one byte of
state carries a line end across a chunk boundary), the event not yet complete is appended to
one buffer, and that buffer is copied out once, when its event completes. `max_event_bytes`
caps one event, complete or still arriving (`EventTooLarge`), so what the decoder holds stays
within the cap whatever the upstream sends.
"""

from __future__ import annotations

from dataclasses import dataclass

_DONE = "[DONE]"
_CR, _LF = 13, 10


@dataclass(frozen=True, slots=True)
class SSEEvent:
    raw: bytes
    event: str | None = None
    data: str | None = None  # data lines joined with "\n"; None for a comment-only block

    @property
    def is_done(self) -> bool:
        return self.data == _DONE


class EventTooLarge(ValueError):
    """An event over the decoder's `max_event_bytes`, complete or still arriving. `events` are
    those completed before it in the same `decode` call: a caller can still forward them
    before it ends the stream."""

    def __init__(self, size: int, limit: int, events: list[SSEEvent]) -> None:
        super().__init__(f"an SSE event reached {size} bytes, over the {limit}-byte limit")
        self.size = size  # the event's bytes when it was caught: all of them, or the first ones
        self.limit = limit
        self.events = events


def parse_event(raw: bytes) -> SSEEvent:
    """Parse one complete event block (without caring how it was terminated)."""
    if raw[:6] == b"data: ":  # the common case: one `data:` line and nothing else
        body = raw[6:].rstrip(b"\r\n")
        if body.find(b"\n") < 0 and body.find(b"\r") < 0:  # find(): see _blank_line_ends
            return SSEEvent(raw, None, body.decode("utf-8", "replace"))
    event_type = None
    data_lines: list[str] = []
    for line in _split_lines(raw.decode("utf-8", "replace")):
        if not line or line[0] == ":":
            continue
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            data_lines.append(value)
        elif name == "event":
            event_type = value
    return SSEEvent(raw, event_type, "\n".join(data_lines) if data_lines else None)


def _split_lines(text: str) -> list[str]:
    """Lines ending in CRLF, LF or CR; not at the other breaks str.splitlines() knows, which
    are fair game inside a value (JSON may carry U+2028 unescaped)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


class SSEDecoder:
    """Events out of a byte stream (see the module docstring for the rules and the costs)."""

    def __init__(self, max_event_bytes: int | None = None) -> None:
        self._limit = max_event_bytes
        # The event not yet complete. A bytearray, not a list of the reads: it grows in
        # amortized linear time too, and a trickle of one-byte reads costs no object per byte.
        self._held = bytearray()
        self._last = 0  # the held event's last byte that is part of a line (0: none yet)
        self._lf_owed = False  # the last event ended in a chunk-final CR a LF may still finish

    def decode(self, data: bytes) -> list[SSEEvent]:
        """The events data completes, in order; raises `EventTooLarge` past the cap."""
        if not data:
            return []
        skip = 1 if self._lf_owed and data[0] == _LF else 0  # the owed LF: no line end of its own
        self._lf_owed = False
        events: list[SSEEvent] = []
        start = 0
        for end in self._event_ends(data, skip):
            raw = self._join(data[:end]) if start == 0 and self._held else data[start:end]
            if self._limit is not None and len(raw) > self._limit:
                raise EventTooLarge(len(raw), self._limit, events)
            events.append(parse_event(raw))
            start = end
        if start == len(data):
            self._lf_owed = data[-1] == _CR
        else:
            self._hold(data, start, max(start, skip), events)
        return events

    def flush(self) -> list[SSEEvent]:
        """At the end of the stream: what is held, as one last event; the decoder starts over."""
        rest = bytes(self._held)
        self._held, self._last, self._lf_owed = bytearray(), 0, False
        if not rest.strip():
            return [SSEEvent(rest)] if rest else []
        return [parse_event(rest)]

    def _event_ends(self, data: bytes, skip: int) -> list[int]:
        """Where in data each event ends, the first one perhaps begun in earlier chunks."""
        last, first = self._last, data[0]
        # The held event ends in a line end and data starts with another (not the LF of a
        # CRLF): the blank line straddles the two.
        if last in b"\r\n" and first in b"\r\n" and not (last == _CR and first == _LF):
            end = _line_end_after(data, 0)
            return [end, *_blank_line_ends(data, end)]
        return _blank_line_ends(data, skip)

    def _join(self, tail: bytes) -> bytes:
        """The one copy of an event that came in pieces; the decoder holds nothing after it."""
        self._held += tail
        raw = bytes(self._held)
        self._held, self._last = bytearray(), 0
        return raw

    def _hold(self, data: bytes, start: int, lines_from: int, events: list[SSEEvent]) -> None:
        """Keep data[start:] for the event not yet complete (its lines start at lines_from,
        past an owed LF); check it against the cap."""
        self._held += data[start:]
        if len(data) > lines_from:
            self._last = data[-1]
        if self._limit is not None and len(self._held) > self._limit:
            raise EventTooLarge(len(self._held), self._limit, events)


def _blank_line_ends(data: bytes, pos: int) -> list[int]:
    """Indexes just past each blank line in data, reading from pos (where a line starts).

    A blank line holds a LF followed by a line end (`\\n\\n`, `\\n\\r`) or two lone CRs
    (`\\r\\r`): CR-LF is the one pair of line-end bytes that is a single line end. Without
    `\\r\\r`, as in LF and CRLF streams, looking just past each LF (memchr) is enough."""
    # find(), not `in`: a bytes needle costs `in` a raised-and-cleared TypeError first
    if data.find(b"\r") >= 0 and data.find(b"\r\r") >= 0:
        return _blank_line_ends_by_line_end(data, pos)
    ends: list[int] = []
    while (lf := data.find(b"\n", pos)) >= 0:
        pos = lf + 1
        follower = data[pos : pos + 1]
        if follower == b"\n":
            pos += 1
            ends.append(pos)
        elif follower == b"\r":  # `_line_end_after`, inline on the hot path of CRLF streams
            pos += 2 if data[pos + 1 : pos + 2] == b"\n" else 1
            ends.append(pos)
    return ends


def _blank_line_ends_by_line_end(data: bytes, pos: int) -> list[int]:
    """`_blank_line_ends` reading every line end, CR-only ones too. Each search for the next
    LF or CR resumes past its last hit only: one pass over data however many lines it holds."""
    ends: list[int] = []
    none = len(data) + 1  # past any CRLF's LF, so a CR at the very end is never taken for one
    lf = cr = -1  # the next LF and CR at or after pos; `none` once there is none left
    after_line_end = -1  # where the last line end ended, if no line came after it
    while True:
        if lf < pos:
            lf = data.find(b"\n", pos)
            lf = none if lf < 0 else lf
        if cr < pos:
            cr = data.find(b"\r", pos)
            cr = none if cr < 0 else cr
        if (line_end := min(lf, cr)) == none:
            return ends
        pos = line_end + 2 if line_end == cr and lf == line_end + 1 else line_end + 1
        if line_end == after_line_end:  # two line ends in a row: a blank line
            ends.append(pos)
            after_line_end = -1
        else:
            after_line_end = pos


def _line_end_after(data: bytes, index: int) -> int:
    """Index just past the line end starting at index: CRLF when its LF is already here, else
    the lone byte (a CR at the end of data is a whole line end; see the module docstring)."""
    if data[index] == _CR and data[index + 1 : index + 2] == b"\n":
        return index + 2
    return index + 1
