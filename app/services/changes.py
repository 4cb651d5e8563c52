"""Incremental sync (§2.2): change sequences in commit order, and ``sync_token``\\ s built on them.

A writer leaves the rows it changes with ``change_seq`` NULL; its last step takes the next value
of the table's counter (``UPDATE … RETURNING``, whose row lock lasts until commit) and stamps its
rows with it. Because the counter is locked until commit, sequences are handed out in commit
order: a reader that sees sequence *S* knows every sequence below *S* is committed and visible.

A ``sync_token`` is a signed position ``(seq, platform_code, id)`` bound to the list's filters.
On the last page it moves up to the counter value read *before* the query: every change up to
that value was visible to the query, so nothing behind the token can still appear later. Rows
are therefore delivered at least once and never skipped, even while ingests are in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_name
from app.errors import BadParameter
from app.models import ChangeCounter
from app.schemas.types import parse_rfc3339
from app.security.keys import ServerKey
from app.services.cursor import decode_cursor, encode_cursor


async def next_seq(session: AsyncSession, counter: str) -> int:
    """The next value of ``counter``; its row stays locked until this transaction ends.

    Take it as late as possible in a write: every writer of the same counter waits here for the
    holder's commit, which is what keeps sequences in commit order.
    """
    insert: Any = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    bump = insert(ChangeCounter).values(name=counter, value=1)
    bump = bump.on_conflict_do_update(
        index_elements=["name"], set_={"value": ChangeCounter.value + 1}
    ).returning(ChangeCounter.value)
    return int((await session.execute(bump)).scalar_one())


def sample_counter(table: str, platform_code: str) -> str:
    """Raw samples count changes per platform, so ingests of different platforms never wait on each other."""
    return f"{table}:{platform_code}"


async def stamp_changes(session: AsyncSession, table: Any, counter: str, platform_code: str) -> int:
    """Give this transaction's changed rows of ``platform_code`` the next change sequence."""
    seq = await next_seq(session, counter)
    await session.execute(
        update(table)
        .where(table.c.platform_code == platform_code, table.c.change_seq.is_(None))
        .values(change_seq=seq)
    )
    return int(seq)


@dataclass(frozen=True)
class SyncSpec:
    """How one list syncs: its counter, its sequence and key columns, its ``updated_at``."""

    resource: str
    counter: str
    seq: Any
    keys: tuple[Any, ...]
    updated_at: Any


@dataclass(frozen=True)
class SyncStart:
    """Where a sync resumes: after a position (a token) or from a time (a first sync)."""

    position: tuple[Any, ...] | None = None
    since: datetime | None = None


def parse_updated_since(key: ServerKey, spec: SyncSpec, filters: dict[str, Any], value: str) -> SyncStart:
    """``updated_since`` is either an RFC 3339 time or a ``sync_token`` of the same filters."""
    if value[:1].isdigit() and "T" in value[:11].upper():
        try:
            return SyncStart(since=parse_rfc3339(value))
        except ValueError as exc:
            raise BadParameter(f"updated_since: {exc}") from None
    try:
        raw = decode_cursor(key, spec.resource, filters, value)
    except BadParameter:
        raise BadParameter(
            "updated_since 应为 RFC 3339 时间或同一筛选条件下返回的 sync_token "
            "(updated_since must be a time with offset or a sync_token of the same filters)"
        ) from None
    if len(raw) != 1 + len(spec.keys) or not isinstance(raw[0], int):
        raise BadParameter("sync_token 无效 (invalid sync_token)")
    return SyncStart(position=tuple(raw))


def _after(spec: SyncSpec, position: tuple[Any, ...]) -> ColumnElement[bool]:
    seq, *keys = position
    if all(k is None for k in keys):  # the end of sequence ``seq``: everything up to it was seen
        after: ColumnElement[bool] = spec.seq > seq
        return after
    # one row comparison: it reads the (seq, keys…) index from the position on; the equivalent
    # OR of two conditions made PostgreSQL walk the whole index from its start
    return tuple_(spec.seq, *spec.keys) > tuple_(seq, *keys)


async def sync_page(
    session: AsyncSession,
    stmt: Select[Any],
    spec: SyncSpec,
    start: SyncStart,
    *,
    server_key: ServerKey,
    filters: dict[str, Any],
    limit: int,
    key_of: Any,
    scalars: bool = True,
) -> tuple[list[Any], str, bool]:
    """One page in change order; the token to resume after it; whether more rows follow."""
    counter = (
        await session.execute(select(ChangeCounter.value).where(ChangeCounter.name == spec.counter))
    ).scalar_one_or_none() or 0
    if start.since is not None:
        stmt = stmt.where(spec.updated_at >= start.since)
    if start.position is not None:
        stmt = stmt.where(_after(spec, start.position))
    stmt = stmt.where(spec.seq.is_not(None)).order_by(spec.seq, *spec.keys).limit(limit + 1)
    result = await session.execute(stmt)
    rows = list(result.scalars() if scalars else result.all())
    more = len(rows) > limit
    rows = rows[:limit]
    if rows:
        position: list[Any] = key_of(rows[-1])
    elif start.position is not None:
        position = list(start.position)
    else:
        position = [-1, *([None] * len(spec.keys))]
    if not more and position[0] <= counter:
        # everything up to the counter read before the query was visible to it
        position = [counter, *([None] * len(spec.keys))]
    return rows, encode_cursor(server_key, spec.resource, filters, position), more
