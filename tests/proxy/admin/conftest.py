"""Admin API fixtures: the real app (litestar lifespan run in-process) on the test `engine`,
an httpx client holding the admin key, and `seed` to record realistic calls through the
write path (`apply_batch`) without a proxy in between."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.apply import apply_batch
from persistence.memory_recorder import MemoryRecorder
from persistence.record import COMPLETED, FINAL_STATUSES, CallRecord, RunInfo
from pricing.table import PriceTable
from pricing.usage import Usage
from proxy.app import AirunsApp, create_app
from proxy.settings import Settings, parse_settings
from tests.support.servers import serve_asgi

ADMIN_KEY = "admin-key-for-tests"
PRICED_MODEL = "airuns-test-priced"  # 3 USD per 1M input tokens, 7 per 1M output
CONFIG = f"""
admin: {{api_key: "{ADMIN_KEY}"}}
providers:
  mock: {{base_url: "http://127.0.0.1:9/v1"}}
default_provider: mock
pricing:
  overrides:
    {PRICED_MODEL}: {{input: 3, output: 7, cached_input: 1.5}}
"""


def make_settings(config: str = CONFIG) -> Settings:
    return parse_settings(config, {})


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Drive the ASGI lifespan from a task of its own, as a server would (startup and
    shutdown then run in one task, which litestar's lifespan requires)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


@pytest.fixture
def served() -> Any:
    return serve_asgi


@pytest.fixture
async def app(engine: AsyncEngine, settings: Settings) -> AsyncIterator[AirunsApp]:
    app = create_app(settings, engine=engine, recorder=MemoryRecorder(), log_stream=io.StringIO())
    async with lifespan(app):
        yield app


@pytest.fixture
async def client(app: AirunsApp) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://airuns.test", headers=headers
    ) as client:
        yield client


def exact(response: httpx.Response) -> Any:
    """The JSON body with numbers as Decimal, to compare money exactly."""
    return json.loads(response.text, parse_float=Decimal)


@pytest.fixture
def body() -> Any:
    return exact


class Seeder:
    """Builds call records (`make`, `conversation`) and writes them with `apply`."""

    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    usage = Usage(prompt_tokens=1000, completion_tokens=100, total_tokens=1100)
    usage_cost = Decimal("0.0037")  # 1000 × 3/1M + 100 × 7/1M

    def __init__(self, engine: AsyncEngine, prices: PriceTable) -> None:
        self.engine = engine
        self.prices = prices

    def make(
        self,
        task_id: str,
        *,
        run: str | RunInfo | None = "run-1",
        started: float = 0.0,
        duration: float = 1.0,
        status: str = COMPLETED,
        usage: Usage | None = usage,
        model: str = PRICED_MODEL,
        request: dict[str, Any] | None = None,
        **fields: Any,
    ) -> CallRecord:
        """A call `started` seconds after t0 that took `duration` seconds."""
        started_at = fields.pop("started_at", self.t0 + timedelta(seconds=started))
        final = status in FINAL_STATUSES
        values: dict[str, Any] = {
            "task_name": None,
            "user_id": None,
            "owner": None,
            "endpoint": "/v1/chat/completions",
            "provider": "mock",
            "upstream_model": model,
            "stream": False,
            "request": request if request is not None else chat_request(model, "hello"),
            "usage": usage if final else None,
            "usage_source": "provider" if final and usage else "missing",
            "completed_at": started_at + timedelta(seconds=duration) if final else None,
            "response_text": "hi there" if status == COMPLETED else None,
        } | fields
        return CallRecord(
            task_id=task_id,
            run=RunInfo(id=run) if isinstance(run, str) else run,
            model=model,
            status=status,
            started_at=started_at,
            **values,
        )

    def conversation(
        self, run: str | RunInfo, turns: list[str], *, started: float = 0.0, **fields: Any
    ) -> list[CallRecord]:
        """A chat where every turn re-sends the conversation so far plus a new user message."""
        run_id = run if isinstance(run, str) else run.id
        messages: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
        records = []
        for number, text in enumerate(turns, 1):
            messages = [*messages, {"role": "user", "content": text}]
            request = {"model": PRICED_MODEL, "temperature": 0.2, "messages": messages}
            reply = f"reply {number}"
            records.append(
                self.make(
                    f"{run_id}-t{number}",
                    run=run,
                    started=started + 10 * number,
                    request=request,
                    response_text=reply,
                    **fields,
                )
            )
            messages = [*messages, {"role": "assistant", "content": reply}]
        return records

    async def apply(self, *records: CallRecord) -> None:
        async with self.engine.begin() as conn:
            await apply_batch(conn, records, self.prices)


def chat_request(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


@pytest.fixture
def seeder_for(settings: Settings) -> Any:
    """For sync tests, which open an engine of their own: `seeder_for(engine)`."""
    return lambda engine: Seeder(engine, PriceTable(settings.pricing.overrides))


@pytest.fixture
def seed(engine: AsyncEngine, seeder_for: Any) -> Seeder:
    return seeder_for(engine)
