"""Closed periods (§7.9): frozen indicator snapshots of past months, and explicit recomputes.

A month (``YYYY-MM`` in the reporting time zone) closes ``grace_days`` after it ends (policy
``periods``, default 5). The hourly job then stores version 1 of its indicators for every platform
(scope ``platform``) and for every region prefix among those platforms (scope ``region``: the 2-,
4- and 6-digit normalised prefixes, e.g. ``44``, ``4401``, ``440106``). A stored version never
changes; ``recompute`` adds version *n* + 1 computed from the data stored now, and readers take
the newest version.

Which months: the job looks back :data:`HISTORY_MONTHS` closed months (so a new hub, or one that
was down, catches up on the last year and a month) and freezes those that have no snapshot yet;
older months are only ever frozen by an explicit recompute. Which platforms: the active ones,
and a decommissioned one while its decommissioning (its ``updated_at``) falls after the month's
start — it reported during that month.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import get_settings
from app.db import write_session
from app.errors import BadParameter, NotFound
from app.models import IndicatorPolicy, IndicatorSnapshot, Platform
from app.repositories.bulk import lock_platform
from app.schemas.types import normalise_region
from app.services.indicators import Window, compute_indicators, month_window

log = logging.getLogger(__name__)

DEFAULT_GRACE_DAYS = 5
#: closed months the job looks back over
HISTORY_MONTHS = 13
SCOPES = ("platform", "region")


def region_prefixes(prefix: str) -> list[str]:
    """``440106`` → ``["44", "4401", "440106"]``; ``4401`` → ``["44", "4401"]``."""
    return [prefix[:n] for n in (2, 4, 6) if len(prefix) >= n]


def _shift_month(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def period_of(moment: datetime, tz: ZoneInfo) -> str:
    """The ``YYYY-MM`` that ``moment`` falls in, in the reporting time zone."""
    local = moment.astimezone(tz)
    return f"{local.year:04d}-{local.month:02d}"


def previous_periods(now: datetime, tz: ZoneInfo, count: int) -> list[str]:
    """The ``count`` months before the one ``now`` is in, newest first."""
    local = now.astimezone(tz)
    out = []
    for back in range(1, count + 1):
        year, month = _shift_month(local.year, local.month, -back)
        out.append(f"{year:04d}-{month:02d}")
    return out


async def grace_days(session: AsyncSession) -> float:
    """``params.grace_days`` of the ``periods`` policy (default 5)."""
    policy = await session.get(IndicatorPolicy, "periods")
    value = (policy.params or {}).get("grace_days") if policy is not None else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return float(DEFAULT_GRACE_DAYS)


def _frozen_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items as plain JSON (times as RFC 3339 strings, as the live answer shows them), so a
    stored figure reads back exactly as it was answered."""
    encoded = orjson.dumps(items, option=orjson.OPT_NON_STR_KEYS, default=str)
    frozen: list[dict[str, Any]] = orjson.loads(encoded)
    return frozen


def eligible(platform: Platform, window: Window) -> bool:
    """Whether a platform is pooled into ``window``'s frozen figures (it reported in that month)."""
    if platform.status == "active":
        return True
    return platform.updated_at >= window.start


async def _lock(session: AsyncSession, scope: str, scope_code: str, period: str) -> None:
    await lock_platform(session, f"{scope}:{scope_code}:{period}", "indicator_snapshot")


async def _store(
    session: AsyncSession,
    *,
    scope: str,
    scope_code: str,
    window: Window,
    version: int,
    items: list[dict[str, Any]],
    now: datetime,
    reason: str,
    requested_by: str | None = None,
    note: str | None = None,
) -> IndicatorSnapshot:
    assert window.period is not None
    snapshot = IndicatorSnapshot(
        scope=scope,
        scope_code=scope_code,
        period=window.period,
        version=version,
        frozen_at=now,
        from_ts=window.start,
        to_ts=window.end,
        items=_frozen_items(items),
        reason=reason,
        requested_by=requested_by,
        note=note,
    )
    session.add(snapshot)
    await session.flush()
    return snapshot


async def due_periods(session: AsyncSession, *, now: datetime, tz: ZoneInfo) -> list[Window]:
    """The months of the look-back that have closed (ended ``grace_days`` ago), oldest first."""
    grace = timedelta(days=await grace_days(session))
    windows = [month_window(p, tz, now) for p in previous_periods(now, tz, HISTORY_MONTHS)]
    return sorted((w for w in windows if w.end + grace <= now), key=lambda w: w.start)


async def pending_snapshots(
    session: AsyncSession, *, now: datetime, tz: ZoneInfo
) -> list[tuple[Window, str, str, list[Platform]]]:
    """(month, scope, scope code, its platforms) of every closed month not frozen yet."""
    windows = await due_periods(session, now=now, tz=tz)
    if not windows:
        return []
    platforms = list((await session.execute(select(Platform).order_by(Platform.platform_code))).scalars())
    periods = [w.period for w in windows]
    frozen = set(
        (
            await session.execute(
                select(IndicatorSnapshot.scope, IndicatorSnapshot.scope_code, IndicatorSnapshot.period)
                .where(IndicatorSnapshot.period.in_(periods))
                .distinct()
            )
        ).all()
    )
    pending: list[tuple[Window, str, str, list[Platform]]] = []
    for window in windows:
        assert window.period is not None
        members = [p for p in platforms if eligible(p, window)]
        for platform in members:
            if ("platform", platform.platform_code, window.period) not in frozen:
                pending.append((window, "platform", platform.platform_code, [platform]))
        prefixes = sorted({r for p in members for r in region_prefixes(p.region_prefix)})
        for prefix in prefixes:
            if ("region", prefix, window.period) not in frozen:
                inside = [p for p in members if p.region_prefix.startswith(prefix)]
                pending.append((window, "region", prefix, inside))
    return pending


