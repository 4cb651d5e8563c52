"""Daily time partitions of the raw sample tables on PostgreSQL (§5 retention, §11 scale).

Migration 0007 makes ``metric_sample`` and ``environment_sample`` tables partitioned by range of
``ts`` with a default partition; this module creates one partition per UTC day ahead of time and
drops whole partitions once they are past retention, which costs nothing like a ``DELETE`` of
millions of rows. A row whose day has no partition yet (older data, or a scheduler that was down)
lands in the default partition, which retention trims with bounded deletes.

Creating a partition needs the default partition to hold no row of that day; when it does, the
day is skipped (and stays in the default partition) rather than failing the whole run.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

PARTITIONED_TABLES = ("metric_sample", "environment_sample")
_PARTITION = re.compile(r"^(metric_sample|environment_sample)_(default|p\d{8})$")
_DAY = re.compile(r"_p(\d{8})$")


def is_partition(name: str) -> bool:
    """A partition made at run time (migrations and ``alembic check`` leave these alone)."""
    return _PARTITION.match(name) is not None


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


async def existing_partitions(session: AsyncSession, table: str) -> dict[str, date | None]:
    """Partitions of ``table`` → their UTC day (``None`` for the default partition)."""
    rows = await session.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :table"
        ),
        {"table": table},
    )
    out: dict[str, date | None] = {}
    for (name,) in rows:
        match = _DAY.search(name)
        out[name] = datetime.strptime(match.group(1), "%Y%m%d").date() if match else None
    return out


async def ensure_partitions(session: AsyncSession, *, today: date, days_ahead: int) -> list[str]:
    """Create the daily partitions of ``today`` … ``today + days_ahead`` that are missing."""
    created: list[str] = []
    for table in PARTITIONED_TABLES:
        existing = await existing_partitions(session, table)
        for offset in range(days_ahead + 1):
            day = today + timedelta(days=offset)
            name = partition_name(table, day)
            if name in existing:
                continue
            try:
                async with session.begin_nested():
                    # the default partition is scanned for rows of this day under a strong lock:
                    # give up quickly rather than stall ingest behind a long wait
                    await session.execute(text("SET LOCAL lock_timeout = '5s'"))
                    await session.execute(
                        text(
                            f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM "
                            f"('{_day_start(day).isoformat()}') TO "
                            f"('{_day_start(day + timedelta(days=1)).isoformat()}')"
                        )
                    )
            except DBAPIError as exc:
                log.warning("partition %s not created (left to the default partition): %s", name, exc.orig)
                continue
            created.append(name)
    return created


async def drop_expired_partitions(session: AsyncSession, table: str, horizon: datetime) -> list[str]:
    """Drop the daily partitions of ``table`` whose whole day is before ``horizon``."""
    dropped: list[str] = []
    for name, day in sorted((await existing_partitions(session, table)).items()):
        if day is not None and _day_start(day + timedelta(days=1)) <= horizon:
            await session.execute(text(f"DROP TABLE {name}"))
            dropped.append(name)
    return dropped
