"""Dialect-aware bulk statements: multi-row upserts in key order, and per-platform locks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import String, bindparam, func, select, text, true, tuple_
from sqlalchemy.dialects.postgresql import ARRAY as PG_ARRAY
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


async def rows_by_key(
    session: AsyncSession,
    table: Any,
    platform_code: str,
    key_column: str,
    keys: Sequence[str],
    columns: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Stored rows of one platform whose ``key_column`` is one of ``keys``, as dicts.

    PostgreSQL: one probe of the (platform, key) unique index per key (``unnest`` + ``LATERAL``).
    A plain ``key IN (…)`` lets the planner pick a platform-only index when statistics lag
    behind a fast-growing platform, and then filter every row of the platform against the list.
    SQLite: ``IN`` in chunks (it uses the unique index either way).
    """
    if not keys:
        return []
    wanted = [table.c[c] for c in columns] if columns else list(table.c)
    found: list[dict[str, Any]] = []
    if dialect_name(session) == "postgresql":
        for part in chunks(sorted(set(keys)), 5_000):
            # one array parameter, not one parameter per key: the statement stays cacheable
            keys_param = bindparam("keys", value=list(part), type_=PG_ARRAY(String))
            probe = func.unnest(keys_param).table_valued("key").render_derived(name="k")
            hit = (
                select(*wanted)
                .where(table.c.platform_code == platform_code, table.c[key_column] == probe.c.key)
                .lateral("hit")
            )
            result = await session.execute(select(hit).select_from(probe).join(hit, true()))
            found.extend(row._asdict() for row in result)
        return found
    for part in chunks(sorted(set(keys)), 500):
        result = await session.execute(
            select(*wanted).where(table.c.platform_code == platform_code, table.c[key_column].in_(part))
        )
        found.extend(row._asdict() for row in result)
    return found
