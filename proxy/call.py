"""One call on its way through airuns: what is known of it once its request is accepted, and
the records it hands to the recorder.

Timing: `started` is stamped when the request arrived (perf_counter); the upstream response
counts the time spent waiting on the upstream (`UpstreamResponse.waited`), so `overhead` =
total − that wait is the time spent in airuns itself (the `airuns_overhead_seconds` histogram).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from persistence.record import CANCELLED, CallRecord, RunInfo
from pricing.usage import estimate_usage
from proxy.capture import Capture
from proxy.headers import Tracking
from proxy.intake import Prepared
from proxy.outcome import Outcome
from proxy.redaction import Redactor
from proxy.retries import FIRST, Attempt
from proxy.upstream import UpstreamResponse


@dataclass(frozen=True, slots=True)
class Call:
    task_id: str
    tracking: Tracking
    endpoint: str
    started: float
    started_at: datetime
    prepared: Prepared
    capture: Capture
    run: RunInfo | None
    # The client's own credential: only ever used to mask it out of stored error text.
    credential: str | None = field(default=None, repr=False)
    attempt: Attempt = FIRST  # its place among the attempts of a call the client retried

    @classmethod
    def begin(
        cls,
        task_id: str,
        tracking: Tracking,
        endpoint: str,
        arrived: float,
        prepared: Prepared,
        max_text: int,
        credential: str | None,
        attempt: Attempt = FIRST,
    ) -> Call:
        capture = Capture(
            endpoint,
            started=arrived,
            usage_injected=prepared.usage_injected,
            max_text=max_text if tracking.track else 0,
        )
        run = None
        if tracking.run_id is not None:
            run = RunInfo(
                tracking.run_id,
                tracking.run_name,
                tracking.source_type,
                tracking.source_id,
                tracking.run_metadata,
            )
        started_at = datetime.now(UTC)
        return cls(task_id, tracking, endpoint, arrived, started_at, prepared, capture, run,
                   credential, attempt)  # fmt: skip

    def record(self, status: str, http_status: int | None = None) -> CallRecord:
        """The record of a call under way (`pending`, `streaming`)."""
        return CallRecord(**self._identity(status), http_status=http_status)

    def final_record(
        self,
        outcome: Outcome,
        upstream: UpstreamResponse | None,
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
        capture = self.capture
        total = now - self.started
        text = capture.text
        usage, usage_source = capture.usage, "provider" if capture.usage else "missing"
        error = outcome.error
        if capture.usage_problem is not None:
            usage_source = "invalid"
            error = error or f"upstream reported invalid usage: {capture.usage_problem}"
        elif usage is None and outcome.status == CANCELLED:
            usage = estimate_usage(self.prepared.request, text)
            usage_source = "estimated" if usage is not None else "missing"
        if text is not None and max_text is not None and len(text) > max_text:
            text = text[:max_text]
        waited = upstream.waited if upstream is not None else 0.0
        latency = (upstream.headers_at - self.started) * 1000.0 if upstream is not None else None
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
            upstream_latency_ms=latency,
            ttft_ms=capture.ttft_ms if self.prepared.stream else None,
            total_time_ms=total * 1000.0,
            overhead_ms=(total - waited) * 1000.0,
            completed_at=datetime.now(UTC),
        )

    def _identity(self, status: str) -> dict:
        tracking, prepared = self.tracking, self.prepared
        return {
            "task_id": self.task_id,
            "run": self.run,
            "task_name": tracking.task_name,
            "user_id": tracking.user_id,
            "owner": None,
            "endpoint": self.endpoint,
            "provider": prepared.provider,
            "model": prepared.model,
            "upstream_model": prepared.upstream_model,
            "stream": prepared.stream,
            "status": status,
            "started_at": self.started_at,
            "request": prepared.request,
            "attempt": self.attempt.number,
            "attempt_of": self.attempt.of,
        }
