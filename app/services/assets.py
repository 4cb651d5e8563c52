"""Reading assets back: the list with its keyset cursor, one asset and its history."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, get_args

from sqlalchemy import Select, String, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.models import Asset, AssetChange, Client
from app.schemas.enums import AssetStatus, AssetType, CpuArch, Lifecycle, NetworkZone
from app.schemas.ingest import AssetRecord
from app.security.keys import ServerKey
from app.security.principal import Principal
from app.services.changes import SyncSpec, parse_updated_since, sync_page
from app.services.export import Column, ExportSource
from app.services.query import Keyset, enum_filter, keyset_page, parse_time, scope_condition

RECORD_FIELDS = tuple(f for f in AssetRecord.model_fields if f != "is_domestic")


@dataclass(frozen=True)
class Reporters:
    """Who reported what, as a reader may see it (§14): ``{name, kind}``, plus the ``app_key`` of a
    reporting client for admins only — a key id is half of a credential, and other readers
    have no business knowing which key pushed a platform's data."""

    names: dict[str, str]
    show_keys: bool = False

    def out(self, reporter: str) -> dict[str, Any]:
        kind, _, ident = reporter.partition(":")
        if kind == "source":
            return {"name": ident, "kind": "source"}
        answer: dict[str, Any] = {"name": self.names.get(reporter, "（已删除的客户端）"), "kind": "client"}
        if self.show_keys:
            answer["app_key"] = ident
        return answer


async def reporters_of(session: AsyncSession, principal: Principal, reporters: Iterable[str]) -> Reporters:
    """The names of the clients among ``reporters`` (stored as ``key:<app_key>`` / ``source:<id>``)."""
    keys = sorted({r.removeprefix("key:") for r in reporters if r.startswith("key:")})
    names: dict[str, str] = {}
    if keys:
        rows = await session.execute(select(Client.app_key, Client.name).where(Client.app_key.in_(keys)))
        names = {f"key:{app_key}": name for app_key, name in rows.all()}
    return Reporters(names, show_keys=principal.is_admin)


def asset_out(asset: Asset, reporters: Reporters | None = None) -> dict[str, Any]:
    """An asset as answered; ``reporters`` resolves ``reporter`` (an export has no such column)."""
    out: dict[str, Any] = {"platform_code": asset.platform_code, "asset_uid": str(asset.asset_uid)}
    for name in RECORD_FIELDS:
        value = getattr(asset, name)
        out[name] = value.isoformat() if hasattr(value, "isoformat") and not isinstance(value, str) else value
    out["is_domestic"] = asset.is_domestic
    out["domestic"] = asset.domestic
    if reporters is not None:
        out["reporter"] = reporters.out(asset.reporter)
    out["created_at"] = asset.created_at
    out["updated_at"] = asset.updated_at
    out["last_seen_at"] = asset.last_seen_at
    return out


@dataclass(frozen=True)
class AssetFilters:
    """The §5 filters of the asset list (each enum filter may list several codes, comma-separated)."""

    platform_code: str | None = None
    region_code: str | None = None
    asset_type: str | None = None
    status: str | None = None
    lifecycle: str | None = None
    cpu_arch: str | None = None
    is_domestic: bool | None = None
    network_zone: str | None = None
    using_unit: str | None = None
    business_system: str | None = None
    q: str | None = None
    include_retired: bool = False
    #: an RFC 3339 time or a ``sync_token``: switches the list to change order, retired rows included
    updated_since: str | None = None


ASSET_SYNC = SyncSpec(
    "assets-sync", "assets", Asset.change_seq, (Asset.platform_code, Asset.asset_id), Asset.updated_at
)
ASSET_KEYSET = Keyset(
    "assets", (Asset.platform_code, Asset.asset_id), lambda a: [a.platform_code, a.asset_id]
)


