"""The one place an `AsyncEngine` is made: driver rewriting, SQLite pragmas, Postgres pool."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
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

_POSTGRES_POOL = {"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True, "pool_recycle": 1800}


def async_url(url: str) -> str:
    """`postgresql://…` and `sqlite:///…` become their async-driver spellings."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        return url
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


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
