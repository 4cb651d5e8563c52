"""The answer of ``GET /api/v1/indicators``: scope, period, and live or frozen figures."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import BadParameter
from app.models import IndicatorSnapshot, Platform
from app.schemas.types import normalise_region
from app.security.principal import Principal
from app.services.indicators.engine import Window, compute_indicators, month_window
from app.services.query import echo_time, parse_time, scope_condition

#: a month of the years 1970–2100 (§14: a period beyond them is 400, not a 500 in date arithmetic)
_PERIOD = re.compile(r"^(19[7-9]\d|20\d\d|2100)-(0[1-9]|1[0-2])$")


async def platforms_in_scope(
    session: AsyncSession, principal: Principal, *, platform_code: str | None, region_code: str | None
) -> list[Platform]:
    """The platforms a figure is about: the one named, or the active ones of the region / scope."""
    condition = await scope_condition(
        session, principal, Platform.platform_code, platform_code=platform_code, region_code=region_code
    )
    stmt = select(Platform).where(condition).order_by(Platform.platform_code)
    if platform_code is None:
        stmt = stmt.where(Platform.status == "active")
    return list((await session.execute(stmt)).scalars())


def resolve_window(
    settings: Settings, *, period: str | None, from_: str | None, to: str | None, now: datetime
) -> Window:
    if period is not None and (from_ is not None or to is not None):
        raise BadParameter("period 与 from/to 只能给出其一 (give period or from/to, not both)")
    if from_ is not None or to is not None:
        if from_ is None or to is None:
            raise BadParameter("from 与 to 须同时给出 (give both from and to)")
        start, end = parse_time(from_, "from"), parse_time(to, "to")
        if start is None or end is None or end <= start:
            raise BadParameter("to 须晚于 from (to must be after from)")
        return Window(start, end)
    if period is not None and not _PERIOD.match(period):
        raise BadParameter(
            f"period 应为 1970–2100 年间的 YYYY-MM，收到 {period!r} (period must be YYYY-MM within 1970–2100)"
        )
    return month_window(period, ZoneInfo(settings.reporting_tz), now)


async def _frozen_for(
    session: AsyncSession,
    principal: Principal,
    platforms: list[Platform],
    window: Window,
    platform_code: str | None,
    region_code: str | None,
) -> IndicatorSnapshot | None:
    """The frozen snapshot this caller may be answered for a closed month, or ``None`` (live).

    §7.9: a region's pooled snapshot (and its components, which name every platform) only to a
    caller whose scope holds every platform it pooled; a platform-bound caller gets the pooled
    figures of its own platforms in the region — for one platform, that platform's own snapshot
    (the same figures the region pool of that one platform gives); for several that are not the
    whole region, no snapshot pools exactly them, so they are computed from the data now stored.
    """
    from app.services.periods import closed_snapshot, eligible

    assert window.period is not None
    if platform_code is not None:
        return await closed_snapshot(session, "platform", platform_code, window.period)
    prefix = normalise_region(region_code or "")
    if principal.is_admin or any(prefix.startswith(r) for r in principal.regions):
        return await closed_snapshot(session, "region", prefix, window.period)
    own = {p.platform_code for p in platforms}
    if len(own) == 1:
        return await closed_snapshot(session, "platform", next(iter(own)), window.period)
    if not own:
        return None
    rows = await session.execute(select(Platform).where(Platform.region_prefix.startswith(prefix)))
    members = {p.platform_code for p in rows.scalars() if eligible(p, window)}
    if members != own:
        return None
    snapshot = await closed_snapshot(session, "region", prefix, window.period)
    if snapshot is None or not _codes_in(snapshot.items) <= own:
        return None  # it pooled a platform since moved or gone: not this caller's to see
    return snapshot


def _codes_in(value: Any) -> set[str]:
    """Every ``platform_code`` named anywhere in frozen items (components, series)."""
    if isinstance(value, dict):
        found = {str(value["platform_code"])} if value.get("platform_code") else set()
        return found.union(*(_codes_in(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_codes_in(v) for v in value))
    return set()


async def indicators_answer(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    *,
    platform_code: str | None,
    region_code: str | None,
    period: str | None,
    from_: str | None,
    to: str | None,
) -> dict[str, Any]:
    if platform_code is not None and region_code is not None:
        raise BadParameter("platform_code 与 region_code 只能给出其一 (give platform_code or region_code)")
    now = datetime.now(UTC)
    window = resolve_window(settings, period=period, from_=from_, to=to, now=now)
    platforms = await platforms_in_scope(
        session, principal, platform_code=platform_code, region_code=region_code
    )
    tz = settings.reporting_tz
    answer: dict[str, Any] = {
        "platform_code": platform_code,
        "region_code": region_code,
        "platforms": [p.platform_code for p in platforms],
        "from": echo_time(window.start, tz),
        "to": echo_time(window.end, tz),
        "period": window.period,
        "closed": False,
        "version": None,
        "frozen_at": None,
        "computed_at": echo_time(now, tz),
    }
    if window.period is not None and (platform_code or region_code):
        snapshot = await _frozen_for(session, principal, platforms, window, platform_code, region_code)
        if snapshot is not None:
            answer.update(
                closed=True,
                version=snapshot.version,
                frozen_at=echo_time(snapshot.frozen_at, tz),
                computed_at=echo_time(snapshot.frozen_at, tz),
                items=snapshot.items,
            )
            return answer
    answer["items"] = await compute_indicators(
        session,
        platforms,
        window,
        now=now,
        region_code=region_code,
        raw_retention_days=settings.retention_metrics_days,
    )
    return answer
