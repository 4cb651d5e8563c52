"""Which feeds (platform × kind) are stale (§7.7), as warnings and the overview judge them.

A feed is a kind of data a platform has ever reported (a stored batch); its newest data is the
hub receive time of its newest stored batch. It is stale once that is older than
``stale_after_intervals`` × the expected interval — the platform's ``expected_intervals[kind]``,
else the ``freshness`` policy's ``default_intervals_s``. Kinds that never reported are not judged
(as in the ``freshness`` indicator), so a platform that sends no logs is not warned every minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import IndicatorPolicy, Platform
from app.services.platforms import DEFAULT_EXPECTED_INTERVALS, STALE_AFTER_INTERVALS, latest_receipts


@dataclass(frozen=True)
class FreshnessPolicy:
    stale_after_intervals: float
    default_intervals_s: dict[str, int]

    def interval_s(self, platform: Platform, kind: str) -> int:
        configured = (platform.expected_intervals or {}).get(kind)
        if isinstance(configured, int) and not isinstance(configured, bool) and configured > 0:
            return configured
        return self.default_intervals_s.get(kind, DEFAULT_EXPECTED_INTERVALS.get(kind, 300))


@dataclass(frozen=True)
class Feed:
    """One kind of data of one platform: its newest receive time and when it counts as stale."""

    platform_code: str
    kind: str
    newest_at: datetime
    interval_s: int
    stale_after_s: float

    @property
    def stale_at(self) -> datetime:
        """From this time on the feed is stale (unless newer data arrives)."""
        return self.newest_at + timedelta(seconds=self.stale_after_s)

    def age_s(self, now: datetime) -> float:
        return max(0.0, (now - self.newest_at).total_seconds())

    def is_stale(self, now: datetime) -> bool:
        return now > self.stale_at

    def out(self, now: datetime) -> dict[str, Any]:
        return {
            "platform_code": self.platform_code,
            "kind": self.kind,
            "newest_at": self.newest_at,
            "age_s": round(self.age_s(now), 3),
            "expected_interval_s": self.interval_s,
            "stale_after_s": self.stale_after_s,
        }


async def freshness_policy(session: AsyncSession) -> FreshnessPolicy:
    """The ``freshness`` row of ``indicator_policy``; the §7.7 defaults where it says nothing."""
    policy = await session.get(IndicatorPolicy, "freshness")
    params: dict[str, Any] = dict(policy.params) if policy is not None else {}
    factor = params.get("stale_after_intervals")
    defaults = dict(DEFAULT_EXPECTED_INTERVALS)
    configured = params.get("default_intervals_s")
    if isinstance(configured, dict):
        defaults.update(
            {
                str(k): int(v)
                for k, v in configured.items()
                if isinstance(v, int | float) and not isinstance(v, bool) and v > 0
            }
        )
    stale_after = float(STALE_AFTER_INTERVALS)
    if isinstance(factor, int | float) and not isinstance(factor, bool) and factor > 0:
        stale_after = float(factor)
    return FreshnessPolicy(stale_after, defaults)


async def platform_feeds(
    session: AsyncSession, platforms: Sequence[Platform], *, policy: FreshnessPolicy | None = None
) -> list[Feed]:
    """Every feed of ``platforms`` that ever reported, by platform and kind (one aggregate query)."""
    if not platforms:
        return []
    policy = policy or await freshness_policy(session)
    latest = await latest_receipts(session, [p.platform_code for p in platforms])
    feeds: list[Feed] = []
    for platform in sorted(platforms, key=lambda p: p.platform_code):
        for kind in DEFAULT_EXPECTED_INTERVALS:
            newest = latest.get((platform.platform_code, kind))
            if newest is None:
                continue
            interval = policy.interval_s(platform, kind)
            feeds.append(
                Feed(platform.platform_code, kind, newest, interval, interval * policy.stale_after_intervals)
            )
    return feeds
