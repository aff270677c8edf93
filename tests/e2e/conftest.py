"""End-to-end fixtures: `airuns mock-upstream` and `airuns serve` as real processes on free
loopback ports, with a config of the test's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port, wait_until_up


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Stack:
    """A running fake provider and airuns in front of it."""

    def __init__(self, tmp: Path, extra_config: str = "") -> None:
        self.tmp = tmp
        self.mock_port, self.port = free_port(), free_port()
        self.mock_url = f"http://127.0.0.1:{self.mock_port}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_path = tmp / "airuns.db"
        self.log_path = tmp / "serve.log"
        self.config = tmp / "config.yaml"
        self.config.write_text(
            f"""
database: {{url: "sqlite+aiosqlite:///{self.db_path}"}}
admin: {{api_key: "admin-secret"}}
providers:
  mock: {{base_url: "{self.mock_url}/v1"}}
  dead: {{base_url: "http://127.0.0.1:9/v1"}}
default_provider: mock
recording: {{spool_dir: "{tmp / "spool"}", flush_interval: 0.05}}
{extra_config}
"""
        )
        self.mock: subprocess.Popen | None = None
        self.serve: subprocess.Popen | None = None

    def start(self) -> Stack:
        cli = [sys.executable, "-m", "proxy.cli"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.mock = subprocess.Popen(
            [*cli, "mock-upstream", "--port", str(self.mock_port)],
            stderr=subprocess.DEVNULL,
            env=env,
        )
        wait_until_up(f"{self.mock_url}/v1/models", self.mock)
        self.serve = subprocess.Popen(
            [*cli, "serve", "--config", str(self.config), "--port", str(self.port)],
            stderr=self.log_path.open("wb"),
            env=env,
        )
        wait_until_up(f"{self.url}/healthz", self.serve)
        return self

    def stop(self) -> None:
        for process in (self.serve, self.mock):
            if process is not None:
                stop(process)

    def call_logs(self) -> list[dict]:
        lines = []
        for line in self.log_path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "call":
                lines.append(entry)
        return lines

    def mock_state(self, kind: str) -> list[dict]:
        return httpx.get(f"{self.mock_url}/_mock/{kind}").json()["data"]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator:
    started: list[Stack] = []

    def start(extra_config: str = "", name: str = "s") -> Stack:
        folder = tmp_path / name
        folder.mkdir()
        running = Stack(folder, extra_config).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
