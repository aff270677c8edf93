"""`pip install .` from a fresh clone, not editable, into a new virtualenv: the installed airuns
migrates and serves from any directory, with everything it needs inside the package (Alembic's
migrations, the UI's files) and nothing read from the clone, which is deleted before it starts."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.deploy.checkout import Venv, copy_working_tree
from tests.e2e.conftest import stop
from tests.support.servers import free_port, wait_until_up

pytestmark = pytest.mark.e2e

PACKAGES = ("proxy", "persistence", "pricing")
# Source files a running airuns never reads: Alembic's template for new revisions (used from a
# checkout by `alembic revision`, never by `airuns migrate`).
NOT_SHIPPED = {"persistence/migrations/script.py.mako"}


def package_files(root: Path) -> set[str]:
    return {
        str(path.relative_to(root))
        for package in PACKAGES
        for path in (root / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_a_clean_install_migrates_and_serves_from_any_directory(tmp_path: Path):
    clone = copy_working_tree(tmp_path / "clone")
    venv = Venv.create(tmp_path / "venv")
    installed = venv.run("pip", "install", "--quiet", str(clone), cwd=tmp_path).check()
    print(f"pip install of a clean clone: {installed.seconds:.1f}s")

    site = Path(
        venv.run("python", "-c", "import proxy; print(proxy.__file__)", cwd=tmp_path)
        .check()
        .done.stdout.strip()
    ).parent.parent
    assert site != clone and "site-packages" in site.parts, "installed, not editable"
    missing = package_files(clone) - package_files(site) - NOT_SHIPPED
    assert not missing, f"not in the installed package: {sorted(missing)}"
    revisions = {p.name for p in (clone / "persistence/migrations/versions").glob("*.py")}
    shutil.rmtree(clone)  # nothing may be read from the clone from here on

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    mock_port, port = free_port(), free_port()
    database = tmp_path / "data" / "airuns.db"
    database.parent.mkdir()
    config = elsewhere / "airuns.yaml"
    config.write_text(
        f"""
database: {{url: "sqlite+aiosqlite:///{database}"}}
admin: {{api_key: "admin-test"}}
providers:
  mock: {{base_url: "http://127.0.0.1:{mock_port}/v1"}}
default_provider: mock
recording: {{spool_dir: "{tmp_path / "data" / "spool"}", flush_interval: 0.05}}
"""
    )
    venv.run("airuns", "migrate", "--config", str(config), cwd=elsewhere).check()
    assert _tables(database) >= {"alembic_version", "runs", "tasks"}
    assert len(revisions) >= 1

    environ = venv.environment()
    mock = subprocess.Popen(
        ["airuns", "mock-upstream", "--port", str(mock_port)],
        cwd=elsewhere,
        env=environ,
        stderr=subprocess.DEVNULL,
    )
    serve = subprocess.Popen(
        ["airuns", "serve", "--config", str(config), "--port", str(port)],
        cwd=elsewhere,
        env=environ,
        stderr=(tmp_path / "serve.log").open("wb"),
    )
    try:
        wait_until_up(f"http://127.0.0.1:{mock_port}/v1/models", mock)
        wait_until_up(f"http://127.0.0.1:{port}/healthz", serve, timeout=60)
        _call_and_see_it_recorded(f"http://127.0.0.1:{port}")
    finally:
        stop(serve)
        stop(mock)


def _call_and_see_it_recorded(url: str) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
    reply = httpx.post(
        f"{url}/v1/chat/completions", json=body, headers={"X-Run-Id": "clean-1"}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"]
    admin = {"Authorization": "Bearer admin-test"}
    deadline = time.monotonic() + 15
    while True:
        run = httpx.get(f"{url}/admin/runs/clean-1", headers=admin, timeout=5)
        if run.status_code == 200 and run.json()["task_count"] == 1:
            break
        assert time.monotonic() < deadline, f"not recorded: {run.status_code} {run.text}"
        time.sleep(0.1)
    [task] = httpx.get(f"{url}/admin/runs/clean-1/tasks", headers=admin).json()["data"]
    assert (task["id"], task["status"], task["provider"]) == (
        reply.headers["x-task-id"],
        "completed",
        "mock",
    )
    ready = httpx.get(f"{url}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    schema = httpx.get(f"{url}/schema/openapi.json", timeout=10)
    assert schema.status_code == 200 and json.loads(schema.content)["paths"]


def _tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("select name from sqlite_master where type = 'table'")
        return {name for (name,) in rows}
