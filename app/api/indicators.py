"""监管指标 (§7): the indicators of a platform or a region over a period."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, ok
from app.schemas.common import Envelope, ErrorEnvelope
from app.services.indicators.answer import indicators_answer

router = APIRouter(prefix="/api/v1", tags=["indicators"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404)}


@router.get(
    "/indicators",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="监管指标 (supervision indicators)",
)
async def get_indicators(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    platform_code: Annotated[str | None, Query(description="云平台编码", max_length=64)] = None,
    region_code: Annotated[
        str | None, Query(description="行政区划代码（2/4/6 位）；区域指标为各平台分子分母之和", max_length=6)
    ] = None,
    period: Annotated[
        str | None, Query(description="统计周期 YYYY-MM（报告时区的月份），默认本月", max_length=7)
    ] = None,
    from_: Annotated[
        str | None, Query(alias="from", description="起始时间（含），RFC 3339 带时区偏移", max_length=64)
    ] = None,
    to: Annotated[
        str | None, Query(description="结束时间（不含），RFC 3339 带时区偏移", max_length=64)
    ] = None,
) -> dict[str, Any]:
    """Availability, domestic rate, storage bandwidth, PUE, environment compliance, utilisation and
    freshness, each with value, numerator, denominator, target, status, basis, coverage and
    components (docs/indicators.md). A closed month answers its frozen snapshot."""
    principal.require_kind("indicators")
    answer = await indicators_answer(
        session,
        principal,
        settings,
        platform_code=platform_code,
        region_code=region_code,
        period=period,
        from_=from_,
        to=to,
    )
    return ok(request, answer)
