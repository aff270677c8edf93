"""The backlog: records waiting for the database, oldest first, spool before memory; spilled
records move from the head of memory to the tail of the spool and are never written twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from persistence.backlog import Backlog
from persistence.spool import Spool
from tests.persistence.conftest import Records

RECORDS = Records()


@pytest.fixture
def backlog(tmp_path: Path) -> Backlog:
    backlog = Backlog(queue_size=3)
    backlog.spool = Spool.create(tmp_path, "me:1:aa")
    return backlog


def ids(records) -> list[str]:
    return [record.task_id for record in records]


def test_memory_is_taken_in_order_in_batches(backlog: Backlog) -> None:
    for i in range(5):
        backlog.push(RECORDS.make(f"t{i}"), now=float(i))
    assert len(backlog) == 5
    batch = backlog.take(2)
    assert ids(batch.records) == ["t0", "t1"] and len(backlog) == 5  # in flight still counts
    backlog.done(batch)
    assert len(backlog) == 3


def test_a_backlog_behind_takes_larger_batches(backlog: Backlog) -> None:
    for i in range(10):
        backlog.push(RECORDS.make(f"t{i}"), now=0.0)
    assert len(backlog.take(2, catch_up_limit=8).records) == 8


def test_what_waited_too_long_is_spilled_oldest_first_and_read_back_first(
    backlog: Backlog,
) -> None:
    for i in range(3):
        backlog.push(RECORDS.make(f"t{i}"), now=float(i))
    moved = backlog.spill(now=10.0, max_age=8.5)  # t0 and t1 waited more than 8.5 s
    assert ids(moved) == ["t0", "t1"] and backlog.spooled == 2
    backlog.push(RECORDS.make("t3"), now=11.0)
    first = backlog.take(10)
    assert first.from_spool and ids(first.records) == ["t0", "t1"]
    backlog.done(first)
    assert ids(backlog.take(10).records) == ["t2", "t3"]


def test_beyond_queue_size_all_of_memory_is_spilled(backlog: Backlog) -> None:
    for i in range(4):
        backlog.push(RECORDS.make(f"t{i}"), now=100.0)
    assert ids(backlog.spill(now=100.0, max_age=1000.0)) == ["t0", "t1", "t2", "t3"]
    assert not backlog.memory


def test_a_batch_in_flight_is_spilled_once_and_not_written_twice(backlog: Backlog) -> None:
    for i in range(2):
        backlog.push(RECORDS.make(f"t{i}"), now=0.0)
    in_flight = backlog.take(10)
    backlog.push(RECORDS.make("t2"), now=5.0)
    moved = backlog.spill(now=10.0, max_age=1.0)  # the write hangs: everything to disk
    assert ids(moved) == ["t0", "t1", "t2"]
    backlog.done(in_flight)  # then it was written after all: its spool copy is consumed
    rest = backlog.take(10)
    assert rest.from_spool and ids(rest.records) == ["t2"]


def test_without_a_spool_the_oldest_start_record_is_dropped_first() -> None:
    backlog = Backlog(queue_size=2)
    backlog.push(RECORDS.make("final"), now=0.0)
    backlog.push(RECORDS.make("start", status="pending"), now=1.0)
    assert backlog.drop_one().task_id == "start"
    assert backlog.drop_one().task_id == "final"
