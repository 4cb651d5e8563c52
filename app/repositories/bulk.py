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

#: parameter sets per executemany call (bounds the memory of one call, not the statement)
_EXECUTEMANY_CHUNK = 5_000


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
    locks in the same order and cannot deadlock. One statement executed for many parameter
    sets (the driver's executemany): compiled once and cached, unlike multi-row VALUES.
    """
    if not rows:
        return
    columns = list(rows[0].keys())
    update_cols = [c for c in columns if c not in key] if update is None else list(update)
    stmt = _insert(session, table)
    if update_cols:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: stmt.excluded[c] for c in update_cols}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
    for part in chunks(rows, _EXECUTEMANY_CHUNK):
        await session.execute(stmt, list(part))


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
