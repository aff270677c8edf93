"""GET /admin/runs/{id}/export: JSON (run + tasks), a Markdown transcript, CSV (a row per task)."""

import csv
import io
import json
from decimal import Decimal

import httpx
import pytest

from persistence.record import RunInfo
from pricing.usage import Usage
from proxy.admin.serialize import TASK_FIELDS


async def seed_run(seed) -> None:
    run = RunInfo("chat:1", name="Math help")
    records = seed.conversation(run, ["What is 2+2?", "And 3+3?"], ttft_ms=123.4, stream=True)
    failed = seed.make(
        "chat:1-t9",
        run=run,
        started=100,
        status="error",
        error_message="upstream said no",
        model="unknown-model-x",
        request={"model": "unknown-model-x", "messages": [{"role": "user", "content": "Hm?"}]},
        usage=None,
    )
    await seed.apply(*records, failed)


async def export(client: httpx.AsyncClient, fmt: str | None) -> httpx.Response:
    params = {"format": fmt} if fmt else {}
    response = await client.get("/admin/runs/chat:1/export", params=params)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("fmt", [None, "json"])
async def test_json_export_has_the_run_and_its_tasks(client: httpx.AsyncClient, seed, fmt) -> None:
    await seed_run(seed)
    response = await export(client, fmt)
    assert response.headers["content-type"].startswith("application/json")
    disposition = response.headers["content-disposition"]
    assert disposition == 'attachment; filename="run-chat_1.json"'
    document = response.json()
    assert document["run"] == (await client.get("/admin/runs/chat:1")).json()
    assert json.loads(response.text, parse_float=Decimal)["run"]["total_cost"] == Decimal("0.0074")
    assert [task["id"] for task in document["tasks"]] == ["chat:1-t1", "chat:1-t2", "chat:1-t9"]
    assert set(document["tasks"][0]) == set(TASK_FIELDS)


async def test_markdown_export_reads_as_a_transcript(client: httpx.AsyncClient, seed) -> None:
    await seed_run(seed)
    response = await export(client, "markdown")
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert 'filename="run-chat_1.md"' in response.headers["content-disposition"]
    text = response.text
    assert text.startswith("# Math help\n")
    assert "- **Run:** `chat:1`" in text
    assert "- **Tasks:** 3 (1 with errors)" in text
    assert "- **Cost:** $0.0074\n" in text  # the failed call had no usage: nothing to price
    turn1, turn2, turn3 = text.split("## Turn ")[1:]
    assert "**System**\n\nBe brief." in turn1 and "**User**\n\nWhat is 2+2?" in turn1
    assert "**Assistant**\n\nreply 1" in turn1
    assert "1,100 tokens (1,000 prompt, 100 completion) · $0.0037 · TTFT 123 ms" in turn1
    assert "What is 2+2?" not in turn2 and "**User**\n\nAnd 3+3?" in turn2  # only what is new
    assert "**Error:** upstream said no" in turn3
    assert "tokens unknown · cost unknown · TTFT — " in turn3 and turn3.rstrip().endswith("error*")


async def test_csv_export_has_one_row_per_task(client: httpx.AsyncClient, seed) -> None:
    await seed_run(seed)
    response = await export(client, "csv")
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="run-chat_1.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["id"] for row in rows] == ["chat:1-t1", "chat:1-t2", "chat:1-t9"]
    assert list(rows[0]) == list(TASK_FIELDS)
    first = rows[0]
    assert (first["cost"], first["input_cost"], first["output_cost"]) == (
        "0.0037",
        "0.003",
        "0.0007",
    )
    assert (first["stream"], first["time_to_first_token_ms"], first["prompt_tokens"]) == (
        "true",
        "123.4",
        "1000",
    )
    assert json.loads(first["request"])["messages"][-1]["content"] == "What is 2+2?"
    assert first["created_at"] == "2026-03-01T12:00:10Z"
    assert (rows[2]["status"], rows[2]["cost"], rows[2]["prompt_tokens"]) == ("error", "", "")


async def test_markdown_never_shows_a_missing_count_as_zero(
    client: httpx.AsyncClient, seed
) -> None:
    usage = Usage(prompt_tokens=7, completion_tokens=None, total_tokens=None)
    await seed.apply(seed.make("t1", run="chat:1", usage=usage))
    assert "? tokens (7 prompt, ? completion)" in (await export(client, "markdown")).text


async def test_export_of_an_unknown_run_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/runs/nope/export?format=csv")
    assert response.status_code == 404
