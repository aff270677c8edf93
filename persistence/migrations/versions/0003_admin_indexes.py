"""Admin indexes: every list order is (column, id), so a keyset page is one index range.

The runs list sorts by (column, id) and continues after a (value, id) pair. With an index on the
column alone, Postgres turns `(col, id) < (v, id)` into `col <= v` and then walks and filters
every row tied on `v` before sorting by id: on message_count (few distinct values, thousands of
runs each) a deep page read ~11,000 rows. With (column, id) the comparison is the index range.
The same for the archived/deleted tabs (status, last_message_at, id) and the task lists.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# table → [(old columns, new columns)]
REPLACED = {
    "runs": [
        (["status", "last_message_at"], ["status", "last_message_at", "id"]),
        (["name"], ["name", "id"]),
        (["total_cost"], ["total_cost", "id"]),
        (["total_tokens"], ["total_tokens", "id"]),
        (["message_count"], ["message_count", "id"]),
    ],
    "tasks": [
        (["run_id", "created_at"], ["run_id", "created_at", "id"]),
        (["created_at"], ["created_at", "id"]),
    ],
}


def _name(table: str, columns: list[str]) -> str:
    return op.f(f"ix_{table}_{'_'.join(columns)}")


def _swap(table: str, drop: list[str], create: list[str]) -> None:
    op.create_index(_name(table, create), table, create)
    op.drop_index(_name(table, drop), table_name=table)


def upgrade() -> None:
    for table, pairs in REPLACED.items():
        for old, new in pairs:
            _swap(table, old, new)


def downgrade() -> None:
    for table, pairs in REPLACED.items():
        for old, new in pairs:
            _swap(table, new, old)
