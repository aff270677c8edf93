"""The dead-letter file: call records the database refused for good, kept for a human.

`<spool_dir>/dead-letter.jsonl`, beside the spools, one JSON line per refused record:
`{"refused_at", "instance_id", "error", "record"}` where `record` is the record as the spool
encodes it. Several processes may append to it (each line is written with one `write` under
an exclusive `flock`). airuns never reads it back: replaying a record the database refused
would be refused again; fix the cause, then re-submit what matters by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from persistence.record import CallRecord
from persistence.spool import encode_record

FILENAME = "dead-letter.jsonl"
_MAX_ERROR = 2000  # characters of the database's error kept with a record


def dead_letter_path(spool_dir: str | Path) -> Path:
    return Path(spool_dir) / FILENAME


def dead_letter_line(record: CallRecord, error: str, instance_id: str, at: datetime) -> bytes:
    """One line of the file (pure)."""
    document = {
        "refused_at": at.isoformat(),
        "instance_id": instance_id,
        "error": error[:_MAX_ERROR],
        "record": json.loads(encode_record(record)),
    }
    return json.dumps(document, separators=(",", ":")).encode("ascii") + b"\n"


def append_dead_letter(
    spool_dir: str | Path, record: CallRecord, error: str, instance_id: str
) -> Path:
    """Append one refused record, durably; raises OSError when the file cannot be written."""
    path = dead_letter_path(spool_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = dead_letter_line(record, error, instance_id, datetime.now(UTC))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return path
