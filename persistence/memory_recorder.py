"""A `Recorder` that keeps every record in a list: for tests and benchmarks that look at what a
call recorded without a database. Its records are never "stored" elsewhere, so the task ids it
holds stay claimed (`InFlightTasks`): a duplicate `X-Task-Id` is refused for its lifetime."""

from __future__ import annotations

from persistence.inflight import InFlightTasks
from persistence.record import CallRecord


class MemoryRecorder:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []
        self.inflight = InFlightTasks()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def submit(self, record: CallRecord) -> None:
        self.records.append(record)

    def status(self) -> dict[str, int]:
        return {"backlog": 0, "spooled": 0, "dropped": 0, "rejected": 0}

    def finals(self) -> list[CallRecord]:
        return [r for r in self.records if r.is_final]
