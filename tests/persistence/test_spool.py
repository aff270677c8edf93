"""The spool: a pure record codec, and files whose lock tells a live process from a dead one."""

from __future__ import annotations

import fcntl
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from persistence.record import CallRecord, RunInfo
from persistence.spool import (
    SUFFIX,
    Spool,
    SpoolFormatError,
    claim_dead_spools,
    decode_header,
    decode_record,
    encode_header,
    encode_record,
    read_lines,
)
from pricing.usage import Usage

T0 = datetime(2026, 11, 21, 9, 5, 7, 123456, tzinfo=UTC)


def record(task_id: str = "t1", **fields) -> CallRecord:
    values = {
        "task_id": task_id,
        "run": None,
        "task_name": None,
        "user_id": None,
        "owner": None,
        "endpoint": "/v1/chat/completions",
        "provider": "mock",
        "model": "gpt-4o-mini",
        "upstream_model": "gpt-4o-mini",
        "stream": True,
        "status": "pending",
        "started_at": T0,
    }
    return CallRecord(**(values | fields))


ROUND_TRIP_CASES = {
    "minimal pending": record(),
    "final with everything": record(
        run=RunInfo("run-1", "A name", "agent", "src-9", {"k": {"nested": [1, 2.5, None]}}),
        task_name="summarize",
        user_id="u1",
        owner="alice",
        status="completed",
        request={"model": "m", "messages": [{"role": "user", "content": 'héllo ✓ \n"q"'}]},
        http_status=200,
        response_model="gpt-4o-mini-2024-07-18",
        response_text="line 1\nline 2 — ünïcode 🚀",
        tool_calls=[{"id": "c1", "function": {"name": "f", "arguments": '{"a": 1}'}}],
        finish_reason="stop",
        usage=Usage(12, 34, 46, cached_tokens=2, reasoning_tokens=5, cache_write_tokens=None),
        usage_source="provider",
        upstream_latency_ms=12.345678901234,
        ttft_ms=0.1,
        total_time_ms=1e-7,
        overhead_ms=3.0,
        completed_at=T0 + timedelta(seconds=1.5),
        instance_id="host:123:abcd1234",
    ),
    "usage with missing counts": record(status="error", usage=Usage(prompt_tokens=7)),
    "non-UTC offset survives": record(started_at=T0.astimezone(timezone(timedelta(hours=5)))),
    "lone surrogate from client JSON": record(request={"messages": [{"content": "\ud800x"}]}),
    "empty strings and containers": record(task_name="", request={}, tool_calls=[]),
}


@pytest.mark.parametrize("original", ROUND_TRIP_CASES.values(), ids=ROUND_TRIP_CASES.keys())
def test_records_round_trip_exactly(original: CallRecord) -> None:
    line = encode_record(original)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one record, one line
    decoded = decode_record(line[:-1])
    assert decoded == original
    assert decoded.started_at.utcoffset() == original.started_at.utcoffset()


@pytest.mark.parametrize(
    "line",
    [b"", b"{", b"[]", b'{"task_id": "t"}', b'{"started_at": 5}', b"\xff\xfe"],
    ids=["empty", "torn", "not an object", "missing fields", "bad datetime", "not utf-8"],
)
def test_a_line_that_is_not_a_record_is_a_format_error(line: bytes) -> None:
    with pytest.raises(SpoolFormatError):
        decode_record(line)


def test_header_names_the_instance_and_refuses_other_versions() -> None:
    assert decode_header(encode_header("h:1:ab")[:-1]) == "h:1:ab"
    with pytest.raises(SpoolFormatError):
        decode_header(b'{"airuns_spool": 99, "instance_id": "x"}')


@pytest.mark.parametrize("limit", [1, 2, 3, 10])
@pytest.mark.parametrize("tail", [b"", b"torn-without-newline"])
def test_read_lines_returns_complete_lines_only(tmp_path: Path, limit: int, tail: bytes) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a\nbb\n\nccc\n" + tail)
    fd = os.open(path, os.O_RDONLY)
    try:
        lines, end = read_lines(fd, 0, path.stat().st_size, limit)
    finally:
        os.close(fd)
    expected = [b"a", b"bb", b"", b"ccc"][:limit]
    assert lines == expected
    assert end == sum(len(line) + 1 for line in expected)


def test_appended_records_are_read_back_in_order_and_consumed(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, "h:1:ab")
    spool.append([record("t1"), record("t2")])
    spool.append([record("t3")])
    spool.sync()
    assert spool.pending == 3
    first, end, lines = spool.read(2)
    assert ([r.task_id for r in first], lines) == (["t1", "t2"], 2)
    spool.consume(end, lines)
    rest, end, lines = spool.read(10)
    assert [r.task_id for r in rest] == ["t3"]
    spool.consume(end, lines)
    assert spool.pending == 0
    assert spool.path.stat().st_size == len(encode_header("h:1:ab"))  # shrunk to its header
    spool.append([record("t4")])
    assert [r.task_id for r in spool.read(10)[0]] == ["t4"]
    spool.close()


def test_a_live_spool_is_locked_and_a_closed_one_is_claimed_and_replayed(tmp_path: Path) -> None:
    live = Spool.create(tmp_path, "live:1:aa")
    stopped = Spool.create(tmp_path, "stopped:2:bb")
    stopped.append([record("s1"), record("s2")])
    stopped.close()  # records left: the file stays, unlocked
    live.append([record("l1")])
    claimed = claim_dead_spools(tmp_path)
    assert [s.instance_id for s in claimed] == ["stopped:2:bb"]
    assert [[r.task_id for r in b] for b in claimed[0].batches(1)] == [["s1"], ["s2"]]
    claimed[0].discard()
    assert not claimed[0].path.exists()
    assert claim_dead_spools(tmp_path) == []
    live.close()


def test_an_empty_spool_is_removed_on_close(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, "h:1:ab")
    spool.close()
    assert list(tmp_path.iterdir()) == []


def test_a_torn_last_record_of_a_dead_spool_is_ignored(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, "h:1:ab")
    spool.append([record("t1")])
    spool.close()
    with spool.path.open("ab") as file:  # a crash in the middle of the next append
        file.write(encode_record(record("t2"))[:-10])
    [dead] = claim_dead_spools(tmp_path)
    assert [r.task_id for b in dead.batches(10) for r in b] == ["t1"]
    dead.release()


def test_a_corrupt_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, "h:1:ab")
    spool.append([record("t1")])
    spool.close()
    with spool.path.open("ab") as file:
        file.write(b"garbage\n" + encode_record(record("t2")))
    [dead] = claim_dead_spools(tmp_path)
    assert [r.task_id for b in dead.batches(10) for r in b] == ["t1", "t2"]
    dead.release()


def test_a_spool_locked_by_another_open_file_is_not_claimed(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, "h:1:ab")
    spool.append([record("t1")])
    spool.close()
    path = next(tmp_path.glob(f"*{SUFFIX}"))
    fd = os.open(path, os.O_RDONLY)  # another process holding the lock
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert claim_dead_spools(tmp_path) == []
    finally:
        os.close(fd)
    [dead] = claim_dead_spools(tmp_path)
    dead.release()


def test_spool_names_are_safe_file_names(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, "host/with spaces:1:ab")
    assert spool.path.parent == tmp_path and spool.path.name == "host_with_spaces:1:ab.spool"
    spool.close()
