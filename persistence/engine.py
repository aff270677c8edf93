"""The one place an `AsyncEngine` is made: driver rewriting, SQLite pragmas, Postgres pool;
and the checks that tell a `database.url` that cannot work from a database that is merely down.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_ASYNC_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}

# WAL lets readers (admin API) proceed while the writer commits; NORMAL is durable in WAL
# except for the last commits on power loss; busy_timeout makes a second writer wait, not fail.
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
)

# What airuns ships drivers for; anything else cannot be opened by an async engine here.
_SUPPORTED = ("sqlite+aiosqlite", "postgresql+asyncpg")
_EXAMPLES = "sqlite+aiosqlite:///./airuns.db or postgresql+asyncpg://USER@HOST/DATABASE"

_POSTGRES_POOL = {"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True, "pool_recycle": 1800}


def async_url(url: str) -> str:
    """`postgresql://…` and `sqlite:///…` become their async-driver spellings."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        return url
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


class DatabaseConfigError(ValueError):
    """`database.url` cannot work as configured (not a URL, a database or driver airuns does
    not ship, a database that does not exist, a folder that is missing): waiting will not fix
    it, so the start stops with this message instead of retrying."""


def check_database_url(url: str) -> None:
    """Refuse a URL no retry could make work, before the async engine connects. A SQLite file
    is opened once with the stdlib driver: aiosqlite's worker thread outlives the event loop
    after a failed open and prints "Event loop is closed" tracebacks."""
    try:
        parsed = make_url(async_url(url))
    except (ArgumentError, ValueError):
        shown = "(not shown: it may hold a password)" if "@" in url else repr(url[:80])
        raise DatabaseConfigError(f"not a database URL: {shown} (expected {_EXAMPLES})") from None
    if parsed.drivername not in _SUPPORTED:
        raise DatabaseConfigError(_unsupported(parsed))
    if _authority(url).count("@") > 1:  # the password would be cut at its "@", and logged
        raise DatabaseConfigError(
            "the URL has more than one '@': URL-encode the password's '@' as %40"
        )
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in url):
        raise DatabaseConfigError("the URL holds a control character")
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_path(parsed.database)


def _unsupported(parsed: URL) -> str:
    backend = parsed.get_backend_name()
    if backend in ("sqlite", "postgresql"):
        driver = "aiosqlite" if backend == "sqlite" else "asyncpg"
        return f"driver {parsed.get_driver_name()!r} is not supported; use {backend}+{driver}"
    return f"{backend!r} databases are not supported; use {_EXAMPLES}"


def _check_sqlite_path(database: str | None) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return  # in memory, or a SQLite URI whose options only SQLite reads
    path = Path(database)
    folder = path.parent.resolve()
    if not folder.is_dir():
        raise DatabaseConfigError(f"folder {folder} does not exist (for SQLite file {database})")
    if path.is_dir():
        raise DatabaseConfigError(f"{database} is a folder, not a SQLite file")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise DatabaseConfigError(f"SQLite file {database} is not readable and writable")
    if not os.access(folder, os.W_OK | os.X_OK):  # the WAL and its index are created beside it
        raise DatabaseConfigError(f"folder {folder} is not writable (for SQLite file {database})")
    _probe_sqlite(database)


def _probe_sqlite(database: str) -> None:
    """Open (creating it, as migrating would) and read the header: a file that is not SQLite,
    or one this process may not open, fails here. A lock held by another process passes."""
    try:
        connection = sqlite3.connect(database, timeout=1)
        try:
            connection.execute("PRAGMA user_version")
        finally:
            connection.close()
    except sqlite3.Error as exc:
        if not any(word in str(exc) for word in ("locked", "busy")):
            raise DatabaseConfigError(f"SQLite file {database}: {exc}") from None


def display_url(url: str) -> str:
    """`url` with its password masked, for logs and messages: in the authority, and in a
    `password` query parameter (asyncpg reads one)."""
    if _authority(url).count("@") > 1:
        return "(URL not shown: its password holds an unencoded '@')"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return url if "@" not in url else "(unparseable URL)"
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True)


def _authority(url: str) -> str:
    """The part of `url` between `//` and the path, where a user and password live."""
    rest = url.partition("://")[2]
    return rest.split("/", 1)[0].split("?", 1)[0]


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, **options: Any) -> AsyncEngine:
    # Bound parameters (request bodies, replies) never reach error messages and logs.
    options.setdefault("hide_parameters", True)
    url = async_url(url)
    if is_sqlite(url):
        engine = create_async_engine(url, **options)
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
        return engine
    if "poolclass" not in options:
        options = _POSTGRES_POOL | options
    return create_async_engine(url, **options)


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()