async def freeze_closed_periods(
    session: AsyncSession, *, now: datetime, reporting_tz: str | None = None, raw_retention_days: int = 30
) -> int:
    """The §7.9 job: store version 1 of every closed month not frozen yet; the number stored.

    Everything happens in ``session`` (the caller commits). Two jobs running at once store each
    snapshot once: each is written under a lock on its key, after checking it is still missing.
    """
    tz = ZoneInfo(reporting_tz or get_settings().reporting_tz)
    stored = 0
    for window, scope, scope_code, platforms in await pending_snapshots(session, now=now, tz=tz):
        assert window.period is not None
        await _lock(session, scope, scope_code, window.period)
        if await closed_snapshot(session, scope, scope_code, window.period) is not None:
            continue
        items = await compute_indicators(
            session,
            platforms,
            window,
            now=now,
            region_code=scope_code if scope == "region" else None,
            raw_retention_days=raw_retention_days,
        )
        await _store(
            session,
            scope=scope,
            scope_code=scope_code,
            window=window,
            version=1,
            items=items,
            now=now,
            reason="grace",
        )
        stored += 1
    if stored:
        log.info("closed periods: %d indicator snapshots frozen", stored)
    return stored


async def run_freeze_job(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    now: datetime,
    reporting_tz: str,
    raw_retention_days: int = 30,
) -> int:
    """The scheduled form: a cheap read first; a write transaction only when a month is due."""
    tz = ZoneInfo(reporting_tz)
    async with sessionmaker() as session:
        if not await pending_snapshots(session, now=now, tz=tz):
            return 0
    async with write_session(sessionmaker) as session:
        return await freeze_closed_periods(
            session, now=now, reporting_tz=reporting_tz, raw_retention_days=raw_retention_days
        )


async def closed_snapshot(
    session: AsyncSession, scope: str, scope_code: str, period: str
) -> IndicatorSnapshot | None:
    """The newest version of the frozen indicators of ``period`` for a platform or a region."""
    if scope == "region":
        scope_code = normalise_region(scope_code)
    row = await session.execute(
        select(IndicatorSnapshot)
        .where(
            IndicatorSnapshot.scope == scope,
            IndicatorSnapshot.scope_code == scope_code,
            IndicatorSnapshot.period == period,
        )
        .order_by(IndicatorSnapshot.version.desc())
        .limit(1)
    )
    return row.scalar_one_or_none()


def snapshot_out(snapshot: IndicatorSnapshot) -> dict[str, Any]:
    return {
        "scope": snapshot.scope,
        "scope_code": snapshot.scope_code,
        "period": snapshot.period,
        "version": snapshot.version,
        "frozen_at": snapshot.frozen_at,
        "from": snapshot.from_ts,
        "to": snapshot.to_ts,
        "reason": snapshot.reason,
        "requested_by": snapshot.requested_by,
        "note": snapshot.note,
        "items": snapshot.items,
    }


async def recompute(
    session: AsyncSession,
    *,
    period: str,
    platform_code: str | None,
    region_code: str | None,
    note: str | None,
    requested_by: str,
    now: datetime,
    reporting_tz: str,
    raw_retention_days: int = 30,
) -> IndicatorSnapshot:
    """A new version (newest + 1) of a closed month's indicators, from the data stored now."""
    tz = ZoneInfo(reporting_tz)
    window = month_window(period, tz, now)
    if window.end > now:
        raise BadParameter(f"统计周期 {period} 尚未结束，不能重新计算 (period {period} has not ended yet)")
    platforms: Sequence[Platform]
    if platform_code is not None:
        platform = await session.get(Platform, platform_code)
        if platform is None:
            raise NotFound(f"云平台 {platform_code} 不存在 (no such platform)")
        scope, scope_code, platforms = "platform", platform_code, [platform]
    else:
        assert region_code is not None
        scope_code = normalise_region(region_code)
        rows = await session.execute(
            select(Platform)
            .where(Platform.region_prefix.startswith(scope_code))
            .order_by(Platform.platform_code)
        )
        platforms = [p for p in rows.scalars() if eligible(p, window)]
        if not platforms:
            raise NotFound(f"区域 {region_code} 内没有云平台 (no platform in region {region_code})")
        scope = "region"
    await _lock(session, scope, scope_code, period)
    newest = await session.execute(
        select(func.max(IndicatorSnapshot.version)).where(
            IndicatorSnapshot.scope == scope,
            IndicatorSnapshot.scope_code == scope_code,
            IndicatorSnapshot.period == period,
        )
    )
    version = (newest.scalar_one_or_none() or 0) + 1
    items = await compute_indicators(
        session,
        platforms,
        window,
        now=now,
        region_code=scope_code if scope == "region" else None,
        raw_retention_days=raw_retention_days,
    )
    return await _store(
        session,
        scope=scope,
        scope_code=scope_code,
        window=window,
        version=version,
        items=items,
        now=now,
        reason="recompute",
        requested_by=requested_by,
        note=note,
    )
