"""机房环控数据查询 (§5): raw samples, the latest sample of each point with its state, series."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, ok, server_key_of
from app.api.metrics import From, PlatformCode, RegionCode, To
from app.schemas.common import Envelope, ErrorEnvelope
from app.services import environment as environment_service
from app.services.buckets import Aggregate, StepName
from app.services.environment import LatestFilters, PointSeriesQuery, SampleFilters

router = APIRouter(prefix="/api/v1", tags=["environment"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404)}

RoomCode = Annotated[str | None, Query(description="机房编码", max_length=128)]
PointType = Annotated[str | None, Query(description="测点类型（§6.6），可逗号分隔多个", max_length=500)]
WithTotal = Annotated[bool, Query(description="是否返回总数 total")]
Limit = Annotated[int, Query(ge=1, le=1000, description="每页条数，默认 100，最大 1000")]
Cursor = Annotated[str | None, Query(description="上一页返回的 next_cursor", max_length=2000)]


def environment_sample_filters(
    platform_code: PlatformCode = None,
    region_code: RegionCode = None,
    room_code: RoomCode = None,
    point_code: Annotated[str | None, Query(description="测点编码", max_length=128)] = None,
    point_type: PointType = None,
    from_: From = None,
    to: To = None,
) -> SampleFilters:
    """The filters of this list (§5), shared by the list and its export."""
    return SampleFilters(
        platform_code=platform_code,
        region_code=region_code,
        room_code=room_code,
        point_code=point_code,
        point_type=point_type,
        from_=from_,
        to=to,
    )


SampleFiltersDep = Annotated[SampleFilters, Depends(environment_sample_filters)]


@router.get(
    "/environment/samples",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="环控原始数据 (raw environment samples)",
)
async def list_samples(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    filters: SampleFiltersDep,
    with_total: WithTotal = False,
    limit: Limit = 100,
    cursor: Cursor = None,
    updated_since: Annotated[
        str | None,
        Query(
            description=(
                "增量同步：RFC 3339 时间（此后接收的样本）或上次返回的 sync_token；按变更顺序返回，"
                "含更正后的样本；仅在给出时按 from/to 筛选样本时间"
            ),
            max_length=16000,
        ),
    ] = None,
) -> dict[str, Any]:
    """Raw samples in scope, ordered by ``platform_code, room_code, point_code, ts``, keyset-paged.

    With ``updated_since``: change order (platform, change sequence, key, ts) and a ``sync_token``.
    """
    principal.require_kind("environment")
    page = await environment_service.list_samples(
        session,
        server_key_of(request),
        principal,
        replace(filters, updated_since=updated_since),
        limit=limit,
        cursor=cursor,
        with_total=with_total,
        tz_name=settings.reporting_tz,
    )
    return ok(request, page)


@router.get(
    "/environment/latest",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="各测点最新值与状态 (latest sample and state per point)",
)
async def list_latest(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    platform_code: PlatformCode = None,
    region_code: RegionCode = None,
    room_code: RoomCode = None,
    point_type: PointType = None,
    with_total: WithTotal = False,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Every point in scope with its latest sample and state, ordered by platform, room, point."""
    principal.require_kind("environment")
    filters = LatestFilters(
        platform_code=platform_code, region_code=region_code, room_code=room_code, point_type=point_type
    )
    page = await environment_service.list_latest(
        session,
        server_key_of(request),
        principal,
        filters,
        limit=limit,
        cursor=cursor,
        with_total=with_total,
        tz_name=settings.reporting_tz,
    )
    return ok(request, page)


@router.get(
    "/environment/series",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="测点时间序列 (one point's series in buckets)",
)
async def point_series(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    platform_code: Annotated[str, Query(description="云平台编码", max_length=64)],
    room_code: Annotated[str, Query(description="机房编码", max_length=128)],
    point_code: Annotated[str, Query(description="测点编码", max_length=128)],
    from_: From = None,
    to: To = None,
    step: Annotated[
        StepName,
        Query(description="粒度：auto 自动（点数 ≥ 200 的最粗粒度）/ raw 原始（含状态）/ 5m / 1h / 1d"),
    ] = "auto",
    agg: Annotated[
        Aggregate, Query(description="聚合方式：avg 平均 / min 最小 / max 最大 / last 末值 / sum 求和")
    ] = "avg",
) -> dict[str, Any]:
    """One point's samples over ``[from, to)`` in buckets; ``raw`` points carry their state."""
    principal.require_kind("environment")
    query = PointSeriesQuery(
        platform_code=platform_code,
        room_code=room_code,
        point_code=point_code,
        from_=from_,
        to=to,
        step=step,
        agg=agg,
    )
    data = await environment_service.point_series(
        session,
        principal,
        query,
        tz_name=settings.reporting_tz,
        raw_retention_days=settings.retention_environment_days,
    )
    return ok(request, data)
