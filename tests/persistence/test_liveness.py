"""The heartbeat while the database is away: it keeps trying, and says so once per cause."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from persistence.engine import create_engine
from persistence.health import DatabaseHealth
from persistence.liveness import Liveness
from tests.support.servers import free_port


async def test_a_database_that_stays_away_is_reported_once_not_every_beat(caplog) -> None:
    engine = create_engine(f"postgresql+asyncpg://airuns@127.0.0.1:{free_port()}/airuns")
    health = DatabaseHealth(time.monotonic, hung_after=10)
    liveness = Liveness(engine, "me", 0.02, 0.01, health, recovery=None)  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING, logger="persistence.liveness")
    beating = asyncio.create_task(liveness.heartbeat())
    try:
        async with asyncio.timeout(10):
            while liveness.retries < 10:
                await asyncio.sleep(0.01)
    finally:
        beating.cancel()
        with pytest.raises(asyncio.CancelledError):
            await beating
        await engine.dispose()
    warnings = [r.getMessage() for r in caplog.records if r.name == "persistence.liveness"]
    assert warnings == ["heartbeat failed (connection refused); retrying, at least every 0.02s"]
    assert health.failing_since is not None and not liveness.registered.is_set()
