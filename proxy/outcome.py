"""How a call ended: one value, decided where the call ended and recorded as it is.

The relay (whole body, stream, drain) and the handler's error paths each return an `Outcome`
instead of setting a call's status, HTTP status and error text in several places.

The terminal-event rule: once a stream's terminal event (`data: [DONE]`, or the Responses API's
`response.completed` / `response.incomplete` / `response.failed`) has reached the client, the
call's status is what the upstream said, whatever the client does next; official SDKs close the
connection as soon as they read `[DONE]`, which is a finished call, not a cancelled one.
`cancelled` means the client left before the terminal event.
"""

from __future__ import annotations

from dataclasses import dataclass

from persistence.record import CANCELLED, COMPLETED, ERROR, TIMEOUT
from proxy.capture import Capture
from proxy.errors import ProxyError, UpstreamTimeout

CLIENT_LEFT = "client disconnected"


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    http_status: int | None  # what the client received; None when it left before a response
    error: str | None = None


def answered(capture: Capture, upstream_status: int) -> Outcome:
    """The upstream finished its answer: an error status, an error inside a 2xx body or
    stream, or success."""
    error = capture.error_message
    if upstream_status >= 400:
        return Outcome(ERROR, upstream_status, error or f"upstream answered {upstream_status}")
    if error is not None:
        return Outcome(ERROR, upstream_status, error)
    return Outcome(COMPLETED, upstream_status)


def refused(error: ProxyError) -> Outcome:
    """airuns answered with its own error (upstream unreachable, timed out, …)."""
    status = TIMEOUT if isinstance(error, UpstreamTimeout) else ERROR
    return Outcome(status, error.status, error.message)


def broke_off(error: ProxyError, http_status: int) -> Outcome:
    """The upstream failed after the response to the client had started."""
    status = TIMEOUT if isinstance(error, UpstreamTimeout) else ERROR
    return Outcome(status, http_status, error.message)


def client_left(
    capture: Capture | None, http_status: int | None, terminal_relayed: bool
) -> Outcome:
    """The client disconnected: after the terminal event it is the upstream's answer that
    counts; before it, the call is cancelled."""
    if terminal_relayed and capture is not None and http_status is not None:
        return answered(capture, http_status)
    return Outcome(CANCELLED, http_status, CLIENT_LEFT)
