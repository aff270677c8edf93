"""A run's `unpriced_task_count` leaves out calls that failed with no usage.

It used to count every final task without a cost, so a call that failed before any usage (a
502, a refused request) read as "+1 unpriced" although there was nothing to price
(`persistence.record.is_unpriced`). Existing runs are recounted from their tasks; the downgrade
recounts them the old way. Stop the writers of older versions first: a recount races their
increments.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

FINAL = "('completed', 'error', 'cancelled', 'timeout')"


def _recount(usage_known: str) -> None:
    op.execute(
        "UPDATE runs SET unpriced_task_count = ("
        " SELECT count(*) FROM tasks WHERE tasks.run_id = runs.id"
        f" AND tasks.status IN {FINAL} AND tasks.cost IS NULL{usage_known})"
    )


def upgrade() -> None:
    _recount(" AND NOT (tasks.total_tokens IS NULL AND tasks.status IN ('error', 'timeout'))")


def downgrade() -> None:
    _recount("")
