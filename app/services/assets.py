"""Reading assets back: the list with its keyset cursor, one asset and its history."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import String, cast, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadParameter, Forbidden, NotFound
from app.models import Asset, AssetChange, Platform
from app.schemas.ingest import AssetRecord
from app.security.keys import ServerKey
from app.security.principal import Principal
from app.services.cursor import decode_cursor, encode_cursor

RECORD_FIELDS = tuple(f for f in AssetRecord.model_fields if f != "is_domestic")


def asset_out(asset: Asset) -> dict[str, Any]:
    out: dict[str, Any] = {"platform_code": asset.platform_code, "asset_uid": str(asset.asset_uid)}
    for name in RECORD_FIELDS:
        value = getattr(asset, name)
        out[name] = value.isoformat() if hasattr(value, "isoformat") and not isinstance(value, str) else value
    out["is_domestic"] = asset.is_domestic
    out["domestic"] = asset.domestic
    out["reporter"] = asset.reporter
    out["created_at"] = asset.created_at
    out["updated_at"] = asset.updated_at
    out["last_seen_at"] = asset.last_seen_at
    return out


async def list_assets(
    session: AsyncSession,
    key: ServerKey,
    principal: Principal,
    *,
    platform_code: str | None,
    include_retired: bool,
    q: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """Assets in scope, ordered by (platform_code, asset_id)."""
    filters = {"platform_code": platform_code, "include_retired": include_retired, "q": q}
    if platform_code is not None:
        platform = await session.get(Platform, platform_code)
        if platform is None or not principal.platform_in_scope(platform_code, platform.region_code):
            if principal.is_admin:
                raise NotFound(f"云平台 {platform_code} 不存在 (no such platform)")
            raise Forbidden(f"云平台 {platform_code} 超出授权范围 (platform outside your scope)")
    stmt = select(Asset).where(principal.platform_condition(Asset.platform_code))
    if platform_code is not None:
        stmt = stmt.where(Asset.platform_code == platform_code)
    if not include_retired:
        stmt = stmt.where(Asset.lifecycle != "retired")
    if q:
        pattern = "%" + _escape_like(q) + "%"
        stmt = stmt.where(
            or_(
                Asset.name.ilike(pattern, escape="\\"),
                cast(Asset.ip_addresses, String).ilike(pattern, escape="\\"),
            )
        )
    if cursor:
        last = decode_cursor(key, "assets", filters, cursor)
        if len(last) != 2:
            raise BadParameter("游标无效 (invalid cursor)")
        stmt = stmt.where(tuple_(Asset.platform_code, Asset.asset_id) > tuple_(*last))
    stmt = stmt.order_by(Asset.platform_code, Asset.asset_id).limit(limit + 1)
    rows = list((await session.execute(stmt)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor(key, "assets", filters, [rows[-1].platform_code, rows[-1].asset_id]) if more else None
    )
    return {"items": [asset_out(a) for a in rows], "next_cursor": next_cursor}


async def get_asset(session: AsyncSession, principal: Principal, uid: str) -> Asset:
    """One asset by ``asset_uid``; out of scope is the same 404 as absent (existence does not leak)."""
    try:
        parsed = uuid.UUID(uid)
    except ValueError:
        raise NotFound(f"资产 {uid} 不存在 (no such asset)") from None
    row = await session.execute(
        select(Asset).where(Asset.asset_uid == parsed, principal.platform_condition(Asset.platform_code))
    )
    asset = row.scalar_one_or_none()
    if asset is None:
        raise NotFound(f"资产 {uid} 不存在 (no such asset)")
    return asset


async def asset_history(session: AsyncSession, asset: Asset) -> list[dict[str, Any]]:
    """Revisions newest first, each with its batch, reporter and old → new per field."""
    rows = await session.execute(
        select(AssetChange)
        .where(AssetChange.platform_code == asset.platform_code, AssetChange.asset_id == asset.asset_id)
        .order_by(AssetChange.revision.desc(), AssetChange.field)
    )
    revisions: dict[int, dict[str, Any]] = {}
    for change in rows.scalars():
        entry = revisions.setdefault(
            change.revision,
            {
                "revision": change.revision,
                "changed_at": change.changed_at,
                "batch_id": change.batch_id,
                "reporter": change.reporter,
                "created": False,
                "changes": [],
            },
        )
        if change.field == "(created)":
            entry["created"] = True
        else:
            entry["changes"].append({"field": change.field, "old": change.old_value, "new": change.new_value})
    return list(revisions.values())


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
