"""`airuns serve --workers 2` enforces the configured `server_limits` in its worker processes
(uvicorn pickles the server config into each one)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import stop
from tests.support.servers import free_port, wait_until_up

pytestmark = pytest.mark.e2e


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
database: {{url: "sqlite+aiosqlite:///{tmp_path / "airuns.db"}"}}
providers: {{mock: {{base_url: "http://127.0.0.1:9/v1"}}}}
default_provider: mock
recording: {{spool_dir: "{tmp_path / "spool"}"}}
server_limits: {{max_header_bytes: 4096, header_timeout: 1}}
"""
    )
    command = [sys.executable, "-m", "proxy.cli", "serve", "--config", str(config)]
    command += ["--port", str(port), "--workers", "2"]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        yield port
    finally:
        stop(process)


def exchange(port: int, data: bytes) -> tuple[bytes, float]:
    """Send `data`, then read until the server closes; the answer and how long it took."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        started = time.monotonic()
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks), time.monotonic() - started


def test_workers_answer_431_past_the_configured_head_size(workers):
    for _ in range(4):  # connections land on either worker
        answer, _ = exchange(workers, b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 5000)
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert b'"code": "request_header_fields_too_large"' in answer


def test_workers_answer_408_past_the_configured_head_time(workers):
    for _ in range(2):
        answer, took = exchange(workers, b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert 0.9 <= took < 15
    assert httpx.get(f"http://127.0.0.1:{workers}/healthz").status_code == 200
