"""`airuns runs list|show|export`: straight from the database in the config, same data as the
API (`--json` prints the API's shapes), a readable table by default."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from persistence.engine import create_engine
from persistence.record import RunInfo
from proxy.cli import main

RUN_FIELDS = {
    "id", "name", "description", "status", "is_starred", "source_type", "source_id", "user_id",
    "owner", "metadata", "tags", "settings", "message_count", "task_count", "error_count",
    "prompt_tokens", "completion_tokens", "total_tokens", "total_cost", "unpriced_task_count",
    "created_at", "updated_at", "last_message_at",
}  # fmt: skip


@pytest.fixture
def config(database_url: str, tmp_path: Path, seeder_for: Any) -> str:
    async def fill() -> None:
        engine = create_engine(database_url)
        seed = seeder_for(engine)
        await seed.apply(
            *seed.conversation(RunInfo("chat-1", name="Capitals quiz"), ["France?", "Spain?"]),
            *seed.conversation("chat-2", ["Tell me a joke"], started=100),
            seed.make("old-1", run=RunInfo("archived-1", name="Old"), started=-100),
        )
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "UPDATE runs SET status = 'archived', is_starred = true WHERE id = 'archived-1'"
            )
        await engine.dispose()

    asyncio.run(fill())
    path = tmp_path / "config.yaml"
    path.write_text(f'database: {{url: "{database_url}"}}\n')
    return str(path)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_prints_a_table_of_active_runs(config: str, capsys) -> None:
    code, out, _ = run_cli(capsys, "runs", "list", "--config", config)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "NAME", "STATUS", "TASKS", "TOKENS", "COST", "LAST", "MESSAGE"]
    assert [row.split()[0] for row in rows] == ["chat-2", "chat-1"]
    assert "Capitals quiz" in rows[1] and "2,200" in rows[1] and "$0.0074" in rows[1]


def test_list_json_is_the_api_list_shape(config: str, capsys) -> None:
    code, out, _ = run_cli(capsys, "runs", "list", "--config", config, "--json", "--sort", "name")
    assert code == 0
    body = json.loads(out)
    assert set(body) == {"data", "has_more", "next_cursor"}
    assert [run["id"] for run in body["data"]] == ["chat-1", "chat-2"]
    assert set(body["data"][0]) == RUN_FIELDS
    assert body["data"][0]["total_cost"] == 0.0074


def test_list_filters_and_pages(config: str, capsys) -> None:
    _, out, _ = run_cli(capsys, "runs", "list", "--config", config, "--status", "archived")
    assert out.splitlines()[1].split()[:3] == ["archived-1", "*", "Old"]
    code, out, err = run_cli(capsys, "runs", "list", "--config", config, "--limit", "1")
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == ["chat-2"]
    cursor = err.split("--cursor ")[1].strip()
    _, out, err = run_cli(
        capsys, "runs", "list", "--config", config, "--limit", "1", "--cursor", cursor
    )
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["chat-1"] and err == ""


def test_list_refuses_bad_options(config: str, capsys) -> None:
    for option in (["--limit", "0"], ["--limit", "500"], ["--sort", "size"], ["--status", "x"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["runs", "list", "--config", config, *option])
        assert exit_info.value.code == 2
    code, _, err = run_cli(capsys, "runs", "list", "--config", config, "--cursor", "garbage")
    assert code == 1 and "--cursor" in err


def test_show_prints_the_run_conversation_and_tasks(config: str, capsys) -> None:
    code, out, _ = run_cli(capsys, "runs", "show", "chat-1", "--config", config)
    assert code == 0
    assert "name: Capitals quiz" in out and "cost: $0.0074" in out
    assert "user: Spain?" in out and "assistant: reply 2" in out
    assert "chat-1-t1" in out and "chat-1-t2" in out


def test_show_json_is_the_api_detail_shape(config: str, capsys) -> None:
    code, out, _ = run_cli(capsys, "runs", "show", "chat-1", "--json", "--config", config)
    run = json.loads(out)
    assert code == 0 and set(run) == RUN_FIELDS | {"messages"}
    assert run["messages"][-1] == {"role": "assistant", "content": "reply 2"}


def test_show_of_an_unknown_run_fails(config: str, capsys) -> None:
    code, out, err = run_cli(capsys, "runs", "show", "nope", "--config", config)
    assert (code, out) == (1, "") and "no run with id 'nope'" in err


@pytest.mark.parametrize("fmt", ["json", "markdown", "csv"])
def test_export_prints_each_format(config: str, capsys, fmt: str) -> None:
    code, out, _ = run_cli(capsys, "runs", "export", "chat-1", "--format", fmt, "--config", config)
    assert code == 0
    if fmt == "json":
        assert [t["id"] for t in json.loads(out)["tasks"]] == ["chat-1-t1", "chat-1-t2"]
    elif fmt == "markdown":
        assert out.startswith("# Capitals quiz") and "## Turn 2" in out
    else:
        assert [row["id"] for row in csv.DictReader(io.StringIO(out))] == ["chat-1-t1", "chat-1-t2"]


def test_export_to_a_file(config: str, capsys, tmp_path: Path) -> None:
    target = tmp_path / "out.md"
    argv = ["runs", "export", "chat-1", "--format", "markdown", "-o", str(target)]
    code, out, err = run_cli(capsys, *argv, "--config", config)
    assert (code, out) == (0, "") and str(target) in err
    assert target.read_text().startswith("# Capitals quiz")


def test_a_missing_config_is_a_configuration_error(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(capsys, "runs", "list", "--config", str(tmp_path / "none.yaml"))
    assert code == 2 and "configuration error" in err


def test_an_unmigrated_database_says_what_to_do(tmp_path: Path, capsys) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f'database: {{url: "sqlite+aiosqlite:///{tmp_path / "empty.db"}"}}\n')
    code, _, err = run_cli(capsys, "runs", "list", "--config", str(path))
    assert code == 1 and "airuns migrate" in err


def test_show_counts_a_retried_call_once_and_marks_its_attempts(
    database_url: str, tmp_path: Path, seeder_for: Any, capsys
) -> None:
    async def fill() -> None:
        engine = create_engine(database_url)
        seed = seeder_for(engine)
        await seed.apply(
            seed.make("try-1", run="retried", status="error", http_status=502, usage=None),
            seed.make("try-2", run="retried", started=2, attempt=2, attempt_of="try-1"),
        )
        await engine.dispose()

    asyncio.run(fill())
    path = tmp_path / "config.yaml"
    path.write_text(f'database: {{url: "{database_url}"}}\n')
    code, out, _ = run_cli(capsys, "runs", "show", "retried", "--config", str(path))
    assert code == 0
    assert "tasks: 1 (0 errors; +1 retried attempts)" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("try-")}
    assert "error (retried)" in rows["try-1"]
    assert "completed (attempt 2)" in rows["try-2"]
