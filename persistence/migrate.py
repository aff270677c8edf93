"""Apply the Alembic migrations, configured in code so the installed package needs no ini file.

`migrate(url)` runs at `airuns migrate` and at every `serve` start; on Postgres it holds an
advisory lock so processes starting together upgrade one after the other, not at once.

A database that cannot work as configured (see `permanent_cause`) fails `migrate` with
`DatabaseConfigError`; any other failure (refused, timed out, starting up) is the database
being unreachable for now, which `serve` rides out.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.util.exc import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import NullPool

from persistence.engine import (
    DatabaseConfigError,
    check_database_url,
    create_engine,
    display_url,
    is_sqlite,
)
from persistence.failures import describe_error, first_line
from persistence.models import Base

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Arbitrary but fixed: every airuns process contends for the same Postgres advisory lock.
MIGRATION_LOCK_KEY = 0x61697275
# A Postgres that accepts connections and never answers: asyncpg would wait 60 s in silence.
CONNECT_TIMEOUT = 15.0
# SQLSTATE classes (Postgres) no retry fixes: invalid authorization (wrong role or password, no
# pg_hba entry), no such database or schema, syntax or access rule (no privilege to create).
_PERMANENT_SQLSTATE_CLASSES = ("28", "3D", "3F", "42")
# SQLite errors that pass: another process holds the lock, or the disk is full for now.
_TRANSIENT_SQLITE = ("locked", "busy", "full")


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def migrate(url: str) -> None:
    """Upgrade the database at `url` to the newest revision (a no-op when it is there).

    Raises `DatabaseConfigError` when the database cannot work as configured; anything else it
    raises means the database could not be reached."""
    check_database_url(url)
    options = {} if is_sqlite(url) else {"connect_args": {"timeout": CONNECT_TIMEOUT}}
    engine = create_engine(url, poolclass=NullPool, **options)
    try:
        async with engine.connect() as connection:
            before, after = await _with_migration_lock(connection, _upgrade)
    except Exception as error:
        cause = permanent_cause(error)
        if cause is None:
            raise
        raise DatabaseConfigError(f"{cause} ({display_url(url)})") from None
    finally:
        await engine.dispose()
    if before != after:
        log.info("database migrated from revision %s to %s", before or "(empty)", after)


async def migrate_when_reachable(url: str, retry_every: float = 2.0) -> None:
    """Migrate once the database answers: `serve` starts proxying even when the database is
    down (records spool meanwhile), and the schema must be in place before they are written.
    Each distinct failure is logged once, not every `retry_every` seconds."""
    last = ""
    while True:
        try:
            await migrate(url)
            return
        except Exception as error:  # unreachable, or refusing: try again, never stop the proxy
            text = describe_error(error)
            if text != last:
                level = logging.ERROR if isinstance(error, DatabaseConfigError) else logging.WARNING
                log.log(level, "database not migrated yet (%s); retrying every %gs", text,
                        retry_every)  # fmt: skip
                last = text
            await asyncio.sleep(retry_every)


def permanent_cause(error: BaseException) -> str | None:
    """Why `error` means the database cannot work as configured, in one line; None when it
    may pass (refused, timed out, name not resolved yet, server starting, too many clients)."""
    if isinstance(error, DatabaseConfigError):
        return str(error)
    if isinstance(error, CommandError):  # e.g. a schema newer than this airuns knows
        return f"migrations cannot be applied: {first_line(error)}"
    if not isinstance(error, DBAPIError):
        return None
    orig = error.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(code, str) and code.startswith(_PERMANENT_SQLSTATE_CLASSES):
        return first_line(orig)
    if isinstance(orig, sqlite3.Error) and not any(w in str(orig) for w in _TRANSIENT_SQLITE):
        return f"SQLite: {first_line(orig)}"
    return None


async def schema_diff(url: str) -> list[Any]:
    """Differences between the models and the migrated schema at `url` (empty when they agree)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_compare)
    finally:
        await engine.dispose()


async def _with_migration_lock(connection: AsyncConnection, upgrade: Any) -> Any:
    locking = connection.dialect.name == "postgresql"
    if locking:
        await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        await connection.commit()  # the lock is per session: it outlives this transaction
    try:
        result = await connection.run_sync(upgrade)
        await connection.commit()
        return result
    finally:
        await connection.rollback()
        if locking:
            unlock = text("SELECT pg_advisory_unlock(:key)")
            await connection.execute(unlock, {"key": MIGRATION_LOCK_KEY})
            await connection.commit()


def _upgrade(connection: Connection) -> tuple[str | None, str | None]:
    """Upgrade to head; the revisions before and after, so a no-op start logs nothing."""
    config = alembic_config()
    config.attributes["connection"] = connection
    before = MigrationContext.configure(connection).get_current_revision()
    command.upgrade(config, "head")
    return before, MigrationContext.configure(connection).get_current_revision()


def _compare(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)
