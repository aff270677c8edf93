"""Call records ↔ task rows: the one mapping, both ways, and the records built from others."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from persistence.models import tasks_table
from persistence.record import RunInfo
from persistence.rows import (
    MAX_CALL_COST,
    closing_record,
    coalesce,
    record_from_row,
    run_row,
    task_row,
)
from pricing.usage import Usage
from tests.persistence.conftest import Records

RECORDS = Records()


def test_a_task_row_has_every_column_of_the_table():
    row = task_row(RECORDS.make("t1"), RECORDS.prices)
    assert set(row) == {column.name for column in tasks_table.columns}


def test_a_row_read_back_is_the_record_without_usage():
    record = RECORDS.make(
        "t1", run="r1", ttft_ms=12.5, http_status=200, response_text="hi", instance_id="i:1"
    )
    row = SimpleNamespace(**task_row(record, RECORDS.prices))
    back = record_from_row(row)
    assert back.usage is None
    assert back == record.__class__(**{**_fields(record), "usage": None, "run": RunInfo("r1")})
    assert record_from_row(row, status="error").status == "error"


def _fields(record) -> dict:
    return {name: getattr(record, name) for name in record.__slots__}


def test_usage_and_price_reach_their_columns():
    row = task_row(RECORDS.make("t1"), RECORDS.prices)
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        1000,
        100,
        1100,
    )
    assert row["cost"] == RECORDS.usage_cost and row["price"]["source"] == "override"


def test_a_start_record_is_never_priced():
    row = task_row(RECORDS.make("t1", status="pending"), RECORDS.prices)
    assert row["cost"] is None and row["price"] is None


def test_a_call_priced_at_a_million_dollars_or_more_is_left_unpriced():
    huge = Usage(prompt_tokens=2**50, completion_tokens=0, total_tokens=2**50)
    row = task_row(RECORDS.make("t1", usage=huge), RECORDS.prices)
    assert 2**50 * Decimal(3) / 10**6 >= MAX_CALL_COST
    assert row["cost"] is None and row["prompt_tokens"] == 2**50


@pytest.mark.parametrize(
    "status, http_status, latency, stored_status, stored_latency",
    [
        (200, 200, 12.0, 200, 12.0),
        (2**70, 2**70, float("inf"), None, None),
        (-1, -1, -5.0, None, None),
    ],
)
def test_a_closing_record_keeps_only_what_a_column_holds(
    status, http_status, latency, stored_status, stored_latency
):
    record = RECORDS.make(
        "t1",
        run=RunInfo("r1", name="n", metadata={"k": 1}),
        http_status=http_status,
        upstream_latency_ms=latency,
        response_text="text",
        tool_calls=[{"id": "c"}],
    )
    closed = closing_record(record, "DataError: nope")
    assert (closed.status, closed.http_status, closed.upstream_latency_ms) == (
        "error", stored_status, stored_latency
    )  # fmt: skip
    assert closed.run == RunInfo("r1") and closed.request is None and closed.usage is None
    assert closed.response_text is None and closed.tool_calls is None
    assert closed.error_message == "airuns could not store this call's record: DataError: nope"
    assert (closed.task_id, closed.started_at) == (record.task_id, record.started_at)


def test_coalesce_keeps_the_first_final_record_with_the_earliest_start():
    start = RECORDS.make("t1", status="pending", started=0)
    final = RECORDS.make("t1", started=5)
    later = RECORDS.make("t1", status="error", started=7)
    other = RECORDS.make("t2", status="pending", started=1)
    (first, second) = coalesce([start, other, final, later])
    assert (first.task_id, first.status, first.started_at) == ("t1", "completed", start.started_at)
    assert second is other


def test_a_new_run_takes_its_settings_and_name_from_the_request():
    record = RECORDS.make(
        "t1",
        request={"model": "m", "temperature": 0.1, "messages": [{"role": "user", "content": "Hi"}]},
    )
    run = run_row(record)
    assert run["name"] == "Hi" and run["settings"] == {"model": "m", "temperature": 0.1}
