"""The platform registry (§10) and its northbound reading with data freshness (§5, §7.7)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import AppError, NotFound
from app.models import BatchReceipt, IndicatorPolicy, Platform
from app.schemas.common import PlatformCreate, PlatformOut, PlatformUpdate
from app.schemas.types import normalise_region
from app.security.keys import ServerKey
from app.security.principal import Principal
from app.services.query import Keyset, enum_filter, keyset_page, scope_condition

#: §7.7 expected intervals (s) per kind when the ``freshness`` policy row says nothing; a
#: platform's ``expected_intervals`` overrides them
DEFAULT_EXPECTED_INTERVALS: dict[str, int] = {
    "assets": 86_400,
    "logs": 3_600,
    "metrics": 300,
    "environment": 300,
    "alarms": 300,
}
FRESHNESS_KINDS: tuple[str, ...] = tuple(DEFAULT_EXPECTED_INTERVALS)
#: a feed is stale once its newest data is older than this many expected intervals (§7.7)
STALE_AFTER_INTERVALS = 2
#: batches whose records were (at least partly) stored: a rejected batch brought no data
_STORED_STATUSES = ("accepted", "partial")

PLATFORM_KEYSET = Keyset("platforms", (Platform.platform_code,), lambda p: [p.platform_code])


class PlatformExists(AppError):
    code, status_code, default_message = "1001", 409, "云平台编码已存在 (platform already exists)"


async def create_platform(session: AsyncSession, spec: PlatformCreate) -> Platform:
    if await session.get(Platform, spec.platform_code) is not None:
        raise PlatformExists(f"云平台 {spec.platform_code} 已存在 (platform already exists)")
    now = datetime.now(UTC)
    platform = Platform(
        **spec.model_dump(),
        region_prefix=normalise_region(spec.region_code),
        status="active",
        created_at=now,
        updated_at=now,
    )
    session.add(platform)
    await session.flush()
    return platform


#: the administrative list's order (§10): by ``platform_code``; its own cursor resource
ADMIN_PLATFORM_KEYSET = Keyset("admin_platforms", (Platform.platform_code,), lambda p: [p.platform_code])
PLATFORM_STATUSES = ("active", "decommissioned")


async def list_platforms(
    session: AsyncSession,
    key: ServerKey,
    principal: Principal,
    *,
    region_code: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
    with_total: bool = False,
) -> dict[str, Any]:
    """Registered platforms (decommissioned ones too), by ``platform_code``, keyset-paged."""
    scope = await scope_condition(session, principal, Platform.platform_code, region_code=region_code)
    stmt = select(Platform).where(scope)
    statuses = enum_filter(status, "status", PLATFORM_STATUSES)
    if statuses is not None:
        stmt = stmt.where(Platform.status.in_(statuses))
    rows, next_cursor, total = await keyset_page(
        session,
        stmt,
        ADMIN_PLATFORM_KEYSET,
        server_key=key,
        filters={"region_code": region_code, "status": statuses},
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    page: dict[str, Any] = {
        "items": [PlatformOut.model_validate(p).model_dump(mode="json") for p in rows],
        "next_cursor": next_cursor,
    }
    if with_total:
        page["total"] = total
    return page


async def get_platform(session: AsyncSession, code: str, principal: Principal) -> Platform:
    row = await session.execute(
        select(Platform).where(
            Platform.platform_code == code, principal.platform_condition(Platform.platform_code)
        )
    )
    platform = row.scalar_one_or_none()
    if platform is None:
        raise NotFound(f"云平台 {code} 不存在 (no such platform)")
    return platform


async def update_platform(session: AsyncSession, platform: Platform, change: PlatformUpdate) -> Platform:
    given: dict[str, Any] = change.model_dump(exclude_unset=True)
    for name, value in given.items():
        if value is None and name in {
            "name",
            "region_code",
            "network_zone",
            "level",
            "status",
            "virtualization",
            "availability_target",
            "storage_bw_target_gbps",
            "expected_intervals",
        }:
            continue
        setattr(platform, name, value)
    platform.region_prefix = normalise_region(platform.region_code)
    platform.updated_at = datetime.now(UTC)
    await session.flush()
    return platform


# --- northbound reading (§5) ------------------------------------------------------------------


@dataclass(frozen=True)
class FreshnessPolicy:
    """§7.7 as the deployment set it (``indicator_policy`` row ``freshness``): expected intervals
    per kind and how many of them make a feed stale. One rule for ``/platforms``, the freshness
    indicator, the ``feed_stale`` warnings and the overview."""

    stale_after_intervals: float = float(STALE_AFTER_INTERVALS)
    default_intervals_s: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_EXPECTED_INTERVALS))

    def interval_s(self, platform: Platform, kind: str) -> int:
        """The platform's expected interval for ``kind`` (s), else the deployment's default."""
        configured = (platform.expected_intervals or {}).get(kind)
        if isinstance(configured, int) and not isinstance(configured, bool) and configured > 0:
            return configured
        return self.default_intervals_s.get(kind, DEFAULT_EXPECTED_INTERVALS.get(kind, 300))


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


async def freshness_policy(session: AsyncSession) -> FreshnessPolicy:
    """The ``freshness`` policy row; the §7.7 defaults where it says nothing usable."""
    policy = await session.get(IndicatorPolicy, "freshness")
    params: dict[str, Any] = dict(policy.params) if policy is not None else {}
    defaults = dict(DEFAULT_EXPECTED_INTERVALS)
    configured = params.get("default_intervals_s")
    if isinstance(configured, dict):
        defaults.update({str(k): int(v) for k, v in configured.items() if _positive(v)})
    factor = params.get("stale_after_intervals")
    stale_after = float(factor) if isinstance(factor, int | float) and _positive(factor) else None
    return FreshnessPolicy(stale_after or float(STALE_AFTER_INTERVALS), defaults)


async def latest_receipts(
    session: AsyncSession, platform_codes: Sequence[str]
) -> dict[tuple[str, str], datetime]:
    """The newest hub receive time per (platform, kind), for all ``platform_codes`` in one query."""
    if not platform_codes:
        return {}
    rows = await session.execute(
        select(BatchReceipt.platform_code, BatchReceipt.kind, func.max(BatchReceipt.received_at))
        .where(
            BatchReceipt.platform_code.in_(sorted(set(platform_codes))),
            BatchReceipt.kind.in_(FRESHNESS_KINDS),
            BatchReceipt.status.in_(_STORED_STATUSES),
        )
        .group_by(BatchReceipt.platform_code, BatchReceipt.kind)
    )
    return {(code, kind): latest for code, kind, latest in rows if latest is not None}


def freshness_of(
    platform: Platform, latest: dict[tuple[str, str], datetime], now: datetime, policy: FreshnessPolicy
) -> dict[str, dict[str, Any]]:
    """Per kind: newest receive time, expected interval, and ``stale`` (none, or too many intervals old)."""
    out: dict[str, dict[str, Any]] = {}
    for kind in FRESHNESS_KINDS:
        interval = policy.interval_s(platform, kind)
        received = latest.get((platform.platform_code, kind))
        stale = received is None or now - received > timedelta(
            seconds=policy.stale_after_intervals * interval
        )
        out[kind] = {"latest_received_at": received, "expected_interval_s": interval, "stale": stale}
    return out


def platform_out(platform: Platform, freshness: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A platform as the northbound registry shows it: its registry fields and ``freshness``."""
    out = PlatformOut.model_validate(platform).model_dump()
    out["freshness"] = freshness
    return out


