"""Which database errors are worth retrying, and how a refusal is described.

The writer retries transient errors with backoff (and spools meanwhile); any other error is
permanent — retrying the same statement would fail the same way forever — and the writer
isolates the record that causes it instead (see `writer.py`).
"""

from __future__ import annotations

import os
import socket
import sqlite3

from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DBAPIError

# SQLSTATE classes worth retrying: 08 connection, 40 rollback (deadlock, serialization),
# 53 insufficient resources, 57P server shutting down / starting, 55P03 lock not available.
_TRANSIENT_SQLSTATES = ("08", "40", "53", "57P", "55P03")
# SQLite reports everything as OperationalError, "malformed JSON" as much as "database is
# locked": only these messages are the database's state rather than the statement's fault.
# ("no such table": the database is reachable but not migrated yet; the migration retries.)
_TRANSIENT_SQLITE = (
    "locked",
    "busy",
    "disk i/o error",
    "unable to open",
    "database or disk is full",
    "no such table",
    "interrupted",
)
_MAX_REASON = 300


def is_transient(error: BaseException) -> bool:
    """Whether retrying the same batch later can succeed."""
    if isinstance(error, OSError | TimeoutError):
        return True  # refused connections and timeouts
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        if isinstance(error.orig, sqlite3.Error):
            return _sqlite_transient(error.orig)
        sqlstate = getattr(error.orig, "sqlstate", None) or ""
        if sqlstate:
            return sqlstate.startswith(_TRANSIENT_SQLSTATES)
        return isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)
    return False


def _sqlite_transient(error: sqlite3.Error) -> bool:
    if not isinstance(error, sqlite3.OperationalError):
        return False  # IntegrityError, DataError, …: the statement's fault
    message = str(error).lower()
    return any(part in message for part in _TRANSIENT_SQLITE)


def describe_refusal(error: BaseException) -> str:
    """One line saying why the database refused a record: the driver's error class and the
    first line of its message (bound values are never part of it: engines hide parameters)."""
    cause = error.orig if isinstance(error, sa_exc.DBAPIError) and error.orig else error
    first_line = (str(cause).strip().splitlines() or [""])[0]
    text = f"{type(cause).__name__}: {first_line}" if first_line else type(cause).__name__
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def describe_error(error: BaseException) -> str:
    """A database failure in one line, without SQLAlchemy's background links."""
    if isinstance(error, DBAPIError):
        return first_line(error.orig)
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, socket.gaierror):
        return f"host not found: {error.strerror}"
    if isinstance(error, OSError) and error.errno and error.errno > 0:
        return os.strerror(error.errno).lower()  # not asyncio's "Connect call failed (…)"
    return first_line(error) or type(error).__name__


def first_line(error: object) -> str:
    """The first line of an error's text (SQLAlchemy appends background links on others)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
