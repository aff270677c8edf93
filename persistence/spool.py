"""The on-disk spool: call records that could not wait in memory for the database.

Format: JSON lines. The first line is a header naming the writing process's instance id;
every later line is one `CallRecord` (`encode_record` / `decode_record`, pure). A line is
complete only with its trailing newline, so a write torn by a crash is ignored on replay.

Each process appends to its own file, `<instance id>.spool`, and holds an exclusive `flock` on
it while alive: a spool whose lock is free belongs to a process that is gone, and whoever takes
the lock replays and removes it (`claim_dead_spools`). The file is created under a temporary
name and renamed once locked, so no one can ever take a live process's lock.

Writes are batched: `append` writes many records with one system call and `sync` (one fsync)
makes them durable; neither is called per record. Nothing here awaits or touches the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

from persistence.record import CallRecord, RunInfo
from pricing.usage import Usage

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SUFFIX = ".spool"
_CHUNK = 1 << 20
_DATETIME_FIELDS = frozenset({"started_at", "completed_at"})
_RECORD_FIELDS = tuple(f.name for f in fields(CallRecord))
_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")
_ABANDONED_AFTER = 60.0  # seconds


class SpoolFormatError(ValueError):
    """A spool line that is not a record (corrupt, or written by an incompatible version)."""


def encode_record(record: CallRecord) -> bytes:
    """One JSON line (ASCII, so lone surrogates from a client's JSON survive the round trip)."""
    document: dict[str, Any] = {}
    for name in _RECORD_FIELDS:
        value = getattr(record, name)
        if name in _DATETIME_FIELDS and value is not None:
            value = value.isoformat()
        elif name in ("run", "usage") and value is not None:
            value = {f.name: getattr(value, f.name) for f in fields(value)}
        document[name] = value
    return json.dumps(document, separators=(",", ":")).encode("ascii") + b"\n"


def decode_record(line: bytes) -> CallRecord:
    try:
        document = json.loads(line)
        values = {name: document[name] for name in _RECORD_FIELDS if name in document}
        for name in _DATETIME_FIELDS:
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        if values.get("run") is not None:
            values["run"] = RunInfo(**values["run"])
        if values.get("usage") is not None:
            values["usage"] = Usage(**values["usage"])
        return CallRecord(**values)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SpoolFormatError(f"not a call record: {exc}") from None


def encode_header(instance_id: str) -> bytes:
    return json.dumps({"airuns_spool": FORMAT_VERSION, "instance_id": instance_id}).encode() + b"\n"


def decode_header(line: bytes) -> str:
    """The instance id a spool belongs to."""
    try:
        header = json.loads(line)
        if header["airuns_spool"] != FORMAT_VERSION:
            raise SpoolFormatError(f"spool format {header['airuns_spool']} is not supported")
        return str(header["instance_id"])
    except (ValueError, TypeError, KeyError) as exc:
        raise SpoolFormatError(f"not a spool header: {exc}") from None


def spool_path(directory: Path, instance_id: str) -> Path:
    return directory / (_UNSAFE.sub("_", instance_id) + SUFFIX)


def read_lines(fd: int, offset: int, end: int, limit: int) -> tuple[list[bytes], int]:
    """Up to `limit` complete lines of the file between `offset` and `end`, and the offset just
    after the last one returned (an unterminated tail is left unread)."""
    lines: list[bytes] = []
    buffer = b""
    start = 0  # of the next line in buffer
    consumed = read_to = offset
    while len(lines) < limit:
        newline = buffer.find(b"\n", start)
        if newline >= 0:
            lines.append(buffer[start:newline])
            consumed += newline + 1 - start
            start = newline + 1
            continue
        if read_to >= end:
            break
        chunk = os.pread(fd, min(_CHUNK, end - read_to), read_to)
        if not chunk:
            break
        read_to += len(chunk)
        buffer, start = buffer[start:] + chunk, 0
    return lines, consumed


def decode_lines(lines: Sequence[bytes], where: Path) -> list[CallRecord]:
    """The records among `lines`; a corrupt line is logged and skipped, not fatal."""
    records = []
    for line in lines:
        try:
            records.append(decode_record(line))
        except SpoolFormatError as exc:
            log.error("skipping a corrupt line in %s: %s", where, exc)
    return records


class Spool:
    """This process's spool file. Records are read back in the order they were appended;
    `consume` marks them written, and the file shrinks back to its header once all are."""

    def __init__(self, path: Path, fd: int, header_size: int) -> None:
        self.path = path
        self._fd = fd
        self._header_size = header_size
        self._end = header_size  # end of the last complete append
        self._read_offset = header_size  # start of the first record not yet consumed
        self.pending = 0  # records appended and not consumed

    @classmethod
    def create(cls, directory: str | Path, instance_id: str) -> Spool:
        """Create and lock `<instance id>.spool` in `directory` (made if missing)."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        path = spool_path(folder, instance_id)
        if path.exists():
            raise FileExistsError(f"spool {path} already exists")
        temporary = folder / f".{path.name}.tmp"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            header = encode_header(instance_id)
            _write_all(fd, header, 0)
            os.fsync(fd)
            os.rename(temporary, path)
            _sync_directory(folder)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        return cls(path, fd, len(header))

    def append(self, records: Sequence[CallRecord]) -> int:
        """Write `records` after the others (not yet durable: see `sync`); returns the offset
        just after them. On error the file is cut back, so it never holds half a record."""
        data = b"".join(encode_record(r) for r in records)
        try:
            _write_all(self._fd, data, self._end)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._end)
            raise
        self._end += len(data)
        self.pending += len(records)
        return self._end

    def sync(self) -> None:
        """Make every append so far durable. Blocking: call it in a thread."""
        os.fsync(self._fd)

    def read(self, limit: int) -> tuple[list[CallRecord], int, int]:
        """The oldest unconsumed records, at most `limit` lines of them: (records, the offset
        after them, how many lines they took; corrupt lines count but are not returned)."""
        lines, end = read_lines(self._fd, self._read_offset, self._end, limit)
        if not lines and self.pending:  # cannot happen with whole-line appends; never spin on it
            log.error("spool %s counts %d records it cannot read", self.path, self.pending)
            self.pending = 0
        return decode_lines(lines, self.path), end, len(lines)

    def consume(self, end: int, count: int) -> None:
        """The records before `end` are in the database."""
        if end <= self._read_offset:
            return
        self._read_offset = end
        self.pending = max(0, self.pending - count)
        if self._read_offset >= self._end:
            self._reset()

    def _reset(self) -> None:
        try:
            os.ftruncate(self._fd, self._header_size)
        except OSError:
            log.warning("could not shrink spool %s", self.path, exc_info=True)
            return
        self._end = self._read_offset = self._header_size
        self.pending = 0

    def close(self) -> None:
        """Release the lock; an empty spool is removed, one with records is left for replay."""
        if self.pending == 0:
            with contextlib.suppress(OSError):
                self.path.unlink()
        os.close(self._fd)


class DeadSpool:
    """The spool of a process that is gone, locked by us until `discard` or `release`."""

    def __init__(self, path: Path, fd: int, instance_id: str, header_size: int) -> None:
        self.path = path
        self.instance_id = instance_id
        self._fd = fd
        self._header_size = header_size

    def batches(self, size: int) -> Iterator[list[CallRecord]]:
        offset, end = self._header_size, os.fstat(self._fd).st_size
        while True:
            lines, offset = read_lines(self._fd, offset, end, size)
            if not lines:
                return
            yield decode_lines(lines, self.path)

    def discard(self) -> None:
        """Replayed: remove the file, then let go of it."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.release()

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def claim_dead_spools(directory: str | Path, own: Spool | None = None) -> list[DeadSpool]:
    """Lock every spool in `directory` whose owner is gone (its lock was free)."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    claimed = []
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        if own is not None and path == own.path:
            continue
        spool = _claim(path)
        if spool is not None:
            claimed.append(spool)
    _remove_abandoned_temporaries(folder)
    return claimed


def _claim(path: Path) -> DeadSpool | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None  # replayed by someone else meanwhile
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_nlink == 0:  # removed after we opened it: already replayed
            raise BlockingIOError
        lines, header_size = read_lines(fd, 0, os.fstat(fd).st_size, 1)
        instance_id = decode_header(lines[0]) if lines else None
    except BlockingIOError:  # locked: its process is alive
        os.close(fd)
        return None
    except SpoolFormatError as exc:
        log.error("ignoring %s: %s", path, exc)
        os.close(fd)
        return None
    if instance_id is None:  # no complete header: nothing was ever spooled in it
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)
        return None
    return DeadSpool(path, fd, instance_id, header_size)


def _remove_abandoned_temporaries(folder: Path) -> None:
    """A process that died while creating its spool leaves `.<name>.tmp` behind, unlocked.
    Only old ones are touched, so a spool being created right now is never in the way."""
    for path in folder.glob(f".*{SUFFIX}.tmp"):
        try:
            if time.time() - path.stat().st_mtime < _ABANDONED_AFTER:
                continue
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink(missing_ok=True)
        except BlockingIOError:
            pass
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _sync_directory(folder: Path) -> None:
    """So the new file's name survives a power loss too."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