async def list_platforms_page(
    session: AsyncSession,
    key: ServerKey,
    principal: Principal,
    *,
    region_code: str | None,
    limit: int,
    cursor: str | None,
    with_total: bool = False,
) -> dict[str, Any]:
    """Platforms in scope ordered by ``platform_code``, each with its freshness (two queries a page)."""
    scope = await scope_condition(session, principal, Platform.platform_code, region_code=region_code)
    rows, next_cursor, total = await keyset_page(
        session,
        select(Platform).where(scope),
        PLATFORM_KEYSET,
        server_key=key,
        filters={"region_code": region_code},
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    latest = await latest_receipts(session, [p.platform_code for p in rows])
    now = datetime.now(UTC)
    policy = await freshness_policy(session)
    page: dict[str, Any] = {
        "items": [platform_out(p, freshness_of(p, latest, now, policy)) for p in rows],
        "next_cursor": next_cursor,
    }
    if with_total:
        page["total"] = total
    return page


async def read_platform(session: AsyncSession, principal: Principal, code: str) -> dict[str, Any]:
    """One platform in scope with its freshness; out of scope is the same 404 as absent."""
    platform = await get_platform(session, code, principal)
    latest = await latest_receipts(session, [platform.platform_code])
    policy = await freshness_policy(session)
    return platform_out(platform, freshness_of(platform, latest, datetime.now(UTC), policy))
