"""CPU time and memory of a process tree, read from /proc (Linux only).

CPU is utime+stime of every live process in the tree (a uvicorn or granian supervisor and its
workers); each process's figure already includes all of its threads (aiosqlite's, for one).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class TreeSample:
    cpu_seconds: float
    rss_bytes: int
    processes: int


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    return raw[raw.rindex(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """`root` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def sample_tree(root: int) -> TreeSample:
    """CPU seconds (user+system) and resident memory summed over the tree of `root`."""
    ticks = rss_pages = count = 0
    for pid in descendants(root):
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # After the ")" split: fields[11] = utime, fields[12] = stime, fields[21] = rss (pages).
        ticks += int(fields[11]) + int(fields[12])
        rss_pages += int(fields[21])
        count += 1
    return TreeSample(ticks / _TICK, rss_pages * _PAGE, count)


def set_affinity(root: int, cpus: set[int] | None) -> None:
    """Pin every thread of every process in the tree to `cpus` (None: all CPUs we may use)."""
    target = cpus or os.sched_getaffinity(0)
    for pid in descendants(root):
        try:
            threads = [int(t.name) for t in (_PROC / str(pid) / "task").iterdir()]
        except FileNotFoundError:
            continue
        for tid in threads:
            with contextlib.suppress(OSError):  # the thread may have exited meanwhile
                os.sched_setaffinity(tid, target)
