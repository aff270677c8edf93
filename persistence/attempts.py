"""Attempts of one logical call: which one speaks for the call. Pure.

A client that retries a call (the OpenAI SDKs retry a 502 twice by default) leaves one task row
per attempt. The rows of one call share its run and its first attempt's id: the first attempt
is the row whose id that is (`attempt_of` NULL), the others name it in `attempt_of`. A
retry whose first attempt was never stored still belongs to the call it names.

A run counts each call once, by its *last* attempt — highest `attempt`, then latest
`created_at`, then highest id, an order no later write can change — so the last attempt's
status decides whether the call failed. Every other attempt is `retried`. Tokens and cost are
not per call but per attempt: a provider bills every attempt that produced usage, so a run's
sums stay right to the cent.

`apply.py` reads a call's rows under a lock and moves the `retried` flags with
`retried_changes`; each change moves the run's `task_count` and `error_count` with it, so
those stay the sums over the rows that are not `retried`, however late or often attempts
arrive.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from persistence.record import ERROR_STATUSES

CallKey = tuple[str | None, str]  # (run id, first attempt's id)


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """What deciding among a call's attempts needs of a task row."""

    id: str
    run_id: str | None
    attempt_of: str | None
    attempt: int
    created_at: datetime
    status: str
    retried: bool
    # The row's usage-rollup key besides `created_at` (`persistence/rollups.py`).
    upstream_model: str | None = None
    provider: str | None = None
    user_id: str | None = None
    owner: str | None = None

    @property
    def call(self) -> CallKey:
        return self.run_id, self.attempt_of or self.id

    @property
    def is_error(self) -> bool:
        return self.status in ERROR_STATUSES


def last_attempt_order(row: AttemptRow) -> tuple[int, datetime, str]:
    return row.attempt, row.created_at, row.id


def retried_changes(rows: Iterable[AttemptRow]) -> list[tuple[AttemptRow, bool]]:
    """The rows whose `retried` flag must change, with its new value, so that of each call
    exactly the last attempt is not `retried`."""
    calls: dict[CallKey, list[AttemptRow]] = defaultdict(list)
    for row in rows:
        calls[row.call].append(row)
    changes = []
    for attempts in calls.values():
        last = max(attempts, key=last_attempt_order)
        for row in attempts:
            retried = row is not last
            if row.retried != retried:
                changes.append((row, retried))
    return changes
