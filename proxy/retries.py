"""A client's retries: which logical call a request is another attempt of.

Two signals, both optional and both forwarded upstream as they came:
- `Idempotency-Key`: requests with the same key, in the same run and from the same credential,
  are attempts of one call, whatever else they carry.
- `x-stainless-retry-count`, sent by the official OpenAI SDKs (`0` on a call's first attempt,
  `1`, `2`, … on its retries; they send no idempotency key): a request with a count above 0 is
  a retry of the latest call this process saw with the same fingerprint — run id, credential,
  method, path and body, byte for byte — preferring one whose last attempt has ended, and
  ended in failure (two identical calls in flight at once each get their own retries). The
  count also sets the attempt's number when the first attempt was not seen here.

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
    """One call as the client sees it: its first attempt's task id, the highest attempt
    number given out, how many of its attempts are under way, how the last one ended."""

    __slots__ = ("first_id", "attempts", "open", "failed")

    def __init__(self, first_id: str, attempts: int) -> None:
        self.first_id = first_id
        self.attempts = attempts
        self.open = 1
        self.failed = False


@dataclass(frozen=True, slots=True)
class Attempt:
    """This request's place in its call: `number` from 1; `of` the first attempt's task id
    (None on the first attempt, or when this process did not see it)."""

    number: int = 1
    of: str | None = None
    call: LogicalCall | None = field(default=None, compare=False, repr=False)


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
    request loop only, so it needs no lock."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._calls: OrderedDict[bytes, list[LogicalCall]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._calls)

    def begin(self, signal: RetrySignal, fingerprint: Fingerprint, task_id: str) -> Attempt:
        """The attempt a request is, remembered so that its own retries find it."""
        digest = _digest(signal, fingerprint)
        if digest is None:
            return FIRST
        floor = (signal.count or 0) + 1
        calls = self._calls.get(digest, [])
        earlier = None
        if calls and (signal.key is not None or floor > 1):
            earlier = max(reversed(calls), key=_retry_candidate)
        if earlier is None:
            call = LogicalCall(task_id, floor)
            self._remember(digest, calls, call)
            return Attempt(floor, None, call)
        self._calls.move_to_end(digest)
        earlier.attempts = max(earlier.attempts + 1, floor)
        earlier.open += 1
        return Attempt(earlier.attempts, earlier.first_id, earlier)

    def end(self, attempt: Attempt, *, failed: bool) -> None:
        """An attempt ended (or was refused before it was forwarded)."""
        if attempt.call is not None:
            attempt.call.open = max(attempt.call.open - 1, 0)
            attempt.call.failed = failed

    def _remember(self, digest: bytes, calls: list[LogicalCall], call: LogicalCall) -> None:
        self._calls[digest] = [*calls[-(PER_DIGEST - 1) :], call]
        self._calls.move_to_end(digest)
        while len(self._calls) > self.capacity:
            self._calls.popitem(last=False)


def _retry_candidate(call: LogicalCall) -> tuple[bool, bool]:
    """Rank of a call for a retry (ties: the latest): it ended in failure, it ended."""
    return call.open == 0 and call.failed, call.open == 0


def _digest(signal: RetrySignal, fingerprint: Fingerprint) -> bytes | None:
    """16 bytes naming the call: its key, else its fingerprint (when it has a retry count)."""
    if signal.key is not None:
        parts = [b"key", signal.key]
    elif signal.count is not None:
        parts = [b"fingerprint", fingerprint.method.encode(), fingerprint.path.encode()]
        parts.append(fingerprint.body)
    else:
        return None
    digest = hashlib.blake2b(digest_size=16)
    for part in [_text(fingerprint.run_id), _text(fingerprint.credential), *parts]:
        digest.update(len(part).to_bytes(8, "big"))  # length-prefixed: no two splits collide
        digest.update(part)
    return digest.digest()


def _text(value: str | None) -> bytes:
    return b"\xff" if value is None else value.encode("utf-8", "surrogatepass")
