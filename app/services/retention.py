"""Retention of raw samples and rollups per resolution (§5: raw 30 days, 5m 90 days, 1h 2 years, 1d kept).

On PostgreSQL whole daily partitions of raw samples past retention are dropped first. What is
left — the default partition, the day straddling the horizon, every rollup table, and all of it
on SQLite — is deleted in bounded chunks: a few hundred series (or points) per transaction, each
delete a range of the primary key ``(platform, key, time)``, so no statement scans a table and no
transaction holds SQLite's write lock for long.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy import Table, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import write_session
from app.repositories.bulk import key_in
from app.services.partitions import drop_expired_partitions, ensure_partitions
from app.services.rollups import KINDS, RollupKind

log = logging.getLogger(__name__)

#: registered series / points per delete transaction
KEYS_PER_CHUNK = 500


@dataclass
class RetentionReport:
    dropped_partitions: list[str] = field(default_factory=list)
    #: rows deleted per table
    deleted: dict[str, int] = field(default_factory=dict)


def _horizons(kind: RollupKind, settings: Settings, now: datetime) -> list[tuple[Table, str, datetime]]:
    """(table, time column, delete before) for the raw samples and each rollup that expires."""
    out = [(kind.samples, "ts", now - timedelta(days=getattr(settings, kind.retention_setting)))]
    for resolution in ("5m", "1h", "1d"):
        days = int(getattr(settings, f"retention_rollup_{resolution}_days"))
        if days > 0:
            out.append((kind.tables[resolution], "bucket_start", now - timedelta(days=days)))
    return out


async def _delete_chunked(
    sessionmaker: async_sessionmaker[AsyncSession],
    kind: RollupKind,
    table: Table,
    time_column: str,
    horizon: datetime,
    chunk: int,
) -> int:
    """Delete rows before ``horizon``, walking the registered keys ``chunk`` at a time."""
    registry = kind.registry
    order = [registry.c.platform_code, *kind.keys_of(registry)]
    after: tuple[Any, ...] | None = None
    deleted = 0
    while True:
        async with write_session(sessionmaker) as session:
            page = select(*order).order_by(*order).limit(chunk)
            if after is not None:
                page = page.where(tuple_(*order) > tuple_(*after))
            keys = [tuple(row) for row in await session.execute(page)]
            for platform_code, group in groupby(keys, key=lambda k: k[0]):
                result = await session.execute(
                    delete(table).where(
                        table.c.platform_code == platform_code,
                        key_in(kind.keys_of(table), [k[1:] for k in group]),
                        table.c[time_column] < horizon,
                    )
                )
                deleted += max(result.rowcount or 0, 0)  # type: ignore[attr-defined]
        if len(keys) < chunk:
            return deleted
        after = keys[-1]


async def apply_retention(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime | None = None,
    chunk: int = KEYS_PER_CHUNK,
) -> RetentionReport:
    """Drop and delete what is past retention; safe to run at any time, and twice."""
    now = now or datetime.now(UTC)
    report = RetentionReport()
    for kind in KINDS:
        for table, time_column, horizon in _horizons(kind, settings, now):
            if table is kind.samples:
                async with write_session(sessionmaker) as session:
                    if session.get_bind().dialect.name == "postgresql":
                        report.dropped_partitions += await drop_expired_partitions(
                            session, table.name, horizon
                        )
            report.deleted[table.name] = await _delete_chunked(
                sessionmaker, kind, table, time_column, horizon, chunk
            )
    if report.dropped_partitions or any(report.deleted.values()):
        log.info("retention: dropped %s, deleted %s", report.dropped_partitions, report.deleted)
    return report


async def maintain(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, now: datetime | None = None
) -> RetentionReport:
    """The hourly job: partitions ahead (PostgreSQL), then retention."""
    now = now or datetime.now(UTC)
    async with write_session(sessionmaker) as session:
        if session.get_bind().dialect.name == "postgresql":
            created = await ensure_partitions(
                session, today=now.date(), days_ahead=settings.partitions_ahead_days
            )
            if created:
                log.info("partitions created: %s", ", ".join(created))
    return await apply_retention(sessionmaker, settings, now=now)
