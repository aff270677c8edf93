"""A conversation through the real processes leaves one run with exact sums (SQLite)."""

from __future__ import annotations

import sqlite3
import time
from decimal import Decimal

import openai
import pytest

pytestmark = pytest.mark.e2e


def read_run(stack, run_id: str, tasks: int, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(stack.db_path) as db:
            db.row_factory = sqlite3.Row
            run = db.execute("select * from runs where id = ?", (run_id,)).fetchone()
            rows = db.execute(
                "select * from tasks where run_id = ? and status = 'completed' order by created_at",
                (run_id,),
            ).fetchall()
        if (
            run and len(rows) >= tasks and run["task_count"] >= tasks
        ) or time.monotonic() > deadline:
            return dict(run) if run else None, [dict(r) for r in rows]
        time.sleep(0.05)


def test_three_turn_conversation_is_one_run_with_exact_sums(stack):
    sdk = openai.OpenAI(
        base_url=f"{stack.url}/v1",
        api_key="sk-test",
        default_headers={"X-Run-Id": "conv-1", "X-Run-Source-Type": "chat"},
        max_retries=0,
    )
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France? Answer in one word please."},
    ]
    for turn in range(3):
        stream = turn == 1
        if stream:
            chunks = list(
                sdk.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
            )
            reply = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            reply = (
                sdk.chat.completions.create(model="gpt-4o-mini", messages=messages)
                .choices[0]
                .message.content
            )
        messages = [
            *messages,
            {"role": "assistant", "content": reply},
            {"role": "user", "content": f"And turn {turn + 2}?"},
        ]
    run, tasks = read_run(stack, "conv-1", 3)
    assert run is not None and len(tasks) == 3
    assert run["name"] == "What is the capital of France? Answer in one word..."
    assert run["source_type"] == "chat"
    assert run["task_count"] == 3
    assert run["prompt_tokens"] == sum(t["prompt_tokens"] for t in tasks)
    assert run["completion_tokens"] == sum(t["completion_tokens"] for t in tasks)
    assert run["total_tokens"] == sum(t["total_tokens"] for t in tasks)
    # gpt-4o-mini is priced by genai-prices; SQLite stores money as 1e-10 USD integers.
    costs = [Decimal(t["cost"]) for t in tasks]
    assert all(c > 0 for c in costs)
    assert Decimal(run["total_cost"]) == sum(costs)
    assert run["unpriced_task_count"] == 0
    # messages: the third request (system + 3 user + 2 assistant) plus its reply.
    assert run["message_count"] == 7
    assert "And turn 3?" in run["messages"]
