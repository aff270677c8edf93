import asyncio
import socket
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import inspect, select, text

from persistence import migrate as migrate_module
from persistence.engine import create_engine
from persistence.failures import describe_error
from persistence.migrate import alembic_config, migrate, schema_diff
from persistence.models import tasks_table


async def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_from_empty_creates_the_schema(empty_database_url: str) -> None:
    await migrate(empty_database_url)
    assert {"runs", "tasks", "alembic_version"} <= await table_names(empty_database_url)


async def test_models_and_migrations_agree(empty_database_url: str) -> None:
    await migrate(empty_database_url)
    assert await schema_diff(empty_database_url) == []


async def test_migrate_is_idempotent_and_safe_when_run_concurrently(
    empty_database_url: str, backend: str
) -> None:
    if backend == "postgres":  # several processes starting at once: the advisory lock queues them
        await asyncio.gather(*(migrate(empty_database_url) for _ in range(4)))
    else:
        await migrate(empty_database_url)
    await migrate(empty_database_url)
    assert await schema_diff(empty_database_url) == []


async def test_tasks_stored_before_attempts_read_as_first_and_only_attempts(
    empty_database_url: str,
) -> None:
    """0005 adds `attempt`, `attempt_of` and `retried`: older tasks are calls of one attempt."""
    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0004")
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as conn:
            insert = text(
                "INSERT INTO tasks (id, endpoint, status, created_at) VALUES ('old', :e, :s, :at)"
            )
            at = datetime(2026, 1, 1, tzinfo=UTC)
            params = {"e": "/v1/chat/completions", "s": "completed", "at": at}
            if conn.dialect.name == "sqlite":
                params["at"] = "2026-01-01 00:00:00.000000"
            await conn.execute(insert, params)
        await migrate(empty_database_url)
        columns = tasks_table.c
        async with engine.connect() as conn:
            query = select(columns.attempt, columns.attempt_of, columns.retried)
            assert (await conn.execute(query)).one() == (1, None, False)
    finally:
        await engine.dispose()


async def test_attempts_migration_goes_down_and_up_again(empty_database_url: str) -> None:
    await migrate(empty_database_url)
    config = alembic_config(empty_database_url)
    await asyncio.to_thread(command.downgrade, config, "0004")
    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as conn:
            columns = await conn.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("tasks")}
            )
        assert not columns & {"attempt", "attempt_of", "retried"}
    finally:
        await engine.dispose()
    await migrate(empty_database_url)
    assert await schema_diff(empty_database_url) == []


async def test_unpriced_counts_are_recounted_without_failures_that_had_no_usage(
    empty_database_url: str,
) -> None:
    """0006: a failed call without usage was counted unpriced; it is not any more."""
    config = alembic_config(empty_database_url)
    await asyncio.to_thread(command.upgrade, config, "0005")
    engine = create_engine(empty_database_url)
    at = "'2026-01-01 00:00:00.000000'"
    if empty_database_url.startswith("postgresql"):
        at = "TIMESTAMPTZ '2026-01-01 00:00:00+00'"
    task = (
        "INSERT INTO tasks (id, run_id, endpoint, status, created_at, total_tokens) "
        f"VALUES (:id, 'r', '/v1/chat/completions', :status, {at}, :tokens)"
    )
    unpriced = text("SELECT unpriced_task_count FROM runs WHERE id = 'r'")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO runs (id, name, metadata, tags, settings, messages, "
                    "unpriced_task_count, created_at, updated_at, last_message_at) "
                    f"VALUES ('r', 'r', '{{}}', '[]', '{{}}', '[]', 3, {at}, {at}, {at})"
                )
            )
            for task_id, status, tokens in [
                ("a-502", "error", None),
                ("unknown-model", "completed", 12),
                ("no-usage-reported", "completed", None),
                ("under-way", "streaming", 5),
            ]:
                await conn.execute(text(task), {"id": task_id, "status": status, "tokens": tokens})
        await migrate(empty_database_url)
        async with engine.connect() as conn:
            assert (await conn.execute(unpriced)).scalar_one() == 2
        await asyncio.to_thread(command.downgrade, config, "0005")
        async with engine.connect() as conn:
            assert (await conn.execute(unpriced)).scalar_one() == 3
    finally:
        await engine.dispose()


async def test_a_database_that_accepts_connections_and_never_answers_times_out(
    monkeypatch,
) -> None:
    """Unreachable, not misconfigured: `serve` rides it out, `migrate` says so and exits 1."""
    monkeypatch.setattr(migrate_module, "CONNECT_TIMEOUT", 0.2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"postgresql+asyncpg://airuns@127.0.0.1:{silent.getsockname()[1]}/airuns"
        async with asyncio.timeout(10):
            with pytest.raises(TimeoutError) as waited:
                await migrate(url)
    assert describe_error(waited.value) == "no answer in time"
