"""Which database errors the writer retries, and how a refusal is described."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import exc as sa_exc

from persistence.failures import describe_refusal, is_transient


class PgError(Exception):
    """An asyncpg-style driver error: SQLAlchemy wraps it, its `sqlstate` says what it is."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def wrapped(kind: type[sa_exc.DBAPIError], orig: Exception) -> sa_exc.DBAPIError:
    return kind("INSERT ...", None, orig)


@pytest.mark.parametrize(
    "error, transient",
    [
        (wrapped(sa_exc.OperationalError, sqlite3.OperationalError("database is locked")), True),
        (wrapped(sa_exc.OperationalError, sqlite3.OperationalError("disk I/O error")), True),
        (wrapped(sa_exc.OperationalError, sqlite3.OperationalError("no such table: runs")), True),
        (wrapped(sa_exc.OperationalError, sqlite3.OperationalError("malformed JSON")), False),
        (wrapped(sa_exc.OperationalError, sqlite3.OperationalError("near x: syntax error")), False),
        (wrapped(sa_exc.IntegrityError, sqlite3.IntegrityError("NOT NULL constraint")), False),
        (wrapped(sa_exc.DataError, PgError("invalid byte sequence: 0x00", "22021")), False),
        (wrapped(sa_exc.DataError, PgError("numeric field overflow", "22003")), False),
        (wrapped(sa_exc.DBAPIError, PgError("unsupported Unicode escape", "22P05")), False),
        (wrapped(sa_exc.OperationalError, PgError("connection failure", "08006")), True),
        (wrapped(sa_exc.DBAPIError, PgError("deadlock detected", "40P01")), True),
        (wrapped(sa_exc.DBAPIError, PgError("too many connections", "53300")), True),
        (wrapped(sa_exc.DBAPIError, PgError("shutting down", "57P03")), True),
        (wrapped(sa_exc.DBAPIError, PgError("invalid input: value out of int64 range", "")), False),
        (wrapped(sa_exc.InterfaceError, PgError("connection is closed", "")), True),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (OverflowError("Python int too large to convert to SQLite INTEGER"), False),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), False),
        (TypeError("bug"), False),
    ],
)  # fmt: skip
def test_only_the_databases_state_is_retried_never_the_statements_fault(error, transient):
    assert is_transient(error) is transient


def test_a_refusal_is_described_by_the_drivers_class_and_first_line():
    error = wrapped(
        sa_exc.DataError, PgError('invalid input syntax\nDETAIL: Token "NaN" is invalid', "22P02")
    )
    assert describe_refusal(error) == "PgError: invalid input syntax"
    assert describe_refusal(OverflowError("too big")) == "OverflowError: too big"
    assert len(describe_refusal(ValueError("x" * 5000))) == 300
