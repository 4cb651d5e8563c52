"""The platform registry (§10)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import AppError, NotFound
from app.models import Platform
from app.schemas.common import PlatformCreate, PlatformUpdate
from app.schemas.types import normalise_region
from app.security.principal import Principal


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


async def list_platforms(session: AsyncSession, principal: Principal) -> list[Platform]:
    rows = await session.execute(
        select(Platform)
        .where(principal.platform_condition(Platform.platform_code))
        .order_by(Platform.platform_code)
    )
    return list(rows.scalars())


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
