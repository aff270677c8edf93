"""Memory per call is bounded: clients reading never-ending streams keep the server's RSS under
a bound, it stops growing, and what it holds once they close does not grow round after round.

Two rounds of 50 clients, 15 s each (30 s of never-ending streams). The bounds, over the RSS at
start: `PEAK` (128 MiB) while the streams run, whatever they relay (each round relays well over
500 MiB; before text was capped, the whole text of every stream was kept: 200 streams, 859 MB);
`SETTLED` (96 MiB) once they closed; and the second round ends within `REPEAT` (32 MiB) of the
first (allocator noise; a stream's text kept would be hundreds of MiB a round).

A stream holds at most `capture.max_body_bytes` of text (256 KiB here) plus a read or two of
buffers. After they close, glibc's freed memory is handed back (`proxy.memory`), but CPython's
small-object arenas that held them stay partly mapped (measured with sys._debugmallocstats: live
objects 55.5 → 55.9 MB, arenas 55 → 100 MiB); the next round reuses them instead of growing.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import Airuns

pytestmark = pytest.mark.faults

CLIENTS, SECONDS, ROUNDS = 50, 15.0, 2
CAPTURE = 256 * 1024
MiB = 1024 * 1024
PEAK, SETTLED, REPEAT = 128 * MiB, 96 * MiB, 32 * MiB


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def endless_stream(client: httpx.AsyncClient, url: str, n: int, stop: asyncio.Event) -> int:
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    headers = {"X-Run-Id": f"endless-{n}", "x-mock-endless": "1"}
    received = 0
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as r:
        async for piece in r.aiter_raw():
            received += len(piece)
            if stop.is_set():
                break
    return received


async def one_round(url: str, pid: int) -> tuple[int, list[int]]:
    """CLIENTS never-ending streams for SECONDS; the peak RSS and what each stream relayed."""
    stop, peak = asyncio.Event(), 0
    limits = httpx.Limits(max_connections=CLIENTS + 5)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        streams = [
            asyncio.create_task(endless_stream(client, url, n, stop)) for n in range(CLIENTS)
        ]
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            peak = max(peak, rss(pid))
        stop.set()
        return peak, await asyncio.gather(*streams)


async def settled_rss(pid: int, start: int) -> int:
    """The lowest RSS within 10 s of the streams closing (recorded, let go, trimmed)."""
    settled = rss(pid)
    for _ in range(40):
        await asyncio.sleep(0.25)
        settled = min(settled, rss(pid))
        if settled - start < SETTLED / 2:
            break
    return settled


async def test_never_ending_streams_hold_bounded_memory(tmp_path: Path, mock_upstream: str):
    airuns = Airuns(
        tmp_path / "airuns",
        f"sqlite+aiosqlite:///{tmp_path / 'airuns.db'}",
        mock_upstream,
        f"capture: {{max_body_bytes: {CAPTURE}}}",
    ).start()
    try:
        pid = airuns.process.pid  # type: ignore[union-attr]
        async with httpx.AsyncClient(timeout=30) as client:  # warm up: imports, pools, caches
            await asyncio.gather(*(client.get(f"{airuns.url}/readyz") for _ in range(5)))
        start = rss(pid)
        figures = []
        for _ in range(ROUNDS):
            peak, received = await one_round(airuns.url, pid)
            # Every stream ran past what is kept of it, and on average far past it.
            assert min(received) > CAPTURE and sum(received) > CLIENTS * 10 * CAPTURE
            figures.append((peak, await settled_rss(pid, start), sum(received)))
        print(
            f"RSS at start {start / MiB:.0f} MiB; per round (peak, settled, relayed): "
            + "; ".join(f"{p / MiB:.0f}, {s / MiB:.0f}, {r / MiB:.0f} MiB" for p, s, r in figures)
        )
        for peak, settled, _ in figures:
            assert peak - start < PEAK
            assert settled - start < SETTLED
        assert figures[-1][1] - figures[0][1] < REPEAT
    finally:
        airuns.stop()
