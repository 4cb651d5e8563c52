"""监控数据查询 (§5): series in buckets, the latest value per series (top-N), raw samples."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, ok, server_key_of
from app.schemas.common import Envelope, ErrorEnvelope
from app.services import metrics as metric_service
from app.services.buckets import Aggregate, StepName
from app.services.metrics import SampleFilters, SeriesQuery

router = APIRouter(prefix="/api/v1", tags=["metrics"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404)}


Metric = Annotated[str, Query(description="指标编码（见 GET /api/v1/catalog 指标目录）", max_length=64)]
PlatformCode = Annotated[str | None, Query(description="云平台编码", max_length=64)]
RegionCode = Annotated[str | None, Query(description="行政区划代码（2/4/6 位）", max_length=6)]
From = Annotated[
    str | None,
    Query(
        alias="from",
        description=(
            "起始时间（含），RFC 3339 且须带时区偏移，如 2026-11-21T08:00:00+08:00；默认 to 之前 24 小时"
        ),
        max_length=40,
    ),
]
To = Annotated[
    str | None,
    Query(description="结束时间（不含），RFC 3339 且须带时区偏移；默认当前时间", max_length=40),
]


@router.get(
    "/metrics/series",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="监控数据时间序列 (metric series in buckets)",
)
async def metric_series(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    metric: Metric,
    platform_code: Annotated[
        str | None, Query(description="云平台编码（给出 asset_uid 时可省略）", max_length=64)
    ] = None,
    asset_uid: Annotated[str | None, Query(description="资产统一编号 asset_uid", max_length=64)] = None,
    asset_id: Annotated[
        str | None, Query(description="上报方资产编号；与 asset_uid 均不给时查询平台级指标", max_length=128)
    ] = None,
    labels: Annotated[
        str | None,
        Query(description="标签完全匹配，格式 k:v,k2:v2；不给时按标签组合分别返回每条序列", max_length=2200),
    ] = None,
    from_: From = None,
    to: To = None,
    step: Annotated[
        StepName,
        Query(
            description="粒度：auto 自动（点数 ≥ 200 的最粗粒度）/ raw 原始 / 5m / 1h / 1d（报表时区自然日）"
        ),
    ] = "auto",
    agg: Annotated[
        Aggregate, Query(description="聚合方式：avg 平均 / min 最小 / max 最大 / last 末值 / sum 求和")
    ] = "avg",
) -> dict[str, Any]:
    """One metric of an asset (or of the platform) over ``[from, to)``, one series per labels set."""
    principal.require_kind("metrics")
    query = SeriesQuery(
        metric=metric,
        platform_code=platform_code,
        asset_uid=asset_uid,
        asset_id=asset_id,
        labels=labels,
        from_=from_,
        to=to,
        step=step,
        agg=agg,
    )
    data = await metric_service.metric_series(
        session,
        principal,
        query,
        tz_name=settings.reporting_tz,
        raw_retention_days=settings.retention_metrics_days,
    )
    return ok(request, data)


@router.get(
    "/metrics/latest",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="各序列最新值排行 (latest value per series, top-N)",
)
async def latest_values(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    metric: Metric,
    platform_code: PlatformCode = None,
    region_code: RegionCode = None,
    order: Annotated[
        Literal["asc", "desc"], Query(description="按数值排序：desc 降序（默认）/ asc 升序")
    ] = "desc",
    limit: Annotated[int, Query(ge=1, le=1000, description="返回条数（前 N 名），默认 100，最大 1000")] = 100,
) -> dict[str, Any]:
    """The latest sample of every (asset, labels) series of one metric in scope, sorted by value."""
    principal.require_kind("metrics")
    data = await metric_service.latest_values(
        session,
        principal,
        metric,
        platform_code=platform_code,
        region_code=region_code,
        order=order,
        limit=limit,
        tz_name=settings.reporting_tz,
    )
    return ok(request, data)


def sample_filters(
    metric: Annotated[str | None, Query(description="指标编码", max_length=64)] = None,
    platform_code: PlatformCode = None,
    region_code: RegionCode = None,
    asset_id: Annotated[str | None, Query(description="上报方资产编号", max_length=128)] = None,
    from_: From = None,
    to: To = None,
) -> SampleFilters:
    """The filters of this list (§5), shared by the list and its export."""
    return SampleFilters(
        metric=metric,
        platform_code=platform_code,
        region_code=region_code,
        asset_id=asset_id,
        from_=from_,
        to=to,
    )


SampleFiltersDep = Annotated[SampleFilters, Depends(sample_filters)]


@router.get(
    "/metrics/samples",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="监控原始数据 (raw metric samples)",
)
async def list_samples(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    filters: SampleFiltersDep,
    with_total: Annotated[bool, Query(description="是否返回总数 total")] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="每页条数，默认 100，最大 1000")] = 100,
    cursor: Annotated[str | None, Query(description="上一页返回的 next_cursor", max_length=2000)] = None,
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
    """Raw samples in scope, ordered by ``platform_code, series_id, ts``, keyset-paged.

    With ``updated_since``: change order (platform, change sequence, key, ts) and a ``sync_token``.
    """
    principal.require_kind("metrics")
    page = await metric_service.list_samples(
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
