"""trim_memory_periodically: freed memory is handed back after calls end, never while idle."""

from __future__ import annotations

import asyncio

from proxy.memory import _malloc_trim, trim_memory_periodically


async def test_memory_is_trimmed_once_after_calls_end_and_not_while_idle():
    ended, trims = [0], []
    task = asyncio.create_task(
        trim_memory_periodically(lambda: ended[0], interval=0.01, trim=lambda: trims.append(1))
    )
    await asyncio.sleep(0.1)
    assert trims == []  # idle: nothing freed, nothing to trim
    ended[0] += 3
    async with asyncio.timeout(5):
        while not trims:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert trims == [1]  # once for those calls, not again until more end
    task.cancel()


def test_the_c_librarys_trim_is_found_on_this_platform():
    trim = _malloc_trim()
    assert trim is not None  # glibc: the CI machine's C library
    trim()
