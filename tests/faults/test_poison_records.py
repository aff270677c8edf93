"""No input can stop or corrupt recording: every poison value of "The ledger holds" through a
real `airuns serve`, on SQLite and Postgres. After each, an innocent call is stored within the
usual delay; a record the database refuses (one left in a stopped process's spool) is
dead-lettered, counted on /readyz and /metrics, and its task closed; a restart replays nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from persistence.deadletter import dead_letter_path
from persistence.spool import Spool
from tests.faults.conftest import Airuns
from tests.persistence.conftest import Records

pytestmark = pytest.mark.faults

ADMIN = {"Authorization": "Bearer admin-key"}
R = "\ufffd"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'airuns.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def airuns(tmp_path: Path, database_url: str, mock_upstream: str) -> Iterator[Airuns]:
    running = Airuns(
        tmp_path / "airuns", database_url, mock_upstream, 'admin: {api_key: "admin-key"}'
    )
    yield running
    running.stop()


def chat(text: str, **extra) -> bytes:
    """A request body as raw JSON text: Python's json writes NaN and lone surrogates as sent."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}
    return json.dumps(body).encode()


# (name, request body, extra headers, expected status) — each sent on run `poison-<name>`.
POISON_CALLS = [
    ("nan-metadata", chat("hi"), {"X-Run-Metadata": '{"a": NaN}'}, 400),
    ("nul-content", chat("a\x00b"), {}, 200),
    ("nul-metadata", chat("hi"), {"X-Run-Metadata": '{"k\\u0000": "v\\u0000"}'}, 200),
    ("nan-body", chat("hi", temperature=float("nan")), {}, 200),
    ("surrogate-content", chat("\ud800x"), {}, 200),
    ("usage-beyond-64-bits", chat("hi"), {"x-mock-cached-tokens": str(2**70)}, 200),
    ("usage-1e17", chat("hi"), {"x-mock-cached-tokens": str(10**17)}, 200),
]


def tasks(airuns: Airuns) -> dict[str, dict]:
    response = httpx.get(f"{airuns.url}/admin/tasks", params={"limit": 200}, headers=ADMIN)
    return {t["run_id"]: t for t in response.json()["data"]}


def wait_for_task(airuns: Airuns, run_id: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        task = tasks(airuns).get(run_id)
        if task is not None and task["status"] not in ("pending", "streaming"):
            return task
        assert time.monotonic() < deadline, f"{run_id} not stored within {timeout}s"
        time.sleep(0.05)


def readyz(airuns: Airuns) -> dict:
    return httpx.get(f"{airuns.url}/readyz").json()


def leave_a_refused_record_in_a_stopped_processs_spool(spool_dir: Path) -> None:
    records = Records()
    spool = Spool.create(spool_dir, "stopped:1:ab")
    spool.append([
        records.make("refused-task", run="refused-run", http_status=2**70),
        records.make("replayed-task", run="replayed-run", started=1),
    ])  # fmt: skip
    spool.sync()
    spool.close()


def test_no_poison_record_stops_or_corrupts_recording(airuns: Airuns) -> None:
    leave_a_refused_record_in_a_stopped_processs_spool(airuns.spool_dir)
    airuns.start()
    deadline = time.monotonic() + 15
    while readyz(airuns).get("rejected") != 1:
        assert time.monotonic() < deadline, readyz(airuns)
        time.sleep(0.1)

    for name, body, headers, status in POISON_CALLS:
        response = httpx.post(
            f"{airuns.url}/v1/chat/completions",
            content=body,
            headers={"content-type": "application/json", "X-Run-Id": f"poison-{name}", **headers},
        )
        assert response.status_code == status, (name, response.text)
        innocent = httpx.post(
            f"{airuns.url}/v1/chat/completions",
            content=chat("innocent"),
            headers={"content-type": "application/json", "X-Run-Id": f"after-{name}"},
        )
        assert innocent.status_code == 200
        assert wait_for_task(airuns, f"after-{name}", timeout=2.0)["status"] == "completed"

    stored = tasks(airuns)
    assert "poison-nan-metadata" not in stored  # refused at intake: nothing forwarded or stored
    assert stored["poison-nul-content"]["request"]["messages"][0]["content"] == f"a{R}b"
    assert stored["poison-nul-content"]["response_text"] == f"Mock reply to: a{R}b"
    assert stored["poison-nan-body"]["request"]["temperature"] == "NaN"
    assert stored["poison-surrogate-content"]["response_text"] == f"Mock reply to: {R}x"
    for name in ("usage-beyond-64-bits", "usage-1e17"):
        task = stored[f"poison-{name}"]
        assert (task["status"], task["usage_source"]) == ("completed", "invalid")
        assert task["prompt_tokens"] is None and task["cost"] is None
    run = httpx.get(f"{airuns.url}/admin/runs/poison-nul-metadata", headers=ADMIN).json()
    assert run["metadata"] == {f"k{R}": f"v{R}"}
    assert stored["refused-run"]["status"] == "error"  # closed, not left open
    assert "could not store" in stored["refused-run"]["error_message"]
    assert stored["replayed-run"]["status"] == "completed"
    assert not [t for t in stored.values() if t["status"] in ("pending", "streaming")]

    metrics = httpx.get(f"{airuns.url}/metrics").text
    assert "airuns_records_rejected_total 1.0" in metrics
    (line,) = dead_letter_path(airuns.spool_dir).read_text().splitlines()
    assert json.loads(line)["record"]["task_id"] == "refused-task"

    airuns.terminate()
    assert airuns.wait() == 0
    airuns.start()  # a restart replays nothing, refuses nothing
    time.sleep(1.5)
    assert readyz(airuns)["rejected"] == 0 and readyz(airuns)["backlog"] == 0
    assert len(dead_letter_path(airuns.spool_dir).read_text().splitlines()) == 1
    assert tasks(airuns) == stored
