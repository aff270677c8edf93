"""Incremental Server-Sent Events decoder.

Pure: `decode(data)` takes bytes as they come off the network (events may be split anywhere,
lines end in LF or CRLF) and returns the events completed so far; `flush()` returns a trailing
event the stream ended without a blank line after. Every event keeps its exact raw bytes, so
the relay forwards what the upstream sent without re-encoding and can drop one event exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

_DONE = "[DONE]"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    raw: bytes
    event: str | None = None
    data: str | None = None  # data lines joined with "\n"; None for a comment-only block

    @property
    def is_done(self) -> bool:
        return self.data == _DONE


def parse_event(raw: bytes) -> SSEEvent:
    """Parse one complete event block (without caring how it was terminated)."""
    if raw[:6] == b"data: ":  # the common case: one `data:` line and nothing else
        body = raw[6:].rstrip(b"\r\n")
        if b"\n" not in body and b"\r" not in body:
            return SSEEvent(raw, None, body.decode("utf-8", "replace"))
    event_type = None
    data_lines: list[str] = []
    # SSE lines end at LF or CRLF only (not at the other breaks str.splitlines() knows).
    for line in raw.decode("utf-8", "replace").split("\n"):
        if line[-1:] == "\r":
            line = line[:-1]
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


class SSEDecoder:
    def __init__(self) -> None:
        self._buffer = b""

    def decode(self, data: bytes) -> list[SSEEvent]:
        buffer = self._buffer + data if self._buffer else data
        events: list[SSEEvent] = []
        start = 0
        while True:
            end = _find_blank_line(buffer, start)
            if end < 0:
                break
            events.append(parse_event(buffer[start:end]))
            start = end
        self._buffer = buffer[start:]
        return events

    def flush(self) -> list[SSEEvent]:
        rest, self._buffer = self._buffer, b""
        if not rest.strip():
            return [SSEEvent(rest)] if rest else []
        return [parse_event(rest)]


def _find_blank_line(buffer: bytes, start: int) -> int:
    """Index just past the first blank line (`\\n\\n` or `\\n\\r\\n`) at or after start, or -1."""
    lf = buffer.find(b"\n\n", start)
    # Only a CRLF blank line before the first LF one matters: don't rescan the rest.
    crlf = buffer.find(b"\n\r\n", start, len(buffer) if lf < 0 else lf + 2)
    if lf < 0 and crlf < 0:
        return -1
    if crlf < 0 or 0 <= lf < crlf:
        return lf + 2
    return crlf + 3
