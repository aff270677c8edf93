"""A duplicate X-Task-Id is refused whether its call is in flight here, its record is not stored
yet, or the database has it; the lookup fails open when the database does not answer."""

from __future__ import annotations

import io
import socket
import time

from persistence.engine import create_engine
from persistence.inflight import InFlightTasks
from proxy.observability import configure_logging
from proxy.task_ids import TaskIds
from tests.persistence.conftest import Probe, Records


def task_ids(engine, inflight: InFlightTasks | None = None, timeout: float = 0.5) -> TaskIds:
    log = configure_logging("warning", io.StringIO())
    registry = inflight if inflight is not None else InFlightTasks()
    return TaskIds(registry, engine, log, timeout=timeout)


async def test_an_id_in_flight_or_stored_is_a_duplicate(engine) -> None:
    await Probe(engine).apply(Records().make("stored-earlier"))
    inflight = InFlightTasks()
    ids = task_ids(engine, inflight)
    assert await ids.claim("new-one")
    assert not await ids.claim("new-one")  # a call under way has it
    assert not await ids.claim("stored-earlier")  # the database has it
    assert "stored-earlier" not in inflight  # refused: nothing left claimed
    inflight.release("new-one")  # the recorder stored its final record...
    assert await ids.claim("new-one")  # ...and the database does not have it: taken again


async def test_a_call_refused_before_forwarding_gives_its_id_back(engine) -> None:
    ids = task_ids(engine)
    assert await ids.claim("t1")
    ids.release("t1")
    assert await ids.claim("t1")


async def test_the_lookup_fails_open_when_the_database_does_not_answer() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()  # accepts, never answers: a hanging database
        port = sock.getsockname()[1]
        engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/airuns")
        started = time.perf_counter()
        assert await task_ids(engine, timeout=0.2).claim("t1")
        assert time.perf_counter() - started < 2.0
        await engine.dispose()
