"""The Markdown transcript's pure parts: what counts as new in a turn, content parts, tools."""

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from proxy.admin.transcript import content_text, render_markdown

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)


def task(request: Any, **fields: Any) -> SimpleNamespace:
    values = dict(
        task_name=None, endpoint="/v1/chat/completions", created_at=AT, response_text="ok",
        tool_calls=None, error_message=None, response_model=None, upstream_model="m", model="m",
        total_tokens=3, prompt_tokens=2, completion_tokens=1, cost=Decimal("0.0000100000"),
        time_to_first_token_ms=None, total_time_ms=1500.0, status="completed", request=request,
        attempt=1, retried=False,
    )  # fmt: skip
    return SimpleNamespace(**(values | fields))


RUN = SimpleNamespace(
    id="r", name="A run", description="Notes here", status="archived", is_starred=True,
    created_at=AT, last_message_at=AT, task_count=1, error_count=0, total_tokens=3,
    prompt_tokens=2, completion_tokens=1, total_cost=Decimal("0E-10"), unpriced_task_count=0,
    source_type="agent", source_id="a-1", user_id="u", tags=["x", "y"],
)  # fmt: skip


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (None, ""),
        ("plain", "plain"),
        ([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}], "a\n[image_url]"),
        ([{"type": "input_text", "text": "b"}], "b"),
        (42, "42"),
    ],
)
def test_content_text(content: Any, text: str) -> None:
    assert content_text(content) == text


@pytest.mark.parametrize(
    ("unpriced", "cost"),
    [(0, "$0\n"), (1, "$0 (1 task without a price)"), (2, "$0 (2 tasks without a price)")],
)
def test_run_cost_says_how_many_tasks_have_no_price(unpriced: int, cost: str) -> None:
    run = SimpleNamespace(**(vars(RUN) | {"unpriced_task_count": unpriced}))
    assert f"- **Cost:** {cost}" in render_markdown(run, [])


def test_run_facts_are_listed() -> None:
    text = render_markdown(RUN, [])
    assert text.startswith("# A run\n")
    for fact in (
        "- **Status:** archived, starred",
        "- **Cost:** $0",
        "- **Source:** agent / a-1",
        "- **User:** u",
        "- **Tags:** x, y",
        "Notes here",
        "*No tasks recorded.*",
    ):
        assert fact in text


def test_a_turn_shows_only_messages_after_the_last_reply() -> None:
    request = {
        "messages": [
            {"role": "user", "content": "old question"},
            {"role": "assistant", "content": "old answer"},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            {"role": "user", "content": [{"type": "text", "text": "new question"}]},
        ]
    }
    text = render_markdown(RUN, [task(request, task_name="summarize")])
    assert "## Turn 1 · summarize — 2026-03-01T12:00:00Z" in text
    assert "old question" not in text
    assert "**Tool (call_1)**\n\n42" in text and "**User**\n\nnew question" in text
    assert "*m · 3 tokens (2 prompt, 1 completion) · $0.00001 · TTFT — · total 1,500 ms" in text


def test_tool_calls_and_other_endpoints() -> None:
    calls = [
        {"id": "c", "type": "function", "function": {"name": "lookup", "arguments": '{"q":1}'}}
    ]
    responses = task({"input": "What is up?"}, endpoint="/v1/responses", response_text=None,
                     tool_calls=calls, time_to_first_token_ms=87.6)  # fmt: skip
    completion = task({"prompt": "Once upon"}, endpoint="/v1/completions")
    text = render_markdown(RUN, [responses, completion])
    assert "`/v1/responses`" in text and "**User**\n\nWhat is up?" in text
    assert '- calls `lookup({"q":1})`' in text and "TTFT 88 ms" in text
    assert "`/v1/completions`" in text and "**User**\n\nOnce upon" in text


def test_a_responses_turn_reads_like_chat() -> None:
    request = {
        "instructions": "Use tools.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "old question"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "42"},
            {"role": "developer", "content": "Answer in words."},
        ],
    }
    responses = task(request, endpoint="/v1/responses", response_text="Forty-two")
    text = render_markdown(RUN, [responses])
    assert "old question" not in text and "Use tools." not in text and "rs_1" not in text
    assert "**Tool (call_1)**\n\n42" in text
    assert "**System**\n\nAnswer in words." in text
    assert "**Assistant**\n\nForty-two" in text


def test_a_first_responses_turn_shows_its_instructions() -> None:
    request = {"instructions": "Be terse.", "input": [{"role": "user", "content": "Hi"}]}
    text = render_markdown(RUN, [task(request, endpoint="/v1/responses")])
    assert "**System**\n\nBe terse.\n\n**User**\n\nHi" in text
