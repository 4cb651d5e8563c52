"""Reading machine-room environment data back (§4.5, §5): raw samples, the latest per point, series."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, get_args
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.models import EnvironmentPoint, EnvironmentSample
from app.repositories.bulk import key_in
from app.schemas.enums import PointType
from app.security.keys import ServerKey
from app.security.principal import Principal
from app.services.buckets import (
    Bucket,
    BucketSource,
    Step,
    bucketize,
    collect_points,
    resolve_step,
    resolved_window,
)
from app.services.metrics import DEFAULT_SPAN
from app.services.query import (
    Keyset,
    decode_times,
    echo_time,
    enum_filter,
    keyset_page,
    scope_condition,
)
from app.services.rollups import ENVIRONMENT, rollup_source
from app.services.sample_sync import SampleList, sample_page

PointKey = tuple[str, str]
POINT_FIELDS = ("point_type", "rack_code", "position", "height_m", "interval_s", "derived_from")


async def raw_environment_buckets(
    session: AsyncSession,
    platform_code: str,
    keys: Sequence[PointKey],
    step: Step,
    start: datetime,
    end: datetime,
) -> AsyncGenerator[tuple[PointKey, Bucket], None]:
    """Buckets of points ``(room_code, point_code)`` computed from raw samples (with states for raw)."""
    stmt = (
        select(
            EnvironmentSample.room_code,
            EnvironmentSample.point_code,
            EnvironmentSample.ts,
            EnvironmentSample.value,
            EnvironmentSample.state,
        )
        .where(
            EnvironmentSample.platform_code == platform_code,
            key_in((EnvironmentSample.room_code, EnvironmentSample.point_code), list(keys)),
            EnvironmentSample.ts >= start,
            EnvironmentSample.ts < end,
        )
        .order_by(EnvironmentSample.room_code, EnvironmentSample.point_code, EnvironmentSample.ts)
    )
    result = await session.stream(stmt)

    async def rows() -> AsyncIterator[tuple[PointKey, datetime, float, str | None]]:
        async for room_code, point_code, ts, value, state in result:
            yield (room_code, point_code), ts, value, state

    try:
        async for point, bucket in bucketize(rows(), step):
            yield point, bucket
    finally:
        await result.close()


def _point_out(row: Any, tz_name: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "platform_code": row.platform_code,
        "room_code": row.room_code,
        "point_code": row.point_code,
    }
    out.update({name: getattr(row, name) for name in POINT_FIELDS})
    out.update(
        ts=echo_time(row.ts, tz_name),
        value=row.value,
        state=row.state,
        evaluated_at=row.evaluated_at,
    )
    return out


_POINT_COLUMNS: list[Any] = [
    EnvironmentPoint.point_type,
    EnvironmentPoint.rack_code,
    EnvironmentPoint.position,
    EnvironmentPoint.height_m,
    EnvironmentPoint.interval_s,
    EnvironmentPoint.derived_from,
]


@dataclass(frozen=True)
class SampleFilters:
    platform_code: str | None = None
    region_code: str | None = None
    room_code: str | None = None
    point_code: str | None = None
    point_type: str | None = None
    from_: str | None = None
    to: str | None = None
    #: an RFC 3339 time (samples received since) or a ``sync_token``: change order (§2.2)
    updated_since: str | None = None


SAMPLE_KEYSET = Keyset(
    "environment_samples",
    (
        EnvironmentSample.platform_code,
        EnvironmentSample.room_code,
        EnvironmentSample.point_code,
        EnvironmentSample.ts,
    ),
    lambda r: [r.platform_code, r.room_code, r.point_code, r.ts],
    decode=decode_times(3),
)


async def samples_statement(
    session: AsyncSession,
    principal: Principal,
    filters: SampleFilters,
    start: datetime | None,
    end: datetime | None,
) -> Select[Any]:
    """The raw samples a list (or an export) with ``filters`` over ``[start, end)`` holds."""
    point_types = enum_filter(filters.point_type, "point_type", get_args(PointType))
    scope = await scope_condition(
        session,
        principal,
        EnvironmentSample.platform_code,
        platform_code=filters.platform_code,
        region_code=filters.region_code,
    )
    columns: list[Any] = [
        EnvironmentSample.platform_code,
        EnvironmentSample.room_code,
        EnvironmentSample.point_code,
        EnvironmentSample.ts,
        EnvironmentSample.value,
        EnvironmentSample.state,
        EnvironmentSample.evaluated_at,
        EnvironmentSample.received_at,
        EnvironmentSample.change_seq,
        *_POINT_COLUMNS,
    ]
    stmt = (
        select(*columns)
        .join(
            EnvironmentPoint,
            and_(
                EnvironmentPoint.platform_code == EnvironmentSample.platform_code,
                EnvironmentPoint.room_code == EnvironmentSample.room_code,
                EnvironmentPoint.point_code == EnvironmentSample.point_code,
            ),
        )
        .where(scope)
    )
    if start is not None:
        stmt = stmt.where(EnvironmentSample.ts >= start)
    if end is not None:
        stmt = stmt.where(EnvironmentSample.ts < end)
    if filters.room_code is not None:
        stmt = stmt.where(EnvironmentSample.room_code == filters.room_code)
    if filters.point_code is not None:
        stmt = stmt.where(EnvironmentSample.point_code == filters.point_code)
    if point_types is not None:
        stmt = stmt.where(EnvironmentPoint.point_type.in_(point_types))
    return stmt


def sample_out(row: Any, tz_name: str) -> dict[str, Any]:
    """One row of :func:`samples_statement` as the list answers it."""
    return _point_out(row, tz_name) | {"received_at": row.received_at}


SAMPLE_LIST = SampleList(
    SAMPLE_KEYSET,
    EnvironmentSample.__table__,  # type: ignore[arg-type]
    (
        EnvironmentSample.__table__.c.room_code,
        EnvironmentSample.__table__.c.point_code,
    ),
    samples_statement,
    sample_out,
    DEFAULT_SPAN,
)


async def list_samples(
    session: AsyncSession,
    key: ServerKey,
    principal: Principal,
    filters: SampleFilters,
    *,
    limit: int,
    cursor: str | None,
    with_total: bool,
    tz_name: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Raw environment samples in scope, ordered by ``(platform_code, room_code, point_code, ts)``.

    Without ``from`` / ``to`` the window is the last 24 h, resolved on the first page and kept
    by the cursor. With ``updated_since``: change order and a ``sync_token``
    (:mod:`app.services.sample_sync`).
    """
    return await sample_page(
        SAMPLE_LIST,
        session,
        key,
        principal,
        filters,
        limit=limit,
        cursor=cursor,
        with_total=with_total,
        tz_name=tz_name,
        now=now,
    )


