"""Which attempt of a call speaks for it: the last one, in an order no later write changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from persistence.attempts import AttemptRow, retried_changes

T0 = datetime(2026, 11, 21, 9, tzinfo=UTC)


def row(
    task_id: str,
    attempt: int = 1,
    of: str | None = None,
    *,
    run: str | None = "r",
    at: float = 0,
    status: str = "error",
    retried: bool = False,
) -> AttemptRow:
    return AttemptRow(task_id, run, of, attempt, T0 + timedelta(seconds=at), status, retried)


def flags(rows: list[AttemptRow]) -> dict[str, bool]:
    """Every row's flag once the changes are applied."""
    result = {r.id: r.retried for r in rows}
    result |= {r.id: retried for r, retried in retried_changes(rows)}
    return result


@pytest.mark.parametrize(
    "rows, retried",
    [
        ([row("a")], {"a": False}),
        ([row("a"), row("b", 2, "a", at=1), row("c", 3, "a", at=2)], {"a", "b"}),
        # the order the rows come in does not matter
        ([row("c", 3, "a", at=2), row("a"), row("b", 2, "a", at=1)], {"a", "b"}),
        # a first attempt that was never stored: the retries are still one call
        ([row("b", 2, "lost", at=1), row("c", 3, "lost", at=2)], {"b"}),
        # same attempt number (a confused client): the later start, then the higher id
        ([row("a"), row("b", 2, "a", at=1), row("x", 2, "a", at=5)], {"a", "b"}),
        ([row("a"), row("b", 2, "a", at=1), row("c", 2, "a", at=1)], {"a", "b"}),
        # the attempt number outranks the start time
        ([row("a", 3, at=9), row("b", 2, "a", at=1)], {"b"}),
    ],
)
def test_only_the_last_attempt_of_a_call_is_not_retried(rows, retried) -> None:
    expected = {r.id: r.id in retried for r in rows} if isinstance(retried, set) else retried
    assert flags(rows) == expected


def test_calls_are_kept_apart_by_first_attempt_and_by_run() -> None:
    rows = [
        row("a"),
        row("b", 2, "a", at=1),
        row("z"),  # another call
        row("a2", 2, "a", run="other", at=2),  # names `a`, but in another run: a call of its own
        row("n", run=None),
        row("n2", 2, "n", run=None, at=1),  # calls without a run have attempts too
    ]
    assert {task for task, retried in flags(rows).items() if retried} == {"a", "n"}


def test_only_flags_that_must_move_are_changed() -> None:
    settled = [row("a", retried=True), row("b", 2, "a", at=1)]
    assert retried_changes(settled) == []
    a_third_attempt = [*settled, row("c", 3, "a", at=2)]
    assert [(r.id, retried) for r, retried in retried_changes(a_third_attempt)] == [("b", True)]
    a_late_first_attempt = [row("b", 2, "a", at=1), row("a", status="pending")]
    assert [(r.id, retried) for r, retried in retried_changes(a_late_first_attempt)] == [
        ("a", True)
    ]


def test_an_error_is_an_error_or_timeout_but_not_a_cancellation() -> None:
    assert row("a", status="error").is_error and row("a", status="timeout").is_error
    assert not row("a", status="cancelled").is_error
    assert not row("a", status="completed").is_error
