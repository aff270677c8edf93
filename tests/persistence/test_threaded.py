"""The batch writer on its own thread: records submitted on the request loop reach the
database, exactly once, and stop() drains them."""

from __future__ import annotations

import threading

from persistence.engine import create_engine
from persistence.settings import WriterSettings
from persistence.threaded import ThreadedRecorder
from persistence.writer import BatchWriter


def _recorder(database_url: str, records, tmp_path) -> ThreadedRecorder:
    engine = create_engine(database_url)
    settings = WriterSettings(flush_interval=0.01, spool_dir=str(tmp_path / "spool"))
    return ThreadedRecorder(BatchWriter(engine, records.prices, settings), engine)


async def test_records_from_the_request_loop_are_written_by_the_writer_thread(
    database_url, records, probe, tmp_path
):
    recorder = _recorder(database_url, records, tmp_path)
    recorder.submit(records.make("before-start", status="pending"))  # kept until start
    await recorder.start()
    assert any(t.name == "airuns-writer" for t in threading.enumerate())
    recorder.inflight.claim("t199")
    for index in range(200):
        recorder.submit(records.make(f"t{index}", status="pending", started=index))
        recorder.submit(records.make(f"t{index}", started=index))
    await recorder.stop()
    assert not any(t.name == "airuns-writer" for t in threading.enumerate())
    assert recorder.backlog == 0 and "t199" not in recorder.inflight
    tasks = await probe.tasks()
    assert len(tasks) == 201
    assert sum(t.status == "completed" for t in tasks) == 200
    await probe.assert_aggregates_match_tasks()


async def test_the_writer_thread_releases_claimed_task_ids_once_stored(
    database_url, records, tmp_path
):
    recorder = _recorder(database_url, records, tmp_path)
    await recorder.start()
    assert recorder.inflight.claim("known")
    recorder.submit(records.make("known"))
    await recorder.stop()  # written: no longer in flight
    assert "known" not in recorder.inflight
