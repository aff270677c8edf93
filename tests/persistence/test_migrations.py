import asyncio

from sqlalchemy import inspect

from persistence.engine import create_engine
from persistence.migrate import migrate, schema_diff


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
