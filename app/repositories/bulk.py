"""Dialect-aware bulk statements: multi-row upserts in key order, and per-platform locks."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, bindparam, func, or_, select, text, true, tuple_
from sqlalchemy.dialects.postgresql import ARRAY as PG_ARRAY
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from app.db import dialect_name

#: parameter sets per executemany call (bounds the memory of one call, not the statement)
_EXECUTEMANY_CHUNK = 5_000
#: rows per PostgreSQL ``unnest`` statement
_UNNEST_CHUNK = 10_000


def chunks(rows: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def bind_column(values: list[Any], process: Callable[[Any], Any] | None) -> list[Any]:
    """``values`` through a column's bind processor, each distinct value processed once.

    A batch repeats the same few values down a column (one collection time for thousands of
    samples, the same ``received_at`` on every row), and a processor (UTC conversion, then
    SQLite's text form) costs more than the write of the value. Unhashable values (JSON
    documents) are processed once per object (the values list keeps them alive, so no id is
    reused during the call).
    """
    if process is None:
        return values
    classes = {v.__class__ for v in values}
    if len(classes) == 1 and not classes & {float, datetime, dict, list}:
        # one class whose equal values are the same value (str, int, bool, None, UUID, date…)
        keys: list[Any] = values
    elif classes == {datetime} and {v.tzinfo for v in values} == {UTC}:
        keys = values  # UTC times (what ingest parses to): equal is identical
    else:
        keys = [_same_value_key(v) for v in values]
    try:
        return _bound_once(keys, values, process)
    except TypeError:  # unhashable values: processed once per object
        return _bound_once([id(v) for v in values], values, process)


def _bound_once(keys: list[Any], values: list[Any], process: Callable[[Any], Any]) -> list[Any]:
    bound: dict[Any, Any] = {}
    for key, value in zip(keys, values, strict=True):
        if key not in bound:
            bound[key] = process(value)
    return [bound[key] for key in keys]


def _same_value_key(value: Any) -> Any:
    """A key equal only for values any processor turns into the same thing.

    Plain equality is not enough: ``True == 1 == 1.0`` (a JSON column would write ``true`` for a
    ``1``), ``0.0 == -0.0``, and two datetimes of one instant in different offsets are equal.
    An unhashable value gives an unhashable key.
    """
    kind = value.__class__
    if kind is float:
        return (kind, value.hex())
    if kind is datetime:
        return (kind, value, value.tzinfo)
    return (kind, value)


async def upsert_rows(
    session: AsyncSession,
    table: Any,
    rows: Sequence[dict[str, Any]],
    *,
    key: Sequence[str],
    update: Sequence[str] | None = None,
    unless_newer: str | None = None,
) -> None:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` (or ``DO NOTHING`` with ``update=[]``).

    ``unless_newer`` names a time column: a stored row whose value there is newer than the
    incoming row's is left as it is (``DO UPDATE … WHERE stored IS NULL OR stored <= incoming``).

    Rows must already be de-duplicated and sorted by ``key`` so concurrent batches take row
    locks in the same order and cannot deadlock. SQLite: one statement executed for many
    parameter sets (the driver's executemany), compiled once and cached. PostgreSQL: one
    statement per chunk whose rows come from ``unnest`` of one array per column (see
    :func:`_pg_upsert_unnest`).
    """
    if not rows:
        return
    columns = list(rows[0].keys())
    update_cols = [c for c in columns if c not in key] if update is None else list(update)
    if dialect_name(session) == "postgresql":
        for part in chunks(rows, _UNNEST_CHUNK):
            await _pg_upsert_unnest(session, table, part, columns, key, update_cols, unless_newer)
        return
    dialect = session.get_bind().dialect
    sql, order = _sqlite_upsert_sql(
        dialect, table, tuple(columns), tuple(key), tuple(update_cols), unless_newer
    )
    # bound column by column with each column's own processors (what executemany would apply row
    # by row, dict by dict), then handed to the driver's executemany as tuples
    processors = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in order]
    connection = await session.connection()
    for part in chunks(rows, _EXECUTEMANY_CHUNK):
        values = [
            bind_column([row[c] for row in part], process)
            for c, process in zip(order, processors, strict=True)
        ]
        await connection.exec_driver_sql(sql, list(zip(*values, strict=True)))