async def list_assets(
    session: AsyncSession,
    key: ServerKey,
    principal: Principal,
    filters: AssetFilters,
    *,
    limit: int,
    cursor: str | None,
    with_total: bool = False,
) -> dict[str, Any]:
    """Assets in scope, ordered by (platform_code, asset_id); with ``updated_since``, in change order."""
    stmt = await asset_statement(session, principal, filters)
    if filters.updated_since is not None:
        bound = asdict(filters) | {"updated_since": None}
        start = parse_updated_since(key, ASSET_SYNC, bound, filters.updated_since)
        rows, token, more = await sync_page(
            session,
            stmt,
            ASSET_SYNC,
            start,
            server_key=key,
            filters=bound,
            limit=limit,
            key_of=lambda a: [a.change_seq, a.platform_code, a.asset_id],
        )
        reporters = await reporters_of(session, principal, (a.reporter for a in rows))
        return {
            "items": [asset_out(a, reporters) for a in rows],
            "next_cursor": token if more else None,
            "sync_token": token,
        }
    rows, next_cursor, total = await keyset_page(
        session,
        stmt,
        ASSET_KEYSET,
        server_key=key,
        filters=asdict(filters),
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    reporters = await reporters_of(session, principal, (a.reporter for a in rows))
    page: dict[str, Any] = {"items": [asset_out(a, reporters) for a in rows], "next_cursor": next_cursor}
    if with_total:
        page["total"] = total
    return page


async def asset_statement(session: AsyncSession, principal: Principal, filters: AssetFilters) -> Select[Any]:
    """The assets a list or an export with ``filters`` holds (scope applied in SQL)."""
    scope = await scope_condition(
        session,
        principal,
        Asset.platform_code,
        platform_code=filters.platform_code,
        region_code=filters.region_code,
    )
    stmt = select(Asset).where(scope)
    for column, value, allowed in (
        (Asset.asset_type, filters.asset_type, get_args(AssetType)),
        (Asset.status, filters.status, get_args(AssetStatus)),
        (Asset.cpu_arch, filters.cpu_arch, get_args(CpuArch)),
        (Asset.network_zone, filters.network_zone, get_args(NetworkZone)),
        (Asset.lifecycle, filters.lifecycle, get_args(Lifecycle)),
    ):
        codes = enum_filter(value, column.key, allowed)
        if codes is not None:
            stmt = stmt.where(column.in_(codes))
    if filters.lifecycle is None and not filters.include_retired and filters.updated_since is None:
        stmt = stmt.where(Asset.lifecycle != "retired")
    if filters.is_domestic is not None:
        stmt = stmt.where(Asset.is_domestic.is_(filters.is_domestic))
    if filters.using_unit is not None:
        stmt = stmt.where(Asset.using_unit == filters.using_unit)
    if filters.business_system is not None:
        stmt = stmt.where(Asset.business_system == filters.business_system)
    if filters.q:
        pattern = "%" + _escape_like(filters.q) + "%"
        stmt = stmt.where(
            or_(
                Asset.name.ilike(pattern, escape="\\"),
                cast(Asset.ip_addresses, String).ilike(pattern, escape="\\"),
            )
        )
    return stmt


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


async def asset_answer(session: AsyncSession, principal: Principal, uid: str) -> dict[str, Any]:
    """One asset as ``GET /assets/{asset_uid}`` answers it."""
    asset = await get_asset(session, principal, uid)
    return asset_out(asset, await reporters_of(session, principal, [asset.reporter]))


async def asset_history(session: AsyncSession, asset: Asset, principal: Principal) -> list[dict[str, Any]]:
    """Revisions newest first, each with its batch, reporter and old → new per field."""
    rows = await session.execute(
        select(AssetChange)
        .where(AssetChange.platform_code == asset.platform_code, AssetChange.asset_id == asset.asset_id)
        .order_by(AssetChange.revision.desc(), AssetChange.field)
    )
    changes = list(rows.scalars())
    reporters = await reporters_of(session, principal, (c.reporter for c in changes))
    revisions: dict[int, dict[str, Any]] = {}
    for change in changes:
        entry = revisions.setdefault(
            change.revision,
            {
                "revision": change.revision,
                "changed_at": change.changed_at,
                "batch_id": change.batch_id,
                "reporter": reporters.out(change.reporter),
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


#: export columns with their Chinese headers (``headers=zh``)
ASSET_COLUMNS = (
    ("platform_code", "云平台编码"),
    ("asset_uid", "资产统一编号"),
    ("asset_id", "资产ID"),
    ("asset_type", "资产类型"),
    ("name", "名称"),
    ("status", "运行状态"),
    ("lifecycle", "生命周期"),
    ("network_zone", "网络区域"),
    ("using_unit", "使用单位"),
    ("using_unit_uscc", "使用单位统一社会信用代码"),
    ("business_system", "业务系统"),
    ("ip_addresses", "IP地址"),
    ("tags", "标签"),
    ("manufacturer", "厂商"),
    ("model", "型号"),
    ("serial_number", "序列号"),
    ("asset_tag", "资产标签"),
    ("room_code", "机房编码"),
    ("rack_code", "机柜编码"),
    ("u_position", "U位"),
    ("u_height", "U高"),
    ("purchase_date", "采购日期"),
    ("warranty_end", "维保到期"),
    ("rated_power_w", "额定功率（W）"),
    ("cpu_arch", "CPU架构"),
    ("cpu_vendor", "CPU厂商"),
    ("cpu_model", "CPU型号"),
    ("cpu_cores", "CPU核数"),
    ("vcpus", "vCPU数"),
    ("memory_mib", "内存（MiB）"),
    ("disk_gib", "磁盘（GiB）"),
    ("os_name", "操作系统"),
    ("os_version", "操作系统版本"),
    ("virtualization", "虚拟化类型"),
    ("host_asset_id", "宿主机资产ID"),
    ("capacity_gib", "容量（GiB）"),
    ("used_gib", "已用（GiB）"),
    ("storage_protocol", "存储协议"),
    ("product", "产品"),
    ("vendor", "供应商"),
    ("version", "版本"),
    ("is_domestic", "是否国产"),
    ("domestic", "国产化判定依据"),
    ("source_updated_at", "源系统更新时间"),
    ("created_at", "首次上报时间"),
    ("updated_at", "最后变更时间"),
    ("last_seen_at", "最后上报时间"),
)


async def asset_export_source(
    session: AsyncSession, principal: Principal, filters: AssetFilters
) -> ExportSource:
    """The asset list with ``filters`` as an export (same scope, same order).

    ``updated_since`` is taken as a time here (changes since then, retired rows included); a
    ``sync_token`` belongs to the paged list.
    """
    statement = await asset_statement(session, principal, filters)
    if filters.updated_since is not None:
        since = parse_time(filters.updated_since, "updated_since")
        statement = statement.where(Asset.updated_at >= since)
    return ExportSource(
        name="assets",
        statement=statement,
        keyset=ASSET_KEYSET,
        columns=[Column(key, zh) for key, zh in ASSET_COLUMNS],
        row_out=asset_out,
    )
