"""`airuns runs show`: each task's error is shown, and only a task with usage but no price is
counted as unpriced (a call that failed before any usage has nothing to price)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from persistence.engine import create_engine
from proxy.cli import main


@pytest.fixture
def config(database_url: str, tmp_path: Path, seeder_for: Any) -> str:
    async def fill() -> None:
        engine = create_engine(database_url)
        seed = seeder_for(engine)
        await seed.apply(
            seed.make("priced", run="mixed"),
            seed.make(
                "refused",
                run="mixed",
                started=1,
                status="error",
                http_status=502,
                usage=None,
                error_message="upstream unreachable:\n  connection refused",
            ),
            seed.make("unknown-model", run="mixed", started=2, model="no-such-model"),
            seed.make("failed-only", run="failed", status="error", http_status=502, usage=None),
        )
        await engine.dispose()

    asyncio.run(fill())
    path = tmp_path / "config.yaml"
    path.write_text(f'database: {{url: "{database_url}"}}\n')
    return str(path)


def show(config: str, run_id: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["runs", "show", run_id, "--config", config]) == 0
    return capsys.readouterr().out


def test_show_lists_each_failed_task_with_its_error_on_one_line(config: str, capsys) -> None:
    out = show(config, "mixed", capsys)
    errors = out.split("\nerrors:\n")[1].splitlines()
    assert errors == ["  refused: upstream unreachable: connection refused"]


def test_show_counts_as_unpriced_only_tasks_with_usage_but_no_price(config: str, capsys) -> None:
    assert "cost: $0.0037 (+1 unpriced)" in show(config, "mixed", capsys)


def test_a_failed_call_without_usage_is_not_unpriced(config: str, capsys) -> None:
    out = show(config, "failed", capsys)
    assert "cost: $0\n" in out and "unpriced" not in out
