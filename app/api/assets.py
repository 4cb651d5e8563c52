"""资产查询: just enough reading to see what was stored (the full query interface comes later)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from app.api.deps import CurrentPrincipal, SessionDep, ok, server_key_of
from app.schemas.common import Envelope, ErrorEnvelope
from app.services import assets as asset_service
from app.services.assets import AssetFilters

router = APIRouter(prefix="/api/v1/assets", tags=["assets"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404)}
AssetUid = Annotated[str, Path(description="资产统一编号 asset_uid", max_length=64)]


def asset_filters(
    platform_code: Annotated[str | None, Query(description="云平台编码", max_length=64)] = None,
    region_code: Annotated[str | None, Query(description="行政区划代码（2/4/6 位）", max_length=6)] = None,
    asset_type: Annotated[str | None, Query(description="资产类型，可逗号分隔多个", max_length=500)] = None,
    status: Annotated[str | None, Query(description="运行状态，可逗号分隔多个", max_length=200)] = None,
    lifecycle: Annotated[str | None, Query(description="生命周期，可逗号分隔多个", max_length=100)] = None,
    cpu_arch: Annotated[str | None, Query(description="CPU 架构，可逗号分隔多个", max_length=200)] = None,
    is_domestic: Annotated[bool | None, Query(description="是否国产（按主维度判定）")] = None,
    network_zone: Annotated[str | None, Query(description="网络区域，可逗号分隔多个", max_length=100)] = None,
    using_unit: Annotated[str | None, Query(description="使用单位（完全匹配）", max_length=256)] = None,
    business_system: Annotated[str | None, Query(description="业务系统（完全匹配）", max_length=256)] = None,
    q: Annotated[str | None, Query(description="名称或 IP 包含", max_length=200)] = None,
    include_retired: Annotated[bool, Query(description="是否包含已退役资产")] = False,
    updated_since: Annotated[
        str | None,
        Query(
            description="增量同步：RFC 3339 时间或上次返回的 sync_token；按变更顺序返回（含已退役资产），"
            "并返回新的 sync_token",
            max_length=2000,
        ),
    ] = None,
) -> AssetFilters:
    """The asset filters of §5, shared by the list and the export."""
    return AssetFilters(
        platform_code=platform_code,
        region_code=region_code,
        asset_type=asset_type,
        status=status,
        lifecycle=lifecycle,
        cpu_arch=cpu_arch,
        is_domestic=is_domestic,
        network_zone=network_zone,
        using_unit=using_unit,
        business_system=business_system,
        q=q,
        include_retired=include_retired,
        updated_since=updated_since,
    )


AssetFiltersDep = Annotated[AssetFilters, Depends(asset_filters)]


@router.get("", response_model=Envelope[dict[str, Any]], responses=_ERRORS, summary="资产列表 (list assets)")
async def list_assets(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    filters: AssetFiltersDep,
    with_total: Annotated[bool, Query(description="是否返回总数 total")] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="每页条数，默认 100，最大 1000")] = 100,
    cursor: Annotated[str | None, Query(description="上一页返回的 next_cursor", max_length=2000)] = None,
) -> dict[str, Any]:
    """Assets in the caller's scope, ordered by ``platform_code, asset_id``, keyset-paged."""
    principal.require_kind("assets")
    page = await asset_service.list_assets(
        session, server_key_of(request), principal, filters, limit=limit, cursor=cursor, with_total=with_total
    )
    return ok(request, page)


@router.get(
    "/{asset_uid}", response_model=Envelope[dict[str, Any]], responses=_ERRORS, summary="资产详情 (one asset)"
)
async def get_asset(
    request: Request, asset_uid: AssetUid, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """One asset with the hub's verdicts (``domestic``) and bookkeeping fields."""
    principal.require_kind("assets")
    return ok(request, await asset_service.asset_answer(session, principal, asset_uid))


@router.get(
    "/{asset_uid}/history",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="资产变更历史 (change history)",
)
async def get_asset_history(
    request: Request, asset_uid: AssetUid, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """Every change of a stored field: when, which batch or run, old → new (newest first)."""
    principal.require_kind("assets")
    asset = await asset_service.get_asset(session, principal, asset_uid)
    items = await asset_service.asset_history(session, asset, principal)
    return ok(request, {"asset_uid": str(asset.asset_uid), "items": items})
