"""Initial schema: runs and tasks.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from persistence.types import JSONType, Money, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RUN_INDEXES = [
    ["last_message_at", "id"],
    ["status", "last_message_at"],
    ["is_starred"],
    ["user_id"],
    ["source_type"],
    ["created_at"],
    ["name"],
    ["total_cost"],
    ["total_tokens"],
    ["message_count"],
]
TASK_INDEXES = [
    ["run_id", "created_at"],
    ["upstream_model"],
    ["model"],
    ["created_at"],
    ["status"],
    ["instance_id", "status"],
]


def _counter(name: str, kind: type[sa.types.TypeEngine] = sa.Integer) -> sa.Column:
    return sa.Column(name, kind(), server_default=sa.text("0"), nullable=False)


def _create_indexes(table: str, indexes: list[list[str]]) -> None:
    for columns in indexes:
        op.create_index(op.f(f"ix_{table}_{'_'.join(columns)}"), table, columns)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("status", sa.String(16), server_default="active", nullable=False),
        sa.Column("is_starred", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("source_type", sa.String()),
        sa.Column("source_id", sa.String()),
        sa.Column("user_id", sa.String()),
        sa.Column("owner", sa.String()),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("tags", JSONType, nullable=False),
        sa.Column("settings", JSONType, nullable=False),
        sa.Column("messages", JSONType, nullable=False),
        _counter("message_count"),
        sa.Column("messages_started_at", UTCDateTime()),
        _counter("task_count"),
        _counter("error_count"),
        _counter("prompt_tokens", sa.BigInteger),
        _counter("completion_tokens", sa.BigInteger),
        _counter("total_tokens", sa.BigInteger),
        sa.Column("total_cost", Money(), server_default=sa.text("0"), nullable=False),
        _counter("unpriced_task_count"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("last_message_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    _create_indexes("runs", RUN_INDEXES)
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("run_id", sa.String(128)),
        sa.Column("task_name", sa.String()),
        sa.Column("endpoint", sa.String(), nullable=False),
        sa.Column("provider", sa.String()),
        sa.Column("model", sa.String()),
        sa.Column("upstream_model", sa.String()),
        sa.Column("response_model", sa.String()),
        sa.Column("stream", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer()),
        sa.Column("request", JSONType),
        sa.Column("response_text", sa.Text()),
        sa.Column("tool_calls", JSONType),
        sa.Column("finish_reason", sa.String()),
        sa.Column("error_message", sa.Text()),
        sa.Column("prompt_tokens", sa.BigInteger()),
        sa.Column("completion_tokens", sa.BigInteger()),
        sa.Column("cached_tokens", sa.BigInteger()),
        sa.Column("reasoning_tokens", sa.BigInteger()),
        sa.Column("total_tokens", sa.BigInteger()),
        sa.Column("usage_source", sa.String(16), server_default="missing", nullable=False),
        sa.Column("upstream_latency_ms", sa.Float()),
        sa.Column("time_to_first_token_ms", sa.Float()),
        sa.Column("total_time_ms", sa.Float()),
        sa.Column("overhead_ms", sa.Float()),
        sa.Column("cost", Money()),
        sa.Column("input_cost", Money()),
        sa.Column("output_cost", Money()),
        sa.Column("price", JSONType),
        sa.Column("user_id", sa.String()),
        sa.Column("owner", sa.String()),
        sa.Column("instance_id", sa.String(128)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime()),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_tasks_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    _create_indexes("tasks", TASK_INDEXES)


def downgrade() -> None:
    op.drop_table("tasks")
    op.drop_table("runs")
