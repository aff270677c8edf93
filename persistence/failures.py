"""Which database errors are worth retrying: the writer retries these with backoff (and
spools meanwhile) and refuses the rest record by record."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

# SQLSTATE classes worth retrying: 08 connection, 40 rollback (deadlock, serialization),
# 53 insufficient resources, 57P server shutting down / starting, 55P03 lock not available.
_TRANSIENT_SQLSTATES = ("08", "40", "53", "57P", "55P03")


def is_transient(error: BaseException) -> bool:
    """Whether retrying the same batch later can succeed."""
    if isinstance(error, OSError | TimeoutError | sa_exc.OperationalError | sa_exc.InterfaceError):
        return True  # OSError covers refused connections and timeouts
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        sqlstate = getattr(error.orig, "sqlstate", None) or ""
        return sqlstate.startswith(_TRANSIENT_SQLSTATES)
    return False
