"""GET /admin/tasks (filters, newest first, pages) and GET /admin/tasks/{id}."""

from datetime import timedelta
from typing import Any

import httpx


async def seed_tasks(seed) -> None:
    await seed.apply(
        seed.make("t1", run="r1", started=1, model="fast", upstream_model="gpt-4o-mini",
                  response_model="gpt-4o-mini-2024-07-18"),
        seed.make("t2", run="r1", started=2, status="error", error_message="boom", usage=None),
        seed.make("t3", run="r2", started=3, status="timeout", usage=None),
        seed.make("t4", run=None, started=4, endpoint="/v1/embeddings", request={"input": "x"}),
        seed.make("t5", run="r2", started=5, status="streaming", stream=True),
    )  # fmt: skip


async def task_ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/admin/tasks", params=params)
    assert response.status_code == 200, response.text
    return [task["id"] for task in response.json()["data"]]


async def test_tasks_are_newest_first_including_those_without_a_run(
    client: httpx.AsyncClient, seed
) -> None:
    await seed_tasks(seed)
    assert await task_ids(client) == ["t5", "t4", "t3", "t2", "t1"]
    loose = (await client.get("/admin/tasks/t4")).json()
    assert loose["run_id"] is None and loose["endpoint"] == "/v1/embeddings"


async def test_task_filters(client: httpx.AsyncClient, seed) -> None:
    await seed_tasks(seed)
    assert await task_ids(client, run_id="r1") == ["t2", "t1"]
    assert await task_ids(client, run_id="no-such-run") == []
    assert await task_ids(client, status="error") == ["t2"]
    assert await task_ids(client, status="streaming") == ["t5"]
    for model in ("fast", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"):
        assert await task_ids(client, model=model) == ["t1"]
    since = (seed.t0 + timedelta(seconds=2)).isoformat()
    until = (seed.t0 + timedelta(seconds=4)).isoformat()
    assert await task_ids(client, since=since, until=until) == ["t3", "t2"]
    assert await task_ids(client, run_id="r2", status="timeout") == ["t3"]


async def test_task_pages(client: httpx.AsyncClient, seed) -> None:
    await seed_tasks(seed)
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = (await client.get("/admin/tasks", params=params)).json()
        seen += [task["id"] for task in body["data"]]
        if not body["has_more"]:
            break
        cursor = body["next_cursor"]
        await seed.apply(seed.make(f"new-{len(seen)}", run="r3", started=1000 + len(seen)))
    assert seen == ["t5", "t4", "t3", "t2", "t1"]


async def test_task_detail(client: httpx.AsyncClient, seed) -> None:
    await seed_tasks(seed)
    task = (await client.get("/admin/tasks/t2")).json()
    assert (task["id"], task["run_id"], task["status"]) == ("t2", "r1", "error")
    assert task["error_message"] == "boom"
    assert task["prompt_tokens"] is None and task["usage_source"] == "missing"
    assert task["created_at"] == "2026-03-01T12:00:02Z"
    assert task["completed_at"] == "2026-03-01T12:00:03Z"
    pending = (await client.get("/admin/tasks/t5")).json()
    assert (pending["status"], pending["completed_at"], pending["cost"]) == (
        "streaming",
        None,
        None,
    )


async def test_a_retried_call_is_one_request_and_each_attempt_lists_the_others(
    client: httpx.AsyncClient, seed
) -> None:
    """Three attempts of one call (the SDK retried a 502 twice): the run counts one request,
    every attempt says which it is and lists the call's attempts, first to last."""
    await seed.apply(
        seed.make("a1", status="error", http_status=502, usage=None, started=1),
        seed.make("a2", status="error", http_status=502, usage=None, started=2, attempt=2,
                  attempt_of="a1"),
        seed.make("a3", started=3, http_status=200, attempt=3, attempt_of="a1"),
    )  # fmt: skip
    run = (await client.get("/admin/runs/run-1")).json()
    assert (run["task_count"], run["error_count"]) == (1, 0)
    listed = (await client.get("/admin/runs/run-1/tasks")).json()["data"]
    assert [(t["id"], t["attempt"], t["attempt_of"], t["retried"]) for t in listed] == [
        ("a1", 1, None, True),
        ("a2", 2, "a1", True),
        ("a3", 3, "a1", False),
    ]
    assert all("attempts" not in t for t in listed)  # the detail view carries them
    for task_id in ("a1", "a2", "a3"):
        task = (await client.get(f"/admin/tasks/{task_id}")).json()
        assert task["attempts"] == [
            {"id": "a1", "attempt": 1, "status": "error", "http_status": 502, "retried": True},
            {"id": "a2", "attempt": 2, "status": "error", "http_status": 502, "retried": True},
            {"id": "a3", "attempt": 3, "status": "completed", "http_status": 200,
             "retried": False},
        ]  # fmt: skip
    usage = await client.get("/admin/usage", params={"group_by": "run", "since": "2026-01-01"})
    (row,) = usage.json()["data"]
    assert (row["requests"], row["errors"]) == (1, 0)
