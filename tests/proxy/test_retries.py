"""Recognising a client's retry: the headers read (hostile values are no signal), which call a
retry belongs to, and memory that stays bounded."""

from __future__ import annotations

import pytest

from proxy.retries import (
    FIRST,
    MAX_ATTEMPTS,
    PER_DIGEST,
    Attempt,
    Fingerprint,
    Retries,
    RetrySignal,
    read_retry_signal,
)

CALL = Fingerprint("run-1", "sk-test", "POST", "/chat/completions", b'{"model":"m"}')


def sdk(count: int) -> RetrySignal:
    return RetrySignal(count=count)


@pytest.mark.parametrize(
    "headers, signal",
    [
        ([], RetrySignal()),
        ([(b"x-stainless-retry-count", b"0")], RetrySignal(count=0)),
        ([(b"x-stainless-retry-count", b"2")], RetrySignal(count=2)),
        ([(b"x-stainless-retry-count", b" 1 ")], RetrySignal(count=1)),
        ([(b"idempotency-key", b"stainless-retry-3f2a")], RetrySignal(key=b"stainless-retry-3f2a")),
        ([(b"idempotency-key", b"a%2Fb")], RetrySignal(key=b"a%2Fb")),
        ([(b"x-stainless-retry-count", b"1"), (b"idempotency-key", b"k")], RetrySignal(1, b"k")),
    ],
)  # fmt: skip
def test_usable_values_are_read(headers, signal) -> None:
    assert read_retry_signal(headers) == signal


HOSTILE_COUNTS = [
    b"-1", b"1e30", b"18446744073709551616", b"99999999999999999999999999999", b"NaN", b"inf",
    b"\x00", b"1\x00", b"", b"0x1", b"\xd9\xa1", b"1" * 10_000, b"+1", b"1.0",
]  # fmt: skip
HOSTILE_KEYS = [
    b"", b"a\x00b", b"\xed\xa0\x80", b"caf\xc3\xa9", b"k" * 10_240, b"a b", b"\x7f",
]  # fmt: skip


@pytest.mark.parametrize("value", HOSTILE_COUNTS)
def test_a_retry_count_that_is_not_a_small_number_is_no_signal(value) -> None:
    assert read_retry_signal([(b"x-stainless-retry-count", value)]).count is None


@pytest.mark.parametrize("value", HOSTILE_KEYS)
def test_an_idempotency_key_that_is_not_visible_ascii_is_no_signal(value) -> None:
    assert read_retry_signal([(b"idempotency-key", value)]).key is None


def test_a_retry_header_sent_twice_is_no_signal() -> None:
    twice = [(b"x-stainless-retry-count", b"1"), (b"x-stainless-retry-count", b"1")]
    twice += [(b"idempotency-key", b"a"), (b"idempotency-key", b"a")]
    assert read_retry_signal(twice) == RetrySignal()


def test_sdk_retries_are_attempts_of_the_first_call() -> None:
    retries = Retries()
    first = retries.begin(sdk(0), CALL, "t1")
    retries.end(first, failed=True)
    second = retries.begin(sdk(1), CALL, "t2")
    retries.end(second, failed=True)
    third = retries.begin(sdk(2), CALL, "t3")
    assert [(a.number, a.of) for a in (first, second, third)] == [(1, None), (2, "t1"), (3, "t1")]


def test_calls_without_a_signal_are_not_remembered() -> None:
    retries = Retries()
    assert retries.begin(RetrySignal(), CALL, "t1") == FIRST
    assert len(retries) == 0


DIFFERENT = [
    Fingerprint("run-2", CALL.credential, CALL.method, CALL.path, CALL.body),
    Fingerprint(None, CALL.credential, CALL.method, CALL.path, CALL.body),
    Fingerprint(CALL.run_id, "sk-other", CALL.method, CALL.path, CALL.body),
    Fingerprint(CALL.run_id, None, CALL.method, CALL.path, CALL.body),
    Fingerprint(CALL.run_id, CALL.credential, CALL.method, "/completions", CALL.body),
    Fingerprint(CALL.run_id, CALL.credential, CALL.method, CALL.path, b'{"model":"n"}'),
]


@pytest.mark.parametrize("other", DIFFERENT)
def test_a_retry_of_a_different_request_is_a_call_of_its_own(other) -> None:
    retries = Retries()
    retries.end(retries.begin(sdk(0), CALL, "t1"), failed=True)
    assert retries.begin(sdk(1), other, "t2") == Attempt(2, None)


def test_a_retry_whose_first_attempt_was_not_seen_is_numbered_by_its_count() -> None:
    retries = Retries()
    first_seen = retries.begin(sdk(2), CALL, "t3")
    assert (first_seen.number, first_seen.of) == (3, None)
    retries.end(first_seen, failed=True)
    again = retries.begin(sdk(3), CALL, "t4")
    assert (again.number, again.of) == (4, "t3")


