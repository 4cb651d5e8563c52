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

from app.models import Platform
from app.services.platforms import (
    FRESHNESS_KINDS,
    FreshnessPolicy,
    freshness_policy,
    latest_receipts,
)


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
        for kind in FRESHNESS_KINDS:
            newest = latest.get((platform.platform_code, kind))
            if newest is None:
                continue
            interval = policy.interval_s(platform, kind)
            feeds.append(
                Feed(platform.platform_code, kind, newest, interval, interval * policy.stale_after_intervals)
            )
    return feeds
