"""The record contract: what one proxied call leaves behind, and the seam that takes it.

It sits at the bottom of the layers that share it (`proxy` builds records, `persistence` stores
them), so both import it from here and nothing here imports either. A `CallRecord` is built on
the request path from what was already parsed; a `Recorder` takes it without waiting (`submit`
never blocks and never raises), so storage can never slow or fail a forwarded call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from persistence.inflight import InFlightTasks
from pricing.usage import Usage

# Task statuses (SPEC "Data model").
PENDING = "pending"
STREAMING = "streaming"
COMPLETED = "completed"
ERROR = "error"
CANCELLED = "cancelled"
TIMEOUT = "timeout"
OPEN_STATUSES = (PENDING, STREAMING)
FINAL_STATUSES = frozenset({COMPLETED, ERROR, CANCELLED, TIMEOUT})
ERROR_STATUSES = frozenset({ERROR, TIMEOUT})  # cancelled is the client's choice, not an error

# The endpoints airuns understands (SPEC "Proxy endpoints"); any other /v1/ path is passed
# through and recorded as it is.
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
RESPONSES = "/v1/responses"
EMBEDDINGS = "/v1/embeddings"
MODELS = "/v1/models"
JSON_ENDPOINTS = frozenset({CHAT, COMPLETIONS, RESPONSES, EMBEDDINGS})
# Endpoints whose request holds a conversation: a run is named after its first user message and
# shows its messages (an embeddings `input` or a completions `prompt` is not one).
CONVERSATION_ENDPOINTS = frozenset({CHAT, RESPONSES})


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
    one when it ends; both carry the same `task_id`, and the final one supersedes.

    A client's retry of a call is another attempt of the same logical call, with a task of its
    own: `attempt` counts from 1, `attempt_of` is the task id of the call's first attempt (None
    on that one, or when airuns never saw it); see `persistence/attempts.py`."""

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
    attempt: int = 1
    attempt_of: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class Recorder(Protocol):
    """What the proxy needs of whatever stores its records: its whole surface."""

    # Task ids whose final record is not stored yet: the handler claims a client-chosen id
    # here before forwarding, the recorder releases it once the record is stored or spooled.
    inflight: InFlightTasks

    async def start(self) -> None:
        """Begin taking records (never waits for a database)."""

    async def stop(self) -> None:
        """Store, or keep on disk, everything submitted so far; bounded in time."""

    def submit(self, record: CallRecord) -> None:
        """Hand over a record without waiting; must never raise."""

    def status(self) -> dict[str, int]:
        """For `/readyz` and `/metrics`: `backlog`, `spooled`, `dropped`, `rejected`."""


def is_unpriced(status: str, cost: Any, total_tokens: int | None) -> bool:
    """A task whose cost is missing from its run's `total_cost`: an unknown model, usage a
    completed or cancelled call did not report, a cost left unpriced. A call that failed with
    no usage (a 502, a refused request) has nothing to price: its cost is null too, but it is
    not counted in `unpriced_task_count`."""
    return cost is None and not (total_tokens is None and status in ERROR_STATUSES)
