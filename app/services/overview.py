"""The dashboard in one call (§5 ``/overview``): per region, what a regulator looks at first.

Over the active platforms in the caller's scope (narrowed by ``region_code``): each platform with
the status of every indicator this month and its stale feeds; asset counts by type and CPU
architecture (non-retired); the region's pooled domestic substitution rate; active alarms and
warnings by level; every stale feed. Counts are SQL aggregates; the indicators are computed per
platform (this month so far) and once pooled for the domestic rate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Alarm, Asset, Platform, WarningEvent
from app.schemas.types import normalise_region
from app.security.principal import Principal
from app.services.feeds import platform_feeds
from app.services.indicators import compute_indicators, month_window
from app.services.query import echo_time, scope_condition

LEVELS = ("1", "2", "3", "4")


async def _by_level(session: AsyncSession, table: Any, codes: list[str]) -> dict[str, Any]:
    counts = dict.fromkeys(LEVELS, 0)
    if codes:
        rows = await session.execute(
            select(table.level, func.count())
            .where(table.platform_code.in_(codes), table.status == "active")
            .group_by(table.level)
        )
        for level, count in rows.all():
            counts[str(level)] = counts.get(str(level), 0) + int(count)
    return {"total": sum(counts.values()), "by_level": counts}


async def _assets(session: AsyncSession, codes: list[str]) -> dict[str, Any]:
    by_type: dict[str, int] = {}
    by_arch: dict[str, int] = {}
    if codes:
        live = [Asset.platform_code.in_(codes), Asset.lifecycle != "retired"]
        rows = await session.execute(
            select(Asset.asset_type, func.count()).where(*live).group_by(Asset.asset_type)
        )
        by_type = {str(t): int(n) for t, n in sorted(rows.all())}
        rows = await session.execute(
            select(Asset.cpu_arch, func.count())
            .where(*live, Asset.cpu_arch.is_not(None))
            .group_by(Asset.cpu_arch)
        )
        by_arch = {str(a): int(n) for a, n in sorted(rows.all())}
    return {"total": sum(by_type.values()), "by_type": by_type, "by_arch": by_arch}


async def overview(
    session: AsyncSession,
    principal: Principal,
    *,
    region_code: str | None,
    now: datetime,
    reporting_tz: str,
    raw_retention_days: int = 30,
) -> dict[str, Any]:
    """The overview of ``region_code`` (or of the caller's whole scope) at ``now``."""
    scope = await scope_condition(session, principal, Platform.platform_code, region_code=region_code)
    rows = await session.execute(
        select(Platform).where(scope, Platform.status == "active").order_by(Platform.platform_code)
    )
    platforms = list(rows.scalars())
    codes = [p.platform_code for p in platforms]
    window = month_window(None, ZoneInfo(reporting_tz), now)
    feeds = await platform_feeds(session, platforms)
    stale = [f for f in feeds if f.is_stale(now)]
    prefix = normalise_region(region_code) if region_code is not None else None

    platform_items = []
    items: list[dict[str, Any]] = []
    for platform in platforms:
        items = await compute_indicators(
            session, [platform], window, now=now, raw_retention_days=raw_retention_days
        )
        platform_items.append(
            {
                "platform_code": platform.platform_code,
                "name": platform.name,
                "region_code": platform.region_code,
                "statuses": {item["code"]: item["status"] for item in items},
                "stale_kinds": [f.kind for f in stale if f.platform_code == platform.platform_code],
            }
        )
    domestic: dict[str, Any] | None = None
    if platforms:
        pooled = items  # one platform and no region: its own figures are the pooled ones
        if len(platforms) > 1 or prefix is not None:
            pooled = await compute_indicators(
                session, platforms, window, now=now, region_code=prefix, raw_retention_days=raw_retention_days
            )
        domestic = next((item for item in pooled if item["code"] == "domestic_rate"), None)
    return {
        "region_code": prefix,
        "period": window.period,
        "from": echo_time(window.start, reporting_tz),
        "to": echo_time(window.end, reporting_tz),
        "platforms": platform_items,
        "assets": await _assets(session, codes),
        "domestic_rate": domestic,
        "alarms_active": await _by_level(session, Alarm, codes),
        "warnings_active": await _by_level(session, WarningEvent, codes),
        "stale_feeds": [f.out(now) for f in stale],
    }
