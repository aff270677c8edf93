"""One call's state on its way through airuns, and the records it hands to the recorder.

Timing: `started` is stamped when the request arrived (perf_counter); `upstream_wait` adds up
the time spent awaiting the upstream, so `overhead` = total − upstream_wait is the time spent
in airuns itself (what the `airuns_overhead_seconds` histogram reports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pricing.usage import estimate_usage
from proxy.capture import Capture
from proxy.headers import Tracking
from proxy.outcome import Outcome
from proxy.recording import CANCELLED, CallRecord, RunInfo
from proxy.redaction import Redactor


@dataclass(slots=True)
class Call:
    task_id: str
    tracking: Tracking
    endpoint: str
    method: str
    started: float
    started_at: datetime
    owner: str | None = None
    provider: str = ""
    model: str | None = None
    upstream_model: str | None = None
    stream: bool = False
    usage_injected: bool = False
    upstream_drained: bool = False  # the upstream body was read to its end
    request: dict[str, Any] | None = None
    http_status: int | None = None  # of the response the client has been sent, once started
    terminal_relayed: bool = False  # the stream's terminal event has reached the client
    headers_at: float | None = None
    upstream_wait: float = 0.0
    capture: Capture | None = None
    instance_id: str | None = None
    # The client's own credential: only ever used to mask it out of stored error text.
    credential: str | None = field(default=None, repr=False)
    run: RunInfo | None = field(default=None)

    @classmethod
    def begin(
        cls, task_id: str, tracking: Tracking, endpoint: str, method: str, arrived: float
    ) -> Call:
        run = None
        if tracking.run_id is not None:
            run = RunInfo(
                tracking.run_id,
                tracking.run_name,
                tracking.source_type,
                tracking.source_id,
                tracking.run_metadata,
            )
        return cls(
            task_id,
            tracking,
            endpoint,
            method,
            arrived,
            datetime.now(UTC),
            run=run,
        )

    def record(self, status: str, http_status: int | None = None) -> CallRecord:
        """The record of a call under way (`pending`, `streaming`)."""
        return CallRecord(**self._identity(status), http_status=http_status)

    def final_record(
        self,
        outcome: Outcome,
        now: float,
        redactor: Redactor,
        *,
        keep_response: bool = True,
        max_text: int | None = None,
    ) -> CallRecord:
        """The record of a finished call: its outcome, timings and what was captured. Without
        `keep_response` (capture.response_bodies: false) the reply's text and tool calls are
        left out; text beyond `max_text` characters is truncated. Credentials in the error
        text are masked before it goes anywhere."""
        capture = self.capture or Capture(self.endpoint, started=self.started)
        total = now - self.started
        text = capture.text
        usage, usage_source = capture.usage, "provider" if capture.usage else "missing"
        error = outcome.error
        if capture.usage_problem is not None:
            usage_source = "invalid"
            error = error or f"upstream reported invalid usage: {capture.usage_problem}"
        elif usage is None and outcome.status == CANCELLED:
            usage = estimate_usage(self.request, text)
            usage_source = "estimated" if usage is not None else "missing"
        if text is not None and max_text is not None and len(text) > max_text:
            text = text[:max_text]
        return CallRecord(
            **self._identity(outcome.status),
            http_status=outcome.http_status,
            response_model=capture.response_model,
            response_text=text if keep_response else None,
            tool_calls=capture.tool_call_list if keep_response else None,
            finish_reason=capture.finish_reason,
            error_message=redactor.mask(error, self.credential),
            usage=usage,
            usage_source=usage_source,
            upstream_latency_ms=_ms(self.headers_at, self.started),
            ttft_ms=capture.ttft_ms if self.stream else None,
            total_time_ms=total * 1000.0,
            overhead_ms=(total - self.upstream_wait) * 1000.0,
            completed_at=datetime.now(UTC),
        )

    def _identity(self, status: str) -> dict[str, Any]:
        tracking = self.tracking
        return {
            "task_id": self.task_id,
            "run": self.run,
            "task_name": tracking.task_name,
            "user_id": tracking.user_id,
            "owner": self.owner,
            "endpoint": self.endpoint,
            "provider": self.provider,
            "model": self.model,
            "upstream_model": self.upstream_model,
            "stream": self.stream,
            "status": status,
            "started_at": self.started_at,
            "request": self.request,
            "instance_id": self.instance_id,
        }


def _ms(at: float | None, since: float) -> float | None:
    return None if at is None else (at - since) * 1000.0
