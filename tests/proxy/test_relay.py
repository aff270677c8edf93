"""The relays on their own: a scripted upstream response, an ASGI `send` that keeps what it is
given, and the outcome each returns."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from persistence.record import CHAT
from proxy.capture import Capture
from proxy.errors import ProxyError, UpstreamTimeout, UpstreamUnreachable
from proxy.outcome import Outcome
from proxy.relay import relay_stream, relay_whole
from proxy.sse import SSEDecoder

COMPLETION = json.dumps(
    {"choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}],
     "usage": {"prompt_tokens": 2, "completion_tokens": 1}}
).encode()  # fmt: skip


def event(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


CHUNK = event({"choices": [{"index": 0, "delta": {"content": "hi"}}]})
USAGE = event({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 1}})
DONE = b"data: [DONE]\n\n"


class ScriptedUpstream:
    """What `UpstreamResponse` offers the relays: status, length and body reads, each read
    either bytes or an exception to raise."""

    def __init__(
        self, reads: list[bytes | Exception], status: int = 200, content_length: int | None = None
    ):
        self.reads = reads
        self.status = status
        self.content_length = content_length

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for read in self.reads:
            if isinstance(read, BaseException):
                raise read
            yield read


class Client:
    """An ASGI `send` that keeps the messages; `leave_after` sends cancel the relay as the
    disconnect watcher would."""

    def __init__(self, leave_after: int | None = None) -> None:
        self.messages: list[dict] = []
        self.leave_after = leave_after
        self.gone = False

    async def send(self, message: dict) -> None:
        if self.leave_after is not None and len(self.messages) >= self.leave_after:
            self.gone = True
            raise asyncio.CancelledError
        self.messages.append(message)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])

    @property
    def ended(self) -> bool:
        return bool(self.messages) and self.messages[-1].get("more_body") is False


def capture(usage_injected: bool = False) -> Capture:
    return Capture(CHAT, started=0.0, usage_injected=usage_injected, max_text=1000)


# -- relay_whole ------------------------------------------------------------------------------


async def test_a_body_in_one_read_goes_out_in_one_send_with_its_length():
    client, observed = Client(), capture()
    upstream = ScriptedUpstream([COMPLETION], content_length=len(COMPLETION))
    relayed = await relay_whole(observed, upstream, client.send, [], 1000, lambda: client.gone)
    assert relayed.outcome == Outcome("completed", 200) and relayed.drained
    start, body = client.messages
    assert (b"content-length", str(len(COMPLETION)).encode()) in start["headers"]
    assert body == {"type": "http.response.body", "body": COMPLETION, "more_body": False}
    assert observed.text == "hello" and observed.usage.total_tokens == 3


async def test_a_body_in_many_reads_goes_out_read_by_read():
    client, observed = Client(), capture()
    reads = [COMPLETION[:10], COMPLETION[10:30], COMPLETION[30:]]
    relayed = await relay_whole(
        observed, ScriptedUpstream(reads), client.send, [], 1000, lambda: client.gone
    )
    assert [m.get("body") for m in client.messages[1:]] == [*reads, b""]
    assert client.body == COMPLETION and relayed.outcome.status == "completed"


async def test_a_body_over_the_capture_limit_is_relayed_but_not_parsed():
    client, observed = Client(), capture()
    relayed = await relay_whole(
        observed, ScriptedUpstream([COMPLETION]), client.send, [], 10, lambda: client.gone
    )
    assert client.body == COMPLETION and relayed.outcome.status == "completed"
    assert observed.usage is None and observed.text is None


async def test_an_upstream_failing_before_the_first_byte_raises_for_airuns_to_answer():
    client = Client()
    with pytest.raises(UpstreamTimeout):
        await relay_whole(
            capture(), ScriptedUpstream([UpstreamTimeout("stalled")]), client.send, [], 1000,
            lambda: False,
        )  # fmt: skip
    assert client.messages == []  # nothing sent: the handler answers 504


async def test_an_upstream_failing_midway_leaves_the_response_unfinished():
    client = Client()
    reads: list[bytes | Exception] = [COMPLETION[:10], UpstreamUnreachable("broke off")]
    relayed = await relay_whole(
        capture(), ScriptedUpstream(reads), client.send, [], 1000, lambda: False
    )
    assert relayed.outcome == Outcome("error", 200, "broke off") and not relayed.drained
    assert not client.ended  # the server closes the connection: the client sees a broken body


@pytest.mark.parametrize(
    "body, error",
    [(b'{"error": {"message": "bad model"}}', "bad model"), (b"<html>gateway</html>", None)],
)
async def test_an_error_status_is_an_error_with_the_bodys_message(body, error):
    client = Client()
    relayed = await relay_whole(
        capture(), ScriptedUpstream([body], status=502), client.send, [], 1000, lambda: False
    )
    assert relayed.outcome.status == "error" and relayed.outcome.http_status == 502
    assert relayed.outcome.error == (error or body.decode())


async def test_a_client_leaving_mid_body_is_cancelled_with_the_status_it_got():
    client = Client(leave_after=2)
    relayed = await relay_whole(
        capture(), ScriptedUpstream([b"a", b"b", b"c"]), client.send, [], 1000, lambda: client.gone
    )
    assert relayed.outcome == Outcome("cancelled", 200, "client disconnected")


# -- relay_stream -----------------------------------------------------------------------------


async def stream(reads, client: Client | None = None, injected: bool = False, limit=None):
    client = client or Client()
    observed = capture(injected)
    relayed = await relay_stream(
        observed, ScriptedUpstream(reads), client.send, [], SSEDecoder(limit), lambda: client.gone
    )
    return relayed, client, observed


async def test_events_are_relayed_as_they_came_and_the_injected_usage_chunk_dropped():
    relayed, client, observed = await stream([CHUNK + USAGE[:7], USAGE[7:] + DONE], injected=True)
    assert relayed.outcome == Outcome("completed", 200) and relayed.drained
    assert client.body == CHUNK + DONE
    assert observed.text == "hi" and observed.usage.total_tokens == 3


async def test_a_stall_mid_stream_ends_it_with_an_error_event_and_a_timeout():
    relayed, client, _ = await stream([CHUNK, UpstreamTimeout("no data")])
    assert relayed.outcome == Outcome("timeout", 200, "no data")
    assert client.body.startswith(CHUNK) and b"event: error" in client.body and client.ended


async def test_a_break_after_done_does_not_change_the_answer():
    relayed, client, _ = await stream([CHUNK + DONE, UpstreamUnreachable("reset")])
    assert relayed.outcome == Outcome("completed", 200)
    assert b"event: error" not in client.body and client.ended


async def test_an_oversized_event_ends_the_stream_after_the_events_before_it():
    big = b"data: " + b"x" * 200 + b"\n\n"
    relayed, client, _ = await stream([CHUNK + big + DONE], limit=100)
    assert relayed.outcome.status == "error" and "max_event_bytes (100 bytes)" in (
        relayed.outcome.error or ""
    )
    assert client.body.startswith(CHUNK) and b"x" * 101 not in client.body


@pytest.mark.parametrize("leave_after, status", [(2, "cancelled"), (3, "completed")])
async def test_a_client_leaving_after_the_terminal_event_does_not_cancel_the_call(
    leave_after, status
):
    """Sends: the start, the chunk, then [DONE]: leaving before [DONE] is cancelled, leaving
    after it (as the official SDKs do) is the upstream's answer."""
    client = Client(leave_after=leave_after)
    relayed, _, _ = await stream([CHUNK, DONE, b": lingering\n\n"], client)
    assert relayed.outcome.status == status and relayed.outcome.http_status == 200


async def test_a_cancellation_that_is_not_the_client_leaving_propagates():
    client = Client(leave_after=1)
    with pytest.raises(asyncio.CancelledError):
        await relay_stream(
            capture(), ScriptedUpstream([CHUNK]), client.send, [], SSEDecoder(), lambda: False
        )


async def test_any_project_error_from_the_upstream_is_an_outcome_never_an_exception():
    relayed, _, _ = await stream([ProxyError("odd")])
    assert relayed.outcome.status == "error" and relayed.outcome.error == "odd"
