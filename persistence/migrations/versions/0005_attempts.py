"""Attempts: a client's retries of one call are tasks of one logical call.

`attempt` (1, 2, 3, …), `attempt_of` (the first attempt's task id, NULL on the first attempt)
and `retried` (a later attempt of the call exists). Every existing task reads as the first and
only attempt of its call (1, NULL, false), so runs' aggregates stay what they are. The index on
`attempt_of` holds retries only (a partial index): first attempts, nearly every row, cost it
nothing on the write path.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

RETRIES = sa.text("attempt_of IS NOT NULL")


def upgrade() -> None:
    op.add_column(
        "tasks", sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("1"))
    )
    op.add_column("tasks", sa.Column("attempt_of", sa.String(128), nullable=True))
    op.add_column(
        "tasks", sa.Column("retried", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.create_index(
        op.f("ix_tasks_attempt_of"),
        "tasks",
        ["attempt_of"],
        postgresql_where=RETRIES,
        sqlite_where=RETRIES,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_tasks_attempt_of"), table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("retried")
        batch.drop_column("attempt_of")
        batch.drop_column("attempt")
