"""Who is asking, and the one place that turns it into a row filter.

An admin sees every run and task. A user (a proxy key's user in `auth.mode: keys`) sees only
rows whose `owner` is that user; to them anything else does not exist (404, never 403, so ids
of other users' runs are not disclosed).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Table, true


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a query: `user` is None for an admin."""

    user: str | None = None

    @classmethod
    def admin(cls) -> Principal:
        return cls(user=None)

    @classmethod
    def for_user(cls, user: str) -> Principal:
        return cls(user=user)

    @property
    def is_admin(self) -> bool:
        return self.user is None


def visible(table: Table, principal: Principal) -> ColumnElement[bool]:
    """The rows of `table` (runs or tasks; both carry `owner`) that `principal` may see."""
    if principal.is_admin:
        return true()
    return table.c.owner == principal.user
