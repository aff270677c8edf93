"""What one proxied call leaves behind, and the seam that takes it.

A `CallRecord` is built on the request path from what was already parsed; the `Recorder`
takes it without waiting (`submit` never blocks and never raises), so persistence can never
slow or fail a forwarded call. Imports nothing from the web framework or the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pricing.usage import Usage

# Task statuses (SPEC "Data model").
PENDING = "pending"
STREAMING = "streaming"
COMPLETED = "completed"
ERROR = "error"
CANCELLED = "cancelled"
TIMEOUT = "timeout"
FINAL_STATUSES = frozenset({COMPLETED, ERROR, CANCELLED, TIMEOUT})


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The run-level headers of a call; applied only when the call creates the run."""

    id: str
    name: str | None = None
    source_type: str | None = None
    source_id: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call's captured facts. A call submits a `pending` record when it starts and a final
    one when it ends; both carry the same `task_id`, and the final one supersedes."""

    task_id: str
    run: RunInfo | None
    task_name: str | None
    user_id: str | None
    owner: str | None
    endpoint: str
    provider: str
    model: str | None
    upstream_model: str | None
    stream: bool
    status: str
    started_at: datetime
    request: dict[str, Any] | None = None
    http_status: int | None = None
    response_model: str | None = None
    response_text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    error_message: str | None = None
    usage: Usage | None = None
    usage_source: str = "missing"
    upstream_latency_ms: float | None = None
    ttft_ms: float | None = None
    total_time_ms: float | None = None
    overhead_ms: float | None = None
    completed_at: datetime | None = None
    instance_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class Recorder(Protocol):
    def submit(self, record: CallRecord) -> None:
        """Hand over a record without waiting; must never raise."""

    def is_task_active(self, task_id: str) -> bool:
        """Whether a task with this id is in flight or already recorded (duplicate check)."""


class MemoryRecorder:
    """Keeps every record in a list: the recorder of tests and of `X-Run-Track`-less demos."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []
        self._task_ids: set[str] = set()

    def submit(self, record: CallRecord) -> None:
        self.records.append(record)
        self._task_ids.add(record.task_id)

    def is_task_active(self, task_id: str) -> bool:
        return task_id in self._task_ids

    def finals(self) -> list[CallRecord]:
        return [r for r in self.records if r.is_final]