@dataclass(frozen=True)
class LatestFilters:
    platform_code: str | None = None
    region_code: str | None = None
    room_code: str | None = None
    point_type: str | None = None


LATEST_KEYSET = Keyset(
    "environment_latest",
    (EnvironmentPoint.platform_code, EnvironmentPoint.room_code, EnvironmentPoint.point_code),
    lambda r: [r.platform_code, r.room_code, r.point_code],
)


async def list_latest(
    session: AsyncSession,
    key: ServerKey,
    principal: Principal,
    filters: LatestFilters,
    *,
    limit: int,
    cursor: str | None,
    with_total: bool,
    tz_name: str,
) -> dict[str, Any]:
    """Every point in scope with its latest sample and state, ordered by (platform, room, point).

    A point whose samples have all passed retention is listed with ``ts``, ``value`` and
    ``state`` null.
    """
    point_types = enum_filter(filters.point_type, "point_type", get_args(PointType))
    scope = await scope_condition(
        session,
        principal,
        EnvironmentPoint.platform_code,
        platform_code=filters.platform_code,
        region_code=filters.region_code,
    )
    columns: list[Any] = [
        EnvironmentPoint.platform_code,
        EnvironmentPoint.room_code,
        EnvironmentPoint.point_code,
        *_POINT_COLUMNS,
        EnvironmentSample.ts,
        EnvironmentSample.value,
        EnvironmentSample.state,
        EnvironmentSample.evaluated_at,
    ]
    stmt = (
        select(*columns)
        .select_from(EnvironmentPoint)
        .outerjoin(
            EnvironmentSample,
            and_(
                EnvironmentSample.platform_code == EnvironmentPoint.platform_code,
                EnvironmentSample.room_code == EnvironmentPoint.room_code,
                EnvironmentSample.point_code == EnvironmentPoint.point_code,
                EnvironmentSample.ts == EnvironmentPoint.last_ts,
            ),
        )
        .where(scope)
    )
    if filters.room_code is not None:
        stmt = stmt.where(EnvironmentPoint.room_code == filters.room_code)
    if point_types is not None:
        stmt = stmt.where(EnvironmentPoint.point_type.in_(point_types))
    rows, next_cursor, total = await keyset_page(
        session,
        stmt,
        LATEST_KEYSET,
        server_key=key,
        filters=asdict(filters),
        limit=limit,
        cursor=cursor,
        with_total=with_total,
        scalars=False,
    )
    page: dict[str, Any] = {"items": [_point_out(row, tz_name) for row in rows], "next_cursor": next_cursor}
    if with_total:
        page["total"] = total
    return page


@dataclass(frozen=True)
class PointSeriesQuery:
    platform_code: str
    room_code: str
    point_code: str
    from_: str | None = None
    to: str | None = None
    step: str = "auto"
    agg: str = "avg"


async def point_series(
    session: AsyncSession,
    principal: Principal,
    query: PointSeriesQuery,
    *,
    tz_name: str,
    now: datetime | None = None,
    raw_retention_days: int = 30,
    source: BucketSource[PointKey] | None = None,
) -> dict[str, Any]:
    """One point's samples in buckets (rollups where built, else raw); ``raw`` points carry their state."""
    start, end = resolved_window(
        query.from_, query.to, now=now or datetime.now(UTC), default_span=DEFAULT_SPAN
    )
    scope = await scope_condition(
        session, principal, EnvironmentPoint.platform_code, platform_code=query.platform_code
    )
    point = (
        await session.execute(
            select(EnvironmentPoint).where(
                scope,
                EnvironmentPoint.platform_code == query.platform_code,
                EnvironmentPoint.room_code == query.room_code,
                EnvironmentPoint.point_code == query.point_code,
            )
        )
    ).scalar_one_or_none()
    if point is None:
        raise NotFound(f"测点 {query.room_code}/{query.point_code} 不存在 (no such environment point)")
    tz = ZoneInfo(tz_name)
    step = resolve_step(query.step, start, end, tz)
    key = (point.room_code, point.point_code)
    if source is None:
        source = rollup_source(
            ENVIRONMENT,
            raw_environment_buckets,
            wrap=lambda k: (k[0], k[1]),
            unwrap=lambda k: (k[0], k[1]),
            raw_retention_days=raw_retention_days,
            now=now,
        )
    buckets = source(session, point.platform_code, [key], step, start, end)
    points = (await collect_points(buckets, step, query.agg, with_state=True)).get(key, [])
    return {
        "platform_code": point.platform_code,
        "room_code": point.room_code,
        "point_code": point.point_code,
        **{name: getattr(point, name) for name in POINT_FIELDS},
        "from": echo_time(start, tz_name),
        "to": echo_time(end, tz_name),
        "step": step.name,
        "agg": query.agg,
        "points": points,
    }
