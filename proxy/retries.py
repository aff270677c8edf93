"""A client's retries: which logical call a request is another attempt of.

Two signals, both optional and both forwarded upstream as they came:
- `Idempotency-Key`: requests with the same key, in the same run and from the same credential,
  are attempts of one call, whatever else they carry.
- `x-stainless-retry-count`, sent by the official OpenAI SDKs (`0` on a call's first attempt,
  `1`, `2`, … on its retries; they send no idempotency key): a request with a count above 0 is
  a retry of the latest failed call this process saw with the same fingerprint — run id,
  credential, method, path and body, byte for byte — preferring one whose last attempt has
  ended (two identical calls in flight at once each get their own retries). The count also
  sets the attempt's number when the first attempt was not seen here. A first attempt (count
  `0`) is remembered only once it has failed: the SDKs retry nothing else, so the body of a call
  that succeeds is never hashed.

A call has at most `MAX_ATTEMPTS` attempts; a request beyond them starts a call of its own, so
no client can grow one call without bound.

A value that is not usable is no signal, never an error: a count that is not 1-6 decimal
digits, a key that is not 1-255 visible ASCII characters, a header sent twice. The request is
proxied and recorded as a call of its own.

Memory is bounded: only calls that carry a signal are remembered, as 16-byte digests (never a
body or a key), at most `capacity` digests with at most `PER_DIGEST` calls each, the least
recently used dropped first. It is per process: a retry that reaches another worker or
instance is recorded as a call of its own, numbered by its retry count.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass, field

RETRY_COUNT = b"x-stainless-retry-count"
IDEMPOTENCY_KEY = b"idempotency-key"
DEFAULT_CAPACITY = 10_000
PER_DIGEST = 4
MAX_ATTEMPTS = 16
_COUNT = re.compile(rb"[0-9]{1,6}")
_KEY = re.compile(rb"[\x21-\x7e]{1,255}")


@dataclass(frozen=True, slots=True)
class RetrySignal:
    """What a request says about being a retry; None where it says nothing usable."""

    count: int | None = None
    key: bytes | None = None


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What makes two requests the same call: a retry repeats all of it."""

    run_id: str | None
    credential: str | None
    method: str
    path: str
    body: bytes


class LogicalCall:
    """One call as the client sees it: where it is remembered, its first attempt's task id,
    the highest attempt number given out, how many of its attempts are under way, how the
    last one ended."""

    __slots__ = ("digest", "first_id", "attempts", "open", "failed")

    def __init__(self, digest: bytes, first_id: str, attempts: int, *, open: int = 1) -> None:
        self.digest = digest
        self.first_id = first_id
        self.attempts = attempts
        self.open = open
        self.failed = False


@dataclass(frozen=True, slots=True)
class Attempt:
    """This request's place in its call: `number` from 1; `of` the first attempt's task id
    (None on the first attempt, or when this process did not see it). `call` is the call it
    belongs to, when remembered; `later` the fingerprint of a first attempt to remember if it
    fails."""

    number: int = 1
    of: str | None = None
    call: LogicalCall | None = field(default=None, compare=False, repr=False)
    later: tuple[Fingerprint, str] | None = field(default=None, compare=False, repr=False)


FIRST = Attempt()


def read_retry_signal(headers: list[tuple[bytes, bytes]]) -> RetrySignal:
    """The retry headers of a request (lower-case names). Pure; never raises."""
    found: dict[bytes, list[bytes]] = {RETRY_COUNT: [], IDEMPOTENCY_KEY: []}
    for name, value in headers:
        if name in found:
            found[name].append(value.strip(b" \t"))
    counts, keys = found[RETRY_COUNT], found[IDEMPOTENCY_KEY]
    count = int(counts[0]) if len(counts) == 1 and _COUNT.fullmatch(counts[0]) else None
    key = keys[0] if len(keys) == 1 and _KEY.fullmatch(keys[0]) else None
    return RetrySignal(count, key)


class Retries:
    """The calls this process may yet see retried; see the module docstring. Used on the
    request loop only, so it needs no lock. Each `begin` is followed by one `end` (the attempt
    was forwarded) or one `refuse` (it was not)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._calls: OrderedDict[bytes, list[LogicalCall]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._calls)

    def begin(self, signal: RetrySignal, fingerprint: Fingerprint, task_id: str) -> Attempt:
        """The attempt a request is; a call with a key, or a retry, is remembered at once so
        that its own retries find it."""
        if signal.key is None:
            if signal.count is None:
                return FIRST
            if signal.count == 0:
                return Attempt(later=(fingerprint, task_id))
        digest = _digest(signal, fingerprint)
        floor = (signal.count or 0) + 1
        calls = self._calls.get(digest, [])
        earlier = None
        if signal.key is not None or floor > 1:
            open_to_retry = [call for call in calls if call.attempts < MAX_ATTEMPTS]
            earlier = max(reversed(open_to_retry), key=_retry_candidate, default=None)
        if earlier is None:
            call = LogicalCall(digest, task_id, floor)
            self._remember(calls, call)
            return Attempt(floor, None, call)
        self._calls.move_to_end(digest)
        earlier.attempts += 1
        earlier.open += 1
        return Attempt(earlier.attempts, earlier.first_id, earlier)

    def end(self, attempt: Attempt, *, failed: bool) -> None:
        """A forwarded attempt ended; a first attempt that failed is remembered now."""
        call = attempt.call
        if call is not None:
            call.open = max(call.open - 1, 0)
            call.failed = failed
        elif failed and attempt.later is not None:
            fingerprint, task_id = attempt.later
            digest = _digest(RetrySignal(count=0), fingerprint)
            call = LogicalCall(digest, task_id, 1, open=0)
            call.failed = True
            self._remember(self._calls.get(digest, []), call)

    def refuse(self, attempt: Attempt) -> None:
        """The request was refused before it was forwarded: it is no attempt of any call, and
        a call it began is forgotten (nothing of it reached the provider)."""
        call = attempt.call
        if call is None:
            return
        call.open = max(call.open - 1, 0)
        if attempt.of is None:
            calls = [c for c in self._calls.get(call.digest, []) if c is not call]
            if calls:
                self._calls[call.digest] = calls
            else:
                self._calls.pop(call.digest, None)

    def _remember(self, calls: list[LogicalCall], call: LogicalCall) -> None:
        self._calls[call.digest] = [*calls[-(PER_DIGEST - 1) :], call]
        self._calls.move_to_end(call.digest)
        while len(self._calls) > self.capacity:
            self._calls.popitem(last=False)


def _retry_candidate(call: LogicalCall) -> tuple[bool, bool]:
    """Rank of a call for a retry (ties: the latest): it ended in failure, it ended."""
    return call.open == 0 and call.failed, call.open == 0


def _digest(signal: RetrySignal, fingerprint: Fingerprint) -> bytes:
    """16 bytes naming the call: its key, else its fingerprint."""
    if signal.key is not None:
        parts = [b"key", signal.key]
    else:
        parts = [b"fingerprint", fingerprint.method.encode(), fingerprint.path.encode()]
        parts.append(fingerprint.body)
    digest = hashlib.blake2b(digest_size=16)
    for part in [_text(fingerprint.run_id), _text(fingerprint.credential), *parts]:
        digest.update(len(part).to_bytes(8, "big"))  # length-prefixed: no two splits collide
        digest.update(part)
    return digest.digest()


def _text(value: str | None) -> bytes:
    return b"\xff" if value is None else value.encode("utf-8", "surrogatepass")
