"""Incremental sync of raw samples (§2.2, §5 ``/metrics/samples``, ``/environment/samples``).

Every sample write carries its platform's next ``change_seq`` (taken in commit order, see
:mod:`app.services.changes`), so within one platform ``(change_seq, key, ts)`` is a change order
no later commit can slip behind. A ``sync_token`` holds, per platform, the position of the last
row delivered (or ``[seq]``: every change up to ``seq`` delivered); it is signed and bound to the
list's filters. On the last page each platform's position moves up to its counter value read
*before* the query, so rows committed while the page was read are delivered next time — at least
once, never skipped. Different platforms never wait on each other's counters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadParameter
from app.models import ChangeCounter, Platform
from app.security.keys import ServerKey
from app.security.principal import Principal
from app.services.buckets import windowed_page
from app.services.changes import sample_counter
from app.services.cursor import decode_cursor, encode_cursor
from app.services.query import Keyset, echo_time, parse_time, scope_condition

_BAD_TOKEN = (
    "updated_since 应为 RFC 3339 时间或同一筛选条件下返回的 sync_token "
    "(updated_since must be a time with offset or a sync_token of the same filters)"
)

Position = list[Any]
#: a list's scoped query over an optional ``[from, to)``
SampleStatement = Callable[
    [AsyncSession, Principal, Any, datetime | None, datetime | None], Awaitable[Select[Any]]
]


def _is_time(value: str) -> bool:
    return value[:1].isdigit() and "T" in value[:11].upper()


def _decode(
    key: ServerKey, resource: str, bound: dict[str, Any], token: str, width: int
) -> dict[str, Position]:
    try:
        raw = decode_cursor(key, resource, bound, token)
        positions: dict[str, Position] = {}
        for platform_code, position in raw:
            if not isinstance(platform_code, str) or not isinstance(position[0], int):
                raise TypeError
            if len(position) == 1:
                positions[platform_code] = [position[0]]
            elif len(position) == 2 + width:
                positions[platform_code] = [*position[:-1], datetime.fromisoformat(position[-1])]
            else:
                raise ValueError
    except (BadParameter, TypeError, ValueError, IndexError):
        raise BadParameter(_BAD_TOKEN) from None
    return positions


def _after(table: Table, keys: Sequence[Any], positions: dict[str, Position]) -> ColumnElement[bool]:
    order = (table.c.change_seq, *keys, table.c.ts)
    conditions: list[ColumnElement[bool]] = [table.c.platform_code.not_in(sorted(positions))]
    for platform_code, position in sorted(positions.items()):
        beyond = (
            table.c.change_seq > position[0] if len(position) == 1 else tuple_(*order) > tuple_(*position)
        )
        conditions.append(and_(table.c.platform_code == platform_code, beyond))
    return or_(*conditions)


async def _counters(
    session: AsyncSession, principal: Principal, table: Table, filters: Any
) -> dict[str, int]:
    """Each in-scope platform's sample counter, read before the query."""
    scope = await scope_condition(
        session,
        principal,
        Platform.platform_code,
        platform_code=filters.platform_code,
        region_code=filters.region_code,
    )
    platforms = list((await session.execute(select(Platform.platform_code).where(scope))).scalars())
    names = {sample_counter(table.name, p): p for p in platforms}
    out: dict[str, int] = {}
    for start in range(0, len(names), 500):
        part = sorted(names)[start : start + 500]
        rows = await session.execute(
            select(ChangeCounter.name, ChangeCounter.value).where(ChangeCounter.name.in_(part))
        )
        out.update({names[name]: int(value) for name, value in rows})
    return out


async def sync_samples(
    session: AsyncSession,
    key: ServerKey,
    principal: Principal,
    filters: Any,
    *,
    table: Table,
    keys: Sequence[Any],
    statement: SampleStatement,
    out: Callable[[Any, str], dict[str, Any]],
    limit: int,
    tz_name: str,
) -> dict[str, Any]:
    """One page of samples in change order ``(platform_code, change_seq, key, ts)`` and its token.

    ``filters.updated_since`` is a time (the samples received since then) or a ``sync_token``;
    ``from`` / ``to`` narrow the samples' own times only when given.
    """
    resource = f"{table.name}-sync"
    since = filters.updated_since
    assert since is not None
    given_from, given_to = parse_time(filters.from_, "from"), parse_time(filters.to, "to")
    bound = {k: v for k, v in asdict(filters).items() if k != "updated_since"}
    counters = await _counters(session, principal, table, filters)
    stmt = await statement(session, principal, filters, given_from, given_to)
    positions: dict[str, Position] = {}
    if _is_time(since):
        stmt = stmt.where(table.c.received_at >= parse_time(since, "updated_since"))
    else:
        positions = _decode(key, resource, bound, since, len(keys))
        if positions:
            stmt = stmt.where(_after(table, keys, positions))
    stmt = stmt.order_by(table.c.platform_code, table.c.change_seq, *keys, table.c.ts).limit(limit + 1)
    rows = list((await session.execute(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    for row in rows:
        positions[row.platform_code] = [row.change_seq, *(row._mapping[k.name] for k in keys), row.ts]
    if not more:
        # every change up to the counters read before the query was visible to it
        for platform_code, seq in counters.items():
            position = positions.get(platform_code)
            if position is None or position[0] <= seq:
                positions[platform_code] = [seq]
    encoded = [
        [p, [*pos[:-1], pos[-1].isoformat()] if len(pos) > 1 else pos] for p, pos in sorted(positions.items())
    ]
    token = encode_cursor(key, resource, bound, encoded)
    return {
        "items": [out(row, tz_name) for row in rows],
        "next_cursor": token if more else None,
        "sync_token": token,
        "from": echo_time(given_from, tz_name),
        "to": echo_time(given_to, tz_name),
    }


@dataclass(frozen=True)
class SampleList:
    """What a raw-samples list (metric or environment) is made of, for :func:`sample_page`."""

    keyset: Keyset
    table: Table
    #: the sample's key columns after the platform, before ``ts``
    keys: tuple[Any, ...]
    statement: Callable[
        [AsyncSession, Principal, Any, datetime | None, datetime | None], Awaitable[Select[Any]]
    ]
    out: Callable[[Any, str], dict[str, Any]]
    default_span: timedelta


async def sample_page(
    spec: SampleList,
    session: AsyncSession,
    key: ServerKey,
    principal: Principal,
    filters: Any,
    *,
    limit: int,
    cursor: str | None,
    with_total: bool,
    tz_name: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A page of raw samples: in key order within a window (default the last ``default_span``,
    kept by the cursor), or with ``updated_since`` in change order with a ``sync_token``."""
    if filters.updated_since is not None:
        return await sync_samples(
            session,
            key,
            principal,
            filters,
            table=spec.table,
            keys=spec.keys,
            statement=spec.statement,
            out=spec.out,
            limit=limit,
            tz_name=tz_name,
        )
    return await windowed_page(
        session,
        key,
        principal,
        filters,
        keyset=spec.keyset,
        statement=spec.statement,
        out=spec.out,
        default_span=spec.default_span,
        limit=limit,
        cursor=cursor,
        with_total=with_total,
        tz_name=tz_name,
        now=now,
    )