def test_a_first_attempt_again_is_a_new_call() -> None:
    retries = Retries()
    retries.end(retries.begin(sdk(0), CALL, "t1"), failed=False)
    assert retries.begin(sdk(0), CALL, "t2") == Attempt(1, None)


def test_identical_calls_in_flight_each_get_their_own_retry() -> None:
    """Two identical calls at once; the one that failed is the one retried, even when the
    other started later."""
    retries = Retries()
    a = retries.begin(sdk(0), CALL, "a")
    b = retries.begin(sdk(0), CALL, "b")
    retries.end(a, failed=True)
    a2 = retries.begin(sdk(1), CALL, "a2")
    retries.end(b, failed=True)
    b2 = retries.begin(sdk(1), CALL, "b2")
    assert [(x.number, x.of) for x in (a2, b2)] == [(2, "a"), (2, "b")]


def test_a_failed_call_is_retried_before_one_that_succeeded() -> None:
    retries = Retries()
    failed = retries.begin(sdk(0), CALL, "failed")
    succeeded = retries.begin(sdk(0), CALL, "ok")
    retries.end(failed, failed=True)
    retries.end(succeeded, failed=False)
    assert retries.begin(sdk(1), CALL, "r").of == "failed"


def test_an_idempotency_key_joins_any_request_that_repeats_it() -> None:
    retries = Retries()
    key = RetrySignal(key=b"order-42")
    first = retries.begin(key, CALL, "t1")
    other_body = Fingerprint(CALL.run_id, CALL.credential, "POST", "/responses", b"{}")
    again = retries.begin(key, other_body, "t2")
    assert [(a.number, a.of) for a in (first, again)] == [(1, None), (2, "t1")]
    in_another_run = Fingerprint("run-2", CALL.credential, "POST", CALL.path, CALL.body)
    assert retries.begin(key, in_another_run, "t3") == Attempt(1, None)


def test_memory_is_bounded_least_recently_used_first() -> None:
    retries = Retries(capacity=100)
    for n in range(1_000):
        body = f'{{"n":{n}}}'.encode()
        fingerprint = Fingerprint("run", None, "POST", "/chat/completions", body)
        retries.end(retries.begin(sdk(0), fingerprint, f"t{n}"), failed=True)
    assert len(retries) == 100
    newest = Fingerprint("run", None, "POST", "/chat/completions", b'{"n":999}')
    oldest = Fingerprint("run", None, "POST", "/chat/completions", b'{"n":0}')
    assert retries.begin(sdk(1), newest, "r").of == "t999"
    assert retries.begin(sdk(1), oldest, "r0").of is None


def test_identical_calls_remembered_per_fingerprint_are_bounded() -> None:
    retries = Retries()
    for n in range(PER_DIGEST * 5):
        retries.end(retries.begin(sdk(0), CALL, f"t{n}"), failed=True)
    assert len(retries) == 1
    remembered = [retries.begin(sdk(1), CALL, f"r{n}").of for n in range(PER_DIGEST + 1)]
    assert set(remembered) == {f"t{n}" for n in range(PER_DIGEST * 4, PER_DIGEST * 5)}


def test_a_first_attempt_that_succeeds_is_not_remembered() -> None:
    """The SDKs retry only failures: a call that succeeded leaves nothing behind (and its body
    is never hashed)."""
    retries = Retries()
    retries.end(retries.begin(sdk(0), CALL, "t1"), failed=False)
    assert len(retries) == 0
    assert retries.begin(sdk(1), CALL, "t2") == Attempt(2, None)


def test_a_call_has_a_bounded_number_of_attempts() -> None:
    retries = Retries()
    retries.end(retries.begin(sdk(0), CALL, "t1"), failed=True)
    numbers = []
    for n in range(MAX_ATTEMPTS + 3):
        attempt = retries.begin(sdk(n + 1), CALL, f"r{n}")
        numbers.append((attempt.number, attempt.of))
        retries.end(attempt, failed=True)
    assert numbers[: MAX_ATTEMPTS - 1] == [(n, "t1") for n in range(2, MAX_ATTEMPTS + 1)]
    assert numbers[MAX_ATTEMPTS - 1][1] is None  # a call of its own, whatever its count says
    assert all(of != "t1" for _, of in numbers[MAX_ATTEMPTS - 1 :])


def test_a_refused_request_is_no_call_a_retry_can_join() -> None:
    retries = Retries()
    key = RetrySignal(count=0, key=b"k")
    retries.refuse(retries.begin(key, CALL, "refused"))
    assert len(retries) == 0
    joined = retries.begin(RetrySignal(count=1, key=b"k"), CALL, "t2")
    assert (joined.number, joined.of) == (2, None)


def test_a_refused_retry_leaves_its_call_to_the_next_one() -> None:
    retries = Retries()
    retries.end(retries.begin(sdk(0), CALL, "t1"), failed=True)
    retries.refuse(retries.begin(sdk(1), CALL, "refused"))
    assert retries.begin(sdk(2), CALL, "t3").of == "t1"
