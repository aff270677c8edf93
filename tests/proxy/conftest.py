"""Fixtures for the proxy's handler tests: a real fake upstream and the app under a real
ASGI server, both in this process on loopback ports."""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from persistence.memory_recorder import MemoryRecorder
from proxy.app import create_app
from proxy.mock_upstream import MockUpstreamServer
from proxy.settings import parse_settings
from tests.support.servers import serve_asgi


def make_settings(upstream_url: str, extra: str = "", providers: str = "") -> Any:
    spool = tempfile.mkdtemp(prefix="airuns-spool-")
    text = f"""
database: {{url: "sqlite+aiosqlite:///:memory:"}}
recording: {{spool_dir: "{spool}"}}
providers:
  mock: {{base_url: "{upstream_url}"}}
  keyed: {{base_url: "{upstream_url}", api_key: "sk-provider-secret"}}
  dead: {{base_url: "http://127.0.0.1:9/v1"}}
{providers}
models:
  - {{name: fast, provider: mock, model: gpt-4o-mini}}
default_provider: mock
{extra}
"""
    return parse_settings(text, {})


class ProxyHarness:
    def __init__(
        self, url: str, mock: MockUpstreamServer, recorder: MemoryRecorder, log: io.StringIO
    ):
        self.url = url
        self.mock = mock
        self.recorder = recorder
        self.log = log
        self.client = httpx.AsyncClient(base_url=url, timeout=30)

    def final(self, task_id: str | None = None):
        finals = self.recorder.finals()
        if task_id is None:
            assert len(finals) == 1, finals
            return finals[0]
        return next(r for r in finals if r.task_id == task_id)

    async def wait_final(self, count: int = 1, timeout: float = 5.0):
        async with asyncio.timeout(timeout):
            while len(self.recorder.finals()) < count:
                await asyncio.sleep(0.01)
        return self.recorder.finals()


@pytest.fixture
def proxy_factory() -> Callable:
    @asynccontextmanager
    async def start(extra_config: str = "", providers: str = "") -> AsyncIterator[ProxyHarness]:
        async with MockUpstreamServer() as mock:
            recorder = MemoryRecorder()
            log = io.StringIO()
            settings = make_settings(mock.base_url, extra_config, providers)
            app = create_app(settings, recorder=recorder, log_stream=log)
            async with serve_asgi(app) as url:
                harness = ProxyHarness(url, mock, recorder, log)
                try:
                    yield harness
                finally:
                    await harness.client.aclose()

    return start


@pytest.fixture
async def proxy(proxy_factory) -> AsyncIterator[ProxyHarness]:
    async with proxy_factory() as harness:
        yield harness


@pytest.fixture
def app_settings() -> Callable[..., Any]:
    """`make_settings` for tests that build their own apps."""
    return make_settings


@pytest.fixture
def serve() -> Callable[[Any], Any]:
    """`serve_asgi` for tests that serve their own apps."""
    return serve_asgi
