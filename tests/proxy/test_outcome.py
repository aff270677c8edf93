"""How a call ended, decided in one place: the upstream's answer, airuns' refusal, a break after
the response started, or the client leaving (the terminal-event rule)."""

from __future__ import annotations

import pytest

from persistence.record import CHAT
from proxy.capture import Capture
from proxy.errors import UpstreamTimeout, UpstreamUnreachable
from proxy.outcome import Outcome, answered, broke_off, client_left, refused


def capture(error: str | None = None, finished: bool = False) -> Capture:
    observed = Capture(CHAT, started=0.0)
    observed.error_message, observed.finished = error, finished
    return observed


@pytest.mark.parametrize(
    "error, status, outcome",
    [
        (None, 200, Outcome("completed", 200)),
        ("overloaded", 200, Outcome("error", 200, "overloaded")),
        (None, 429, Outcome("error", 429, "upstream answered 429")),
        ("rate limited", 429, Outcome("error", 429, "rate limited")),
    ],
)
def test_the_upstreams_answer_decides(error, status, outcome):
    assert answered(capture(error), status) == outcome


def test_airuns_own_errors_are_error_or_timeout_with_their_status():
    assert refused(UpstreamUnreachable("down")) == Outcome("error", 502, "down")
    assert refused(UpstreamTimeout("slow")) == Outcome("timeout", 504, "slow")
    assert broke_off(UpstreamTimeout("stalled"), 200) == Outcome("timeout", 200, "stalled")


@pytest.mark.parametrize(
    "observed, http_status, terminal, outcome",
    [
        (capture(finished=True), 200, True, Outcome("completed", 200)),
        (capture("boom", finished=True), 200, True, Outcome("error", 200, "boom")),
        (capture(), 200, False, Outcome("cancelled", 200, "client disconnected")),
        (capture(), None, False, Outcome("cancelled", None, "client disconnected")),
        (None, None, False, Outcome("cancelled", None, "client disconnected")),
    ],
)
def test_a_client_that_leaves_after_the_terminal_event_does_not_cancel_the_call(
    observed, http_status, terminal, outcome
):
    assert client_left(observed, http_status, terminal) == outcome
