"""What the write path knows of the database's state, shared by the jobs that act on it: the
write loop and the heartbeat record failures, the spill rule and `stop` read them."""

from __future__ import annotations

from collections.abc import Callable


class DatabaseHealth:
    def __init__(self, clock: Callable[[], float], hung_after: float) -> None:
        self._clock = clock
        self._hung_after = hung_after
        self.failing_since: float | None = None  # first failure of the current outage
        self.writing_since: float | None = None  # when the batch being written began

    def failed(self) -> None:
        if self.failing_since is None:
            self.failing_since = self._clock()

    def answered(self) -> None:
        self.failing_since = None

    def failing_for(self) -> float:
        """Seconds the database has been failing (0 while it answers)."""
        return 0.0 if self.failing_since is None else self._clock() - self.failing_since

    def struggling(self) -> bool:
        """Failing, or a write hangs: under load one batch may wait a second or more for a busy
        event loop, and that alone is not struggling."""
        if self.failing_since is not None:
            return True
        started = self.writing_since
        return started is not None and self._clock() - started > self._hung_after
