"""Usage rollups: `usage_hourly`, the tasks summed per UTC hour × upstream model × provider ×
user × owner, with a TTFT histogram (`persistence/rollups.py`, `persistence/ttft_histogram.py`).

`/admin/usage` reads these rows instead of every task in its window. They are built here from
the tasks already stored, in the migration's transaction; the writer keeps them from then on.
Stop the writers of older versions first: tasks they store after this runs are not counted.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from persistence.rollups import backfill
from persistence.types import Money, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Frozen here: the histogram layout of `ttft_histogram.py` when this revision was written.
TTFT_BUCKETS = 74
COUNTERS = ("tasks", "requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens")


def _zero() -> sa.TextClause:
    return sa.text("0")


def upgrade() -> None:
    op.create_table(
        "usage_hourly",
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("key_digest", sa.LargeBinary(16), nullable=False),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("provider", sa.String(), nullable=True),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("owner", sa.String(), nullable=True),
        *(sa.Column(name, sa.BigInteger(), nullable=False, server_default=_zero())
          for name in COUNTERS),
        sa.Column("cost", Money(), nullable=False, server_default=_zero()),
        sa.Column("priced", sa.BigInteger(), nullable=False, server_default=_zero()),
        *(sa.Column(f"ttft_{bucket:02d}", sa.Integer(), nullable=False, server_default=_zero())
          for bucket in range(TTFT_BUCKETS)),
        sa.PrimaryKeyConstraint("hour", "key_digest", name=op.f("pk_usage_hourly")),
    )  # fmt: skip
    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table("usage_hourly")
