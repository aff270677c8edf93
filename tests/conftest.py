"""Database fixtures: every test that takes `database_url` or `engine` runs on SQLite and Postgres.

Postgres: `AIRUNS_TEST_DATABASE_URL` names the server (its database is used to create others),
else `postgresql+asyncpg://postgres@127.0.0.1:5432/postgres`. A fresh `airuns_test_<random>`
database is created once per session, migrated once, truncated before each test and dropped at
the end. No reachable server → the postgres cases are skipped, or fail when CI=true.
SQLite: one migrated template file per session, copied for each test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.engine import create_engine
from persistence.migrate import migrate

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
BACKENDS = ["sqlite", "postgres"]


def _server_url() -> str:
    return os.environ.get("AIRUNS_TEST_DATABASE_URL") or DEFAULT_POSTGRES_URL


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(url: str, name: str) -> str:
    parsed = make_url(url).set(drivername="postgresql+asyncpg", database=name)
    return parsed.render_as_string(hide_password=False)


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(_server_url()), timeout=3)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _postgres_unavailable(reason: str) -> None:
    message = f"Postgres at {_server_url()} is not reachable: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: Postgres tests must run)", pytrace=False)
    pytest.skip(message)


class PostgresServer:
    """Creates (and at session end drops) throwaway databases on the test server."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def create_database(self) -> str:
        name = f"airuns_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return _with_database(_server_url(), name)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.clear()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        asyncio.run(_admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        _postgres_unavailable(str(exc) or type(exc).__name__)
    server = PostgresServer()
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def migrated_postgres_url(postgres_server: PostgresServer) -> str:
    url = postgres_server.create_database()
    asyncio.run(migrate(url))
    return url


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    asyncio.run(migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database with no rows in it."""
    if backend == "sqlite":
        path = tmp_path / "airuns.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url = request.getfixturevalue("migrated_postgres_url")
    asyncio.run(_truncate(url))
    return url


@pytest.fixture
def empty_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A database without any tables (for migration tests)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def _truncate(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("TRUNCATE tasks, runs, instances, usage_hourly"))
    finally:
        await engine.dispose()
