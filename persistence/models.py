"""The schema: `runs` (one per X-Run-Id), `tasks` (one per proxied call), `usage_hourly` (the
tasks summed per hour and key, for usage reports) and `instances` (the airuns processes writing
to this database, with their heartbeats).

Run aggregates (task_count, tokens, total_cost, …) are maintained by `apply.py` with SQL
increments; they always equal the sums over the run's tasks. Token counts on a task are NULL
when the provider did not report them, never 0.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from persistence.ttft_histogram import BUCKETS
from persistence.types import JSONType, Money, UTCDateTime

ID_LENGTH = 128

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _zero() -> Any:
    return text("0")


RETRIES = text("attempt_of IS NOT NULL")


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    is_starred: Mapped[bool] = mapped_column(Boolean, server_default=false())
    source_type: Mapped[str | None] = mapped_column(String)
    source_id: Mapped[str | None] = mapped_column(String)
    user_id: Mapped[str | None] = mapped_column(String)
    owner: Mapped[str | None] = mapped_column(String)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    message_count: Mapped[int] = mapped_column(Integer, server_default=_zero())
    # When the task whose conversation is in `messages` started: a later-started one replaces it.
    messages_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    task_count: Mapped[int] = mapped_column(Integer, server_default=_zero())
    error_count: Mapped[int] = mapped_column(Integer, server_default=_zero())
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, server_default=_zero())
    completion_tokens: Mapped[int] = mapped_column(BigInteger, server_default=_zero())
    total_tokens: Mapped[int] = mapped_column(BigInteger, server_default=_zero())
    total_cost: Mapped[Decimal] = mapped_column(Money, server_default=_zero())
    unpriced_task_count: Mapped[int] = mapped_column(Integer, server_default=_zero())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        # Keyset pagination sorts by (column, id): one index range per page, ties included.
        Index(None, "last_message_at", "id"),
        Index(None, "status", "last_message_at", "id"),
        Index(None, "is_starred"),
        Index(None, "user_id"),
        Index(None, "source_type"),
        Index(None, "created_at"),
        Index(None, "name", "id"),
        Index(None, "total_cost", "id"),
        Index(None, "total_tokens", "id"),
        Index(None, "message_count", "id"),
    )


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("runs.id", ondelete="CASCADE")
    )
    task_name: Mapped[str | None] = mapped_column(String)
    endpoint: Mapped[str] = mapped_column(String)
    provider: Mapped[str | None] = mapped_column(String)
    model: Mapped[str | None] = mapped_column(String)
    upstream_model: Mapped[str | None] = mapped_column(String)
    response_model: Mapped[str | None] = mapped_column(String)
    stream: Mapped[bool] = mapped_column(Boolean, server_default=false())
    status: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    request: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    response_text: Mapped[str | None] = mapped_column(Text)
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    finish_reason: Mapped[str | None] = mapped_column(String)
    error_message: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(BigInteger)
    completion_tokens: Mapped[int | None] = mapped_column(BigInteger)
    cached_tokens: Mapped[int | None] = mapped_column(BigInteger)
    reasoning_tokens: Mapped[int | None] = mapped_column(BigInteger)
    total_tokens: Mapped[int | None] = mapped_column(BigInteger)
    usage_source: Mapped[str] = mapped_column(String(16), server_default="missing")
    upstream_latency_ms: Mapped[float | None] = mapped_column(Float)
    time_to_first_token_ms: Mapped[float | None] = mapped_column(Float)
    total_time_ms: Mapped[float | None] = mapped_column(Float)
    overhead_ms: Mapped[float | None] = mapped_column(Float)
    cost: Mapped[Decimal | None] = mapped_column(Money)
    input_cost: Mapped[Decimal | None] = mapped_column(Money)
    output_cost: Mapped[Decimal | None] = mapped_column(Money)
    # The per-1M prices used, frozen when the cost was computed.
    price: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    user_id: Mapped[str | None] = mapped_column(String)
    owner: Mapped[str | None] = mapped_column(String)
    # Which airuns process wrote the task: lets a restart close its own stuck pending tasks.
    instance_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A client's retries of one call (`persistence/attempts.py`): this attempt's number, the
    # first attempt's task id (NULL on the first attempt), and whether a later attempt of the
    # call exists. A run counts a call once, by its one attempt that is not `retried`.
    attempt: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    attempt_of: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    retried: Mapped[bool] = mapped_column(Boolean, server_default=false())

    __table_args__ = (
        Index(None, "run_id", "created_at", "id"),
        Index(None, "created_at", "id"),
        Index(None, "status"),
        Index(None, "instance_id", "status"),
        # Only retries are in it: every stored batch asks it whether its tasks have any.
        Index(None, "attempt_of", postgresql_where=RETRIES, sqlite_where=RETRIES),
    )


class Instance(Base):
    """A live airuns process, as far as its heartbeat tells. Past `expires_at` (or without a
    row at all) an instance is taken for dead and its unfinished tasks are closed."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set by the instance itself (heartbeat_at + a few of its own heartbeat intervals), so
    # processes with different intervals judge each other right.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index(None, "expires_at"),)


# The counters of a `usage_hourly` row, in the order the writer, the backfill and the report
# use; `ttft_NN` counts the TTFTs in bucket NN of `persistence/ttft_histogram.py`.
TTFT_COLUMNS = tuple(f"ttft_{bucket:02d}" for bucket in range(BUCKETS))
USAGE_COUNTERS = (
    "tasks", "requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens",
    "cost", "priced", *TTFT_COLUMNS,
)  # fmt: skip


def _counter(name: str) -> Column[Any]:
    kind = Money() if name == "cost" else Integer() if name.startswith("ttft_") else BigInteger()
    return Column(name, kind, nullable=False, server_default=_zero())


# Tasks summed per UTC hour of `created_at` and key (upstream model, provider, user, owner),
# kept by `apply.py` in the transaction that writes the tasks (`persistence/rollups.py`).
# `tasks` counts rows (a key exists while it is > 0); `requests`/`errors` count calls by their
# last attempt, as a run does; tokens and `cost` add up every attempt; `priced` counts tasks
# with a cost. A key is found by `key_digest` (16 bytes of BLAKE2b over the four values), so
# the unique index stays small whatever the lengths of the names in it.
usage_hourly_table = Table(
    "usage_hourly",
    Base.metadata,
    Column("hour", UTCDateTime, nullable=False),
    Column("key_digest", LargeBinary(16), nullable=False),
    Column("model", String),
    Column("provider", String),
    Column("user_id", String),
    Column("owner", String),
    *(_counter(name) for name in USAGE_COUNTERS),
    PrimaryKeyConstraint("hour", "key_digest"),
)

runs_table = Run.__table__
tasks_table = Task.__table__
instances_table = Instance.__table__
