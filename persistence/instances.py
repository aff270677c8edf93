"""Which airuns processes are alive: each one upserts its `instances` row on a heartbeat.

An instance declares its own lease: `expires_at` = its heartbeat + `LEASE_BEATS` of its own
intervals. Past that — or when a task names an instance that has no row — the instance is
taken for dead. Times are the writing process's UTC clock, so hosts sharing a database need
clocks within a fraction of the lease of each other (NTP gives milliseconds).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.models import instances_table as instances

LEASE_BEATS = 3  # missed heartbeats before an instance is taken for dead


def new_instance_id() -> str:
    """`host:pid:random`: unique per process start, readable in the database and spool."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def beat(
    conn: AsyncConnection, instance_id: str, now: datetime, interval: float, started_at: datetime
) -> None:
    """Create or refresh the instance's row (also after someone took it for dead)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    expires_at = now + timedelta(seconds=interval * LEASE_BEATS)
    statement = dialect.insert(instances).values(
        id=instance_id, started_at=started_at, heartbeat_at=now, expires_at=expires_at
    )
    statement = statement.on_conflict_do_update(
        index_elements=["id"], set_={"heartbeat_at": now, "expires_at": expires_at}
    )
    await conn.execute(statement)


async def forget(conn: AsyncConnection, instance_ids: Iterable[str], now: datetime) -> None:
    """Remove the rows of instances that stopped, and of every instance whose lease ran out."""
    ids = list(instance_ids)
    condition = instances.c.expires_at < now
    if ids:
        condition = or_(condition, instances.c.id.in_(ids))
    await conn.execute(delete(instances).where(condition))
