"""What every northbound list shares (§1, §2.2, §5): scope and explicit filters in SQL, time
ranges, keyset pages with cursors bound to their filters, and ``with_total``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, false, func, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadParameter, Forbidden, NotFound
from app.models import Platform
from app.schemas.types import normalise_region, parse_rfc3339
from app.security.keys import ServerKey
from app.security.principal import Principal
from app.services.cursor import decode_cursor, encode_cursor

_REGION = re.compile(r"^[1-9]\d(\d\d){0,2}$")


async def scope_condition(
    session: AsyncSession,
    principal: Principal,
    platform_column: Any,
    *,
    platform_code: str | None = None,
    region_code: str | None = None,
) -> ColumnElement[bool]:
    """The caller's scope on ``platform_column``, narrowed by explicit filters.

    An explicit ``platform_code`` or ``region_code`` outside the caller's scope is 403 ``2006``
    (an admin naming an unregistered platform gets 404 ``3002``); everything else is filtered
    silently, in the SQL of the query.
    """
    if platform_code is not None:
        platform = await session.get(Platform, platform_code)
        if platform is None or not principal.platform_in_scope(platform_code, platform.region_code):
            if principal.is_admin:
                raise NotFound(f"云平台 {platform_code} 不存在 (no such platform)")
            raise Forbidden(f"云平台 {platform_code} 超出授权范围 (platform outside your scope)")
    prefix: str | None = None
    if region_code is not None:
        if not _REGION.match(region_code):
            raise BadParameter(
                f"region_code 应为 2、4 或 6 位行政区划代码，收到 {region_code!r} "
                "(region_code must be 2, 4 or 6 digits)"
            )
        prefix = normalise_region(region_code)
        covered = principal.is_admin or any(prefix.startswith(r) for r in principal.regions)
        if not covered and principal.platforms:
            # a provider or integrator may narrow to a region holding one of its own platforms
            own_inside = await session.execute(
                select(Platform.platform_code)
                .where(
                    Platform.platform_code.in_(sorted(principal.platforms)),
                    Platform.region_prefix.startswith(prefix),
                )
                .limit(1)
            )
            covered = own_inside.first() is not None
        if not covered:
            raise Forbidden(f"区域 {region_code} 超出授权范围 (region {region_code} is outside your scope)")
    if platform_code is not None:
        assert platform is not None
        if prefix is not None and not platform.region_prefix.startswith(prefix):
            return false()  # a platform outside the region named with it: nothing
        named: ColumnElement[bool] = platform_column == platform_code
        return named
    if principal.is_admin and prefix is None:
        return true()
    # the platforms in scope, resolved to their codes first: the list's query then reads its
    # platform index with ``= ANY(…)`` instead of joining a sub-select (a merge join over the
    # primary key of millions of assets before it reaches the region's first platform)
    visible = select(Platform.platform_code).where(principal.platform_condition(Platform.platform_code))
    if prefix is not None:
        visible = visible.where(Platform.region_prefix.startswith(prefix))
    codes = sorted((await session.execute(visible)).scalars())
    if not codes:
        return false()
    return platform_column.in_(codes)  # type: ignore[no-any-return]


def enum_filter(value: str | None, name: str, allowed: Sequence[str]) -> list[str] | None:
    """A filter of one or more comma-separated enumeration codes; an unknown code is 400 ``1001``."""
    if value is None:
        return None
    codes = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [c for c in codes if c not in allowed]
    if unknown or not codes:
        raise BadParameter(
            f"{name} 取值无效 {unknown or value!r}，允许值 {', '.join(allowed)} (unknown {name})"
        )
    return codes


def parse_time(value: str | None, name: str) -> datetime | None:
    """An RFC 3339 query parameter with offset, or 400 ``1001`` saying what is wrong."""
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise BadParameter(f"{name}: {exc}") from None


def time_window(
    from_: str | None, to: str | None, *, now: datetime, default_span: timedelta | None
) -> tuple[datetime | None, datetime | None]:
    """``[from, to)``: given bounds, or the default span ending now; ``from < to``."""
    start, end = parse_time(from_, "from"), parse_time(to, "to")
    if default_span is not None:
        if end is None:
            end = now
        if start is None:
            start = end - default_span
    if start is not None and end is not None and start >= end:
        raise BadParameter("from 必须早于 to (from must be before to)")
    return start, end


def echo_time(value: datetime | None, tz_name: str) -> str | None:
    """A resolved time echoed with the reporting time zone's offset (§2)."""
    if value is None:
        return None
    return value.astimezone(ZoneInfo(tz_name)).isoformat()


@dataclass
class Keyset:
    """A list's fixed order and its cursor: the columns, their direction, and how to read a row."""

    resource: str
    columns: Sequence[Any]
    key_of: Callable[[Any], list[Any]]
    decode: Callable[[list[Any]], tuple[Any, ...]] = tuple
    descending: bool = False

    def order_by(self) -> list[Any]:
        return [c.desc() for c in self.columns] if self.descending else list(self.columns)


async def keyset_page(
    session: AsyncSession,
    stmt: Select[Any],
    keyset: Keyset,
    *,
    server_key: ServerKey,
    filters: dict[str, Any],
    limit: int,
    cursor: str | None,
    with_total: bool = False,
    scalars: bool = True,
) -> tuple[list[Any], str | None, int | None]:
    """One page of ``stmt`` in the keyset's order: rows, the next cursor (or None), the total."""
    total = None
    if with_total:
        total = int(
            (
                await session.execute(select(func.count()).select_from(stmt.order_by(None).subquery()))
            ).scalar_one()
        )
    if cursor:
        raw = decode_cursor(server_key, keyset.resource, filters, cursor)
        if len(raw) != len(keyset.columns):
            raise BadParameter("游标无效 (invalid cursor)")
        try:
            last = keyset.decode(raw)
        except (TypeError, ValueError):
            raise BadParameter("游标无效 (invalid cursor)") from None
        position = tuple_(*keyset.columns)
        stmt = stmt.where(position < tuple_(*last) if keyset.descending else position > tuple_(*last))
    result = await session.execute(stmt.order_by(*keyset.order_by()).limit(limit + 1))
    rows = list(result.scalars() if scalars else result.all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor(server_key, keyset.resource, filters, _jsonable(keyset.key_of(rows[-1])))
        if more
        else None
    )
    return rows, next_cursor, total


def _jsonable(values: list[Any]) -> list[Any]:
    return [v.isoformat() if isinstance(v, datetime) else v for v in values]


def decode_times(*positions: int) -> Callable[[list[Any]], tuple[Any, ...]]:
    """A cursor decoder turning the values at ``positions`` back into datetimes."""

    def decode(raw: list[Any]) -> tuple[Any, ...]:
        values = list(raw)
        for position in positions:
            values[position] = datetime.fromisoformat(str(values[position]))
        return tuple(values)

    return decode
