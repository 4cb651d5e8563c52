"""Dialect-aware bulk statements: multi-row upserts in key order, and per-platform locks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from app.db import dialect_name

#: stay under SQLite's 32 766 and asyncpg's 32 767 bind parameters per statement
_MAX_PARAMS = 30_000


def _insert(session: AsyncSession, table: Any) -> Any:
    return pg_insert(table) if dialect_name(session) == "postgresql" else sqlite_insert(table)


def chunks(rows: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def upsert_rows(
    session: AsyncSession,
    table: Any,
    rows: Sequence[dict[str, Any]],
    *,
    key: Sequence[str],
    update: Sequence[str] | None = None,
) -> None:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` (or ``DO NOTHING`` with ``update=[]``).

    Rows must already be de-duplicated and sorted by ``key`` so concurrent batches take row
    locks in the same order and cannot deadlock. Multi-row VALUES statements, chunked under
    the bind-parameter limits of both databases.
    """
    if not rows:
        return
    columns = list(rows[0].keys())
    per_chunk = max(1, _MAX_PARAMS // len(columns))
    for part in chunks(rows, per_chunk):
        stmt = _insert(session, table).values(list(part))
        update_cols = [c for c in columns if c not in key] if update is None else list(update)
        if update_cols:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(key),
                set_={c: stmt.excluded[c] for c in update_cols},
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
        await session.execute(stmt)


def key_in(columns: Sequence[Any], keys: Sequence[tuple[Any, ...]]) -> ColumnElement[bool]:
    """``(a, b) IN ((…), (…))`` for composite keys, ``a IN (…)`` for one column."""
    if len(columns) == 1:
        return columns[0].in_([k[0] for k in keys])  # type: ignore[no-any-return]
    return tuple_(*columns).in_(keys)


async def lock_platform(session: AsyncSession, platform_code: str, purpose: str) -> None:
    """Serialise merge-patch writers of one platform and kind (PostgreSQL advisory lock).

    SQLite needs nothing: a write transaction already holds the database's write lock.
    """
    if dialect_name(session) != "postgresql":
        return
    digest = hashlib.sha256(f"{purpose}|{platform_code}".encode()).digest()
    lock_id = int.from_bytes(digest[:8], "big", signed=True)
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
