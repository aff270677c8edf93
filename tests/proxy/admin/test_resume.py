"""Resume: a conversation through the real proxy (uvicorn, the fake upstream, the batch writer
on the test database, the official openai SDK) is continued from /admin/runs/{id}/messages."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.settings import WriterSettings
from persistence.writer import BatchWriter
from pricing.table import PriceTable
from proxy.app import create_app
from proxy.mock_upstream import MockUpstreamServer
from proxy.settings import parse_settings

RUN_ID = "resume-me-1"


def proxy_config(upstream_url: str, admin_key: str) -> str:
    return f"""
admin: {{api_key: "{admin_key}"}}
providers:
  mock: {{base_url: "{upstream_url}"}}
default_provider: mock
"""


async def wait_for_tasks(admin: httpx.AsyncClient, count: int) -> dict[str, Any]:
    """The run once `count` of its tasks are recorded (the writer works off the request path)."""
    async with asyncio.timeout(10):
        while True:
            response = await admin.get(f"/admin/runs/{RUN_ID}")
            if response.status_code == 200:
                run = response.json()
                finished = run["task_count"] - run["error_count"]
                if finished >= count and run["message_count"] >= 2 * count + 1:
                    return run
            await asyncio.sleep(0.02)


@asynccontextmanager
async def recording_proxy(
    engine: AsyncEngine, served, admin_key: str, tmp_path: Path
) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """The app with the batch writer on the test database, in front of a fake upstream: its URL
    and an admin client."""
    async with MockUpstreamServer() as upstream:
        proxy_settings = parse_settings(proxy_config(upstream.base_url, admin_key), {})
        recording = WriterSettings(flush_interval=0.01, spool_dir=str(tmp_path / "spool"))
        writer = BatchWriter(engine, PriceTable({}), recording)
        app = create_app(proxy_settings, engine=engine, recorder=writer, log_stream=io.StringIO())
        admin_headers = {"Authorization": f"Bearer {admin_key}"}
        async with (
            served(app) as url,
            httpx.AsyncClient(base_url=url, headers=admin_headers) as admin,
        ):
            yield url, admin


def sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{url}/v1",
        api_key="sk-client",
        default_headers={"X-Run-Id": RUN_ID},
        max_retries=0,
    )


async def test_messages_sent_back_through_the_sdk_continue_the_run(
    engine: AsyncEngine, served, settings, tmp_path: Path
) -> None:
    async with recording_proxy(engine, served, settings.admin.api_key, tmp_path) as (url, admin):
        first_session = sdk(url)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a prime number."},
        ]
        reply = await first_session.chat.completions.create(
            model="mock/gpt-4o-mini", messages=messages
        )
        messages += [
            {"role": "assistant", "content": reply.choices[0].message.content},
            {"role": "user", "content": "Another one, streamed."},
        ]
        stream = await first_session.chat.completions.create(
            model="mock/gpt-4o-mini", messages=messages, stream=True
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        messages.append({"role": "assistant", "content": streamed})
        before = await wait_for_tasks(admin, 2)

        resumed = (await admin.get(f"/admin/runs/{RUN_ID}/messages")).json()["messages"]
        assert resumed == messages  # exactly the conversation so far, in OpenAI format

        second_session = sdk(url)  # a new process picking the conversation up
        follow_up = {"role": "user", "content": "And a third?"}
        third = await second_session.chat.completions.create(
            model="mock/gpt-4o-mini", messages=[*resumed, follow_up]
        )
        after = await wait_for_tasks(admin, 3)
        tasks = (await admin.get(f"/admin/runs/{RUN_ID}/tasks")).json()["data"]
        await first_session.close()
        await second_session.close()

    assert before["task_count"] == 2 and after["task_count"] == 3
    assert after["message_count"] == len(resumed) + 2 > before["message_count"]
    assert after["messages"] == [
        *resumed,
        follow_up,
        {"role": "assistant", "content": third.choices[0].message.content},
    ]
    assert after["total_tokens"] > before["total_tokens"]
    assert after["name"] == "Name a prime number."
    assert [task["stream"] for task in tasks] == [False, True, False]
    assert tasks[1]["time_to_first_token_ms"] is not None
    assert all(task["cost"] is not None for task in tasks)  # gpt-4o-mini has a price


async def wait_for_reply(admin: httpx.AsyncClient, text: str) -> dict[str, Any]:
    """The run once its messages end with the reply `text`."""
    async with asyncio.timeout(10):
        while True:
            response = await admin.get(f"/admin/runs/{RUN_ID}")
            messages = response.json().get("messages") if response.status_code == 200 else None
            if messages and messages[-1]["content"] == text:
                return response.json()
            await asyncio.sleep(0.02)


QUESTION = {"role": "user", "content": [{"type": "input_text", "text": "Name a prime."}]}


async def test_a_responses_run_resumes_on_chat_completions(
    engine: AsyncEngine, served, settings, tmp_path: Path
) -> None:
    async with recording_proxy(engine, served, settings.admin.api_key, tmp_path) as (url, admin):
        session = sdk(url)
        stream = await session.responses.create(
            model="mock/gpt-4o-mini",
            instructions="You are terse.",
            input=[{"role": "developer", "content": "Digits only."}, QUESTION],
            stream=True,
        )
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        text = "".join(deltas)
        before = await wait_for_reply(admin, text)
        resumed = (await admin.get(f"/admin/runs/{RUN_ID}/messages")).json()["messages"]
        follow_up = {"role": "user", "content": "Another?"}
        again = await session.chat.completions.create(
            model="mock/gpt-4o-mini", messages=[*resumed, follow_up]
        )
        after = await wait_for_reply(admin, again.choices[0].message.content)
        await session.close()

    assert resumed == before["messages"]
    assert resumed == [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": "Digits only."},  # developer, as every chat upstream reads it
        {"role": "user", "content": "Name a prime."},
        {"role": "assistant", "content": text},
    ]
    assert after["messages"][:-1] == [*resumed, follow_up]
    assert (before["message_count"], after["message_count"], after["task_count"]) == (4, 6, 2)
