"""Every tunable of the write path, in one object the app builds from configuration.

`queue_size` … `heartbeat_interval` are the `recording:` keys; `stop_timeout` comes from
`shutdown.grace_period` (a third of it: the server first gives calls in flight their grace); the
rest are fixed by measurement and only tests change them (docs/performance.md, "Soak").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WriterSettings:
    queue_size: int = 10000  # records in memory before the oldest go to the spool
    batch_size: int = 500  # records a transaction takes (eight times that from the spool)
    flush_interval: float = 0.1  # seconds the first record of a batch waits for more
    spool_dir: str = "./airuns-spool"
    spool_after: float = 1.0  # while the database fails: seconds in memory before the spool
    heartbeat_interval: float = 5.0  # a process silent for 3 of them is taken for dead
    stop_timeout: float = 10.0  # on stop: seconds to store what is queued, then the spool
    give_up_after: float = 1.0  # on stop: a database refusing writes this long → the spool
    first_backoff: float = 0.05  # seconds before retrying a transient error, doubling…
    max_backoff: float = 5.0  # …up to this
    hung_write_after: float = 10.0  # a write this long is hung, not slow: spill by age
