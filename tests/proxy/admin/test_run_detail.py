"""GET /admin/runs/{id}, …/tasks and …/messages: shapes, order, pages, 404s."""

from decimal import Decimal

import httpx
import pytest

from persistence.record import RunInfo

RUN_FIELDS = {
    "id", "name", "description", "status", "is_starred", "source_type", "source_id", "user_id",
    "owner", "metadata", "tags", "settings", "message_count", "task_count", "error_count",
    "prompt_tokens", "completion_tokens", "total_tokens", "total_cost", "unpriced_task_count",
    "created_at", "updated_at", "last_message_at",
}  # fmt: skip
TASK_FIELDS = {
    "id", "run_id", "task_name", "endpoint", "provider", "model", "upstream_model",
    "response_model", "stream", "status", "http_status", "request", "response_text",
    "tool_calls", "finish_reason", "error_message", "prompt_tokens", "completion_tokens",
    "cached_tokens", "reasoning_tokens", "total_tokens", "usage_source", "upstream_latency_ms",
    "time_to_first_token_ms", "total_time_ms", "overhead_ms", "cost", "input_cost",
    "output_cost", "price",
    "user_id", "created_at", "completed_at", "attempt", "attempt_of", "retried",
}  # fmt: skip


async def seed_conversation(seed) -> None:
    run = RunInfo("chat-1", source_type="chat", source_id="c-9", metadata={"team": "ml"})
    records = seed.conversation(run, ["What is 2+2?", "And 3+3?", "Thanks"], user_id="u1")
    await seed.apply(*records, seed.make("other", run="chat-2", started=5))


async def test_run_detail_has_every_field_and_the_messages(
    client: httpx.AsyncClient, seed, body
) -> None:
    await seed_conversation(seed)
    response = await client.get("/admin/runs/chat-1")
    assert response.status_code == 200
    run = body(response)
    assert set(run) == RUN_FIELDS | {"messages"}
    assert run["id"] == "chat-1" and run["name"] == "What is 2+2?"
    assert (run["source_type"], run["source_id"], run["user_id"]) == ("chat", "c-9", "u1")
    assert run["metadata"] == {"team": "ml"} and run["tags"] == [] and run["owner"] is None
    assert run["settings"] == {"model": "airuns-test-priced", "temperature": Decimal("0.2")}
    assert run["task_count"] == 3 and run["error_count"] == 0
    assert (run["prompt_tokens"], run["completion_tokens"], run["total_tokens"]) == (
        3000,
        300,
        3300,
    )
    assert run["total_cost"] == Decimal("0.0111") and run["unpriced_task_count"] == 0
    assert run["messages"][-2:] == [
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": "reply 3"},
    ]
    assert run["message_count"] == len(run["messages"]) == 7
    assert run["created_at"] == "2026-03-01T12:00:10Z"
    assert run["last_message_at"] == "2026-03-01T12:00:31Z"
    assert run["updated_at"].endswith("Z")


@pytest.mark.parametrize("change", ["archive", "delete"])
async def test_detail_is_served_for_archived_and_deleted_runs(
    client: httpx.AsyncClient, seed, change: str
) -> None:
    await seed_conversation(seed)
    if change == "archive":
        await client.patch("/admin/runs/chat-1", json={"status": "archived"})
    else:
        await client.delete("/admin/runs/chat-1")
    run = (await client.get("/admin/runs/chat-1")).json()
    assert run["status"] == ("archived" if change == "archive" else "deleted")
    assert run["message_count"] == 7 == len(run["messages"])
    assert len((await client.get("/admin/runs/chat-1/messages")).json()["messages"]) == 7


async def test_messages_endpoint_returns_the_conversation_to_resume(
    client: httpx.AsyncClient, seed
) -> None:
    await seed_conversation(seed)
    response = await client.get("/admin/runs/chat-1/messages")
    assert response.status_code == 200
    assert response.json() == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "reply 1"},
            {"role": "user", "content": "And 3+3?"},
            {"role": "assistant", "content": "reply 2"},
            {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": "reply 3"},
        ]
    }


async def test_a_run_without_a_chat_has_no_messages(client: httpx.AsyncClient, seed) -> None:
    await seed.apply(seed.make("e1", run="emb", endpoint="/v1/embeddings", request={"input": "x"}))
    assert (await client.get("/admin/runs/emb/messages")).json() == {"messages": []}
    assert (await client.get("/admin/runs/emb")).json()["message_count"] == 0


async def test_run_tasks_are_oldest_first_with_pages(client: httpx.AsyncClient, seed, body) -> None:
    await seed_conversation(seed)
    first = (await client.get("/admin/runs/chat-1/tasks", params={"limit": 2})).json()
    assert [t["id"] for t in first["data"]] == ["chat-1-t1", "chat-1-t2"]
    assert first["has_more"] is True
    params = {"limit": 2, "cursor": first["next_cursor"]}
    rest = body(await client.get("/admin/runs/chat-1/tasks", params=params))
    assert [t["id"] for t in rest["data"]] == ["chat-1-t3"]
    assert (rest["has_more"], rest["next_cursor"]) == (False, None)
    task = rest["data"][0]
    assert set(task) == TASK_FIELDS
    assert task["cost"] == Decimal("0.0037")
    assert (task["input_cost"], task["output_cost"]) == (Decimal("0.003"), Decimal("0.0007"))
    assert task["price"] == {
        "model": "airuns-test-priced",
        "provider": "mock",
        "input": 3,
        "output": 7,
        "cached_input": Decimal("1.5"),
        "cache_write": None,
        "source": "override",
    }
    assert task["request"]["messages"][-1] == {"role": "user", "content": "Thanks"}
    assert task["response_text"] == "reply 3" and task["stream"] is False
    everything = (await client.get("/admin/runs/chat-1/tasks")).json()
    assert len(everything["data"]) == 3 and everything["has_more"] is False


async def test_unpriced_tasks_have_null_costs(client: httpx.AsyncClient, seed) -> None:
    await seed.apply(seed.make("u1", run="r", model="no-such-model-anywhere"))
    task = (await client.get("/admin/tasks/u1")).json()
    assert (task["cost"], task["input_cost"], task["output_cost"], task["price"]) == (None,) * 4
    run = (await client.get("/admin/runs/r")).json()
    assert (run["total_cost"], run["unpriced_task_count"]) == (0, 1)


@pytest.mark.parametrize(
    "path",
    [
        "/admin/runs/nope",
        "/admin/runs/nope/tasks",
        "/admin/runs/nope/messages",
        "/admin/runs/nope/export",
        "/admin/tasks/nope",
    ],
)
async def test_unknown_ids_are_404(client: httpx.AsyncClient, seed, path: str) -> None:
    await seed_conversation(seed)
    response = await client.get(path)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "not_found_error" and "nope" in error["message"]
