"""The batch writer on its own thread: records submitted on the request loop reach the
database, exactly once, and stop() drains them."""

from __future__ import annotations

import threading

from persistence.engine import create_engine
from persistence.threaded import ThreadedRecorder
from persistence.writer import BatchWriter
from proxy.settings import RecordingSettings


def _recorder(database_url: str, records, tmp_path) -> ThreadedRecorder:
    engine = create_engine(database_url)
    settings = RecordingSettings(flush_interval=0.01, spool_dir=str(tmp_path / "spool"))
    return ThreadedRecorder(BatchWriter(engine, records.prices, settings), engine)


async def test_records_from_the_request_loop_are_written_by_the_writer_thread(
    database_url, records, probe, tmp_path
):
    recorder = _recorder(database_url, records, tmp_path)
    recorder.submit(records.make("before-start", status="pending"))  # kept until start
    await recorder.start()
    assert any(t.name == "airuns-writer" for t in threading.enumerate())
    for index in range(200):
        recorder.submit(records.make(f"t{index}", status="pending", started=index))
        recorder.submit(records.make(f"t{index}", started=index))
    assert recorder.is_task_active("t199")
    await recorder.stop()
    assert not any(t.name == "airuns-writer" for t in threading.enumerate())
    assert recorder.backlog == 0
    tasks = await probe.tasks()
    assert len(tasks) == 201
    assert sum(t.status == "completed" for t in tasks) == 200
    await probe.assert_aggregates_match_tasks()


async def test_task_exists_asks_the_writer_thread(database_url, records, tmp_path):
    recorder = _recorder(database_url, records, tmp_path)
    await recorder.start()
    recorder.submit(records.make("known"))
    assert await recorder.task_exists("known")
    await recorder.stop()
    again = _recorder(database_url, records, tmp_path)
    await again.start()
    try:
        assert await again.task_exists("known")  # now from the database
        assert not await again.task_exists("never-seen")
    finally:
        await again.stop()