async def execute_many(session: AsyncSession, statement: Any, rows: Sequence[dict[str, Any]]) -> None:
    """``session.execute(statement, rows)`` for thousands of rows on SQLite, bound column by column.

    The same parameters as SQLAlchemy's executemany (each bound by its type's processor; values
    fixed in the statement are taken from it), handed to the driver as tuples: SQLAlchemy's
    per-row parameter dictionaries cost more than SQLite's work. PostgreSQL: plain execute.
    """
    if not rows:
        return
    if dialect_name(session) != "sqlite":
        await session.execute(statement, list(rows))
        return
    dialect = session.get_bind().dialect
    compiled = statement.compile(dialect=dialect, column_keys=list(rows[0]))
    connection = await session.connection()
    for part in chunks(rows, _EXECUTEMANY_CHUNK):
        columns = []
        for name in compiled.positiontup or []:
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            values = [row[name] for row in part] if name in part[0] else [bind.effective_value] * len(part)
            columns.append(bind_column(values, process))
        await connection.exec_driver_sql(compiled.string, list(zip(*columns, strict=True)))


_SQLITE_UPSERTS: dict[tuple[Any, ...], tuple[str, list[str]]] = {}


def _sqlite_upsert_sql(
    dialect: Any,
    table: Any,
    columns: tuple[str, ...],
    key: tuple[str, ...],
    update_cols: tuple[str, ...],
    unless_newer: str | None,
) -> tuple[str, list[str]]:
    """The compiled ``INSERT … ON CONFLICT`` and the order of its parameters (cached per shape)."""
    cache_key = (table.name, columns, key, update_cols, unless_newer)
    cached = _SQLITE_UPSERTS.get(cache_key)
    if cached is not None:
        return cached
    stmt = sqlite_insert(table).values({c: bindparam(c, type_=table.c[c].type) for c in columns})
    if update_cols:
        guard = None
        if unless_newer is not None:
            stored = table.c[unless_newer]
            guard = or_(stored.is_(None), stored <= stmt.excluded[unless_newer])
        stmt = stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: stmt.excluded[c] for c in update_cols}, where=guard
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
    compiled = stmt.compile(dialect=dialect)
    order = list(compiled.positiontup or [])
    if sorted(order) != sorted(columns):  # every parameter must be one of the row's columns
        raise RuntimeError(f"unexpected parameters in the upsert of {table.name}: {order}")
    _SQLITE_UPSERTS[cache_key] = (compiled.string, order)
    return compiled.string, order


async def _pg_upsert_unnest(
    session: AsyncSession,
    table: Any,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    key: Sequence[str],
    update_cols: Sequence[str],
    unless_newer: str | None = None,
) -> None:
    """``INSERT … SELECT … FROM unnest(<one array per column>) ON CONFLICT …``: one round trip.

    asyncpg runs an executemany as one execution per parameter set; at thousands of rows that
    cost ten times what PostgreSQL needs to write them. Here each column travels as one array
    parameter (values bound by the column's own type, exactly as executemany binds them: UTC
    times, JSON documents — ``None`` included — as JSON text), and ``WITH ORDINALITY … ORDER BY``
    keeps the rows in the caller's key order, so row locks are still taken in that order.
    """
    dialect = session.get_bind().dialect
    params: dict[str, Any] = {}
    arrays: list[str] = []
    selected: list[str] = []
    for n, name in enumerate(columns):
        impl = table.c[name].type.dialect_impl(dialect)
        process = impl.bind_processor(dialect)
        params[f"p{n}"] = bind_column([row[name] for row in rows], process)
        sql_type = impl.compile(dialect=dialect)
        if sql_type in {"JSON", "JSONB"}:  # documents travel as text, cast row by row
            arrays.append(f"CAST(:p{n} AS TEXT[])")
            selected.append(f'CAST(u."{name}" AS {sql_type})')
        else:
            arrays.append(f"CAST(:p{n} AS {sql_type}[])")
            selected.append(f'u."{name}"')
    names = ", ".join(f'"{c}"' for c in columns)
    conflict = ", ".join(f'"{c}"' for c in key)
    if update_cols:
        action = "DO UPDATE SET " + ", ".join(f'"{c}" = excluded."{c}"' for c in update_cols)
        if unless_newer is not None:
            stored = f'"{table.name}"."{unless_newer}"'
            action += f' WHERE {stored} IS NULL OR {stored} <= excluded."{unless_newer}"'
    else:
        action = "DO NOTHING"
    statement = (
        f'INSERT INTO "{table.name}" ({names}) SELECT {", ".join(selected)} '
        f"FROM unnest({', '.join(arrays)}) WITH ORDINALITY AS u({names}, bulk_ord) ORDER BY u.bulk_ord "
        f"ON CONFLICT ({conflict}) {action}"
    )
    await session.execute(text(statement), params)


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
