"""Drop the tasks indexes on `model` and `upstream_model`: no query can use them.

The `model` filters (runs list, tasks list) match a task's model, upstream_model *or*
response_model, and response_model has no index, so Postgres cannot combine the other two in a
bitmap OR: it walks the run's tasks (runs list) or the created_at order (tasks list) instead,
and usage by model reads the whole time window whatever the index. Each index cost a B-tree
insert per recorded call on the write path.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DROPPED = (["model"], ["upstream_model"])


def upgrade() -> None:
    for columns in DROPPED:
        op.drop_index(op.f(f"ix_tasks_{'_'.join(columns)}"), table_name="tasks")


def downgrade() -> None:
    for columns in DROPPED:
        op.create_index(op.f(f"ix_tasks_{'_'.join(columns)}"), "tasks", columns)
