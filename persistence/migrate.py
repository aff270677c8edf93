"""Apply the Alembic migrations, configured in code so the installed package needs no ini file.

`migrate(url)` runs at `airuns migrate` and at every `serve` start; on Postgres it holds an
advisory lock so processes starting together upgrade one after the other, not at once.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import NullPool

from persistence.engine import create_engine
from persistence.models import Base

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Arbitrary but fixed: every airuns process contends for the same Postgres advisory lock.
MIGRATION_LOCK_KEY = 0x61697275


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def migrate(url: str) -> None:
    """Upgrade the database at `url` to the newest revision (a no-op when it is there)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await _with_migration_lock(connection, _upgrade)
    finally:
        await engine.dispose()


async def migrate_when_reachable(url: str, retry_every: float = 2.0) -> None:
    """Migrate once the database answers: `serve` starts proxying even when the database is
    down (records spool meanwhile), and the schema must be in place before they are written."""
    while True:
        try:
            await migrate(url)
            return
        except Exception as error:  # unreachable, or refusing: try again, never stop the proxy
            log.warning("migrations not applied yet (%s); retrying in %.0fs", error, retry_every)
            await asyncio.sleep(retry_every)


async def schema_diff(url: str) -> list[Any]:
    """Differences between the models and the migrated schema at `url` (empty when they agree)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_compare)
    finally:
        await engine.dispose()


async def _with_migration_lock(connection: AsyncConnection, upgrade: Any) -> None:
    locking = connection.dialect.name == "postgresql"
    if locking:
        await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        await connection.commit()  # the lock is per session: it outlives this transaction
    try:
        await connection.run_sync(upgrade)
        await connection.commit()
    finally:
        await connection.rollback()
        if locking:
            unlock = text("SELECT pg_advisory_unlock(:key)")
            await connection.execute(unlock, {"key": MIGRATION_LOCK_KEY})
            await connection.commit()


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _compare(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)
