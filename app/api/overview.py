"""监管总览 (§5 ``/overview``): a region's platforms, assets, alarms, warnings and stale feeds at once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, ok
from app.schemas.common import Envelope, ErrorEnvelope
from app.services import overview as overview_service

router = APIRouter(prefix="/api/v1", tags=["overview"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (400, 401, 403)}


@router.get(
    "/overview", response_model=Envelope[dict[str, Any]], responses=_ERRORS, summary="监管总览 (overview)"
)
async def get_overview(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    region_code: Annotated[
        str | None, Query(description="行政区划代码（2/4/6 位）；缺省为授权范围内的全部云平台", max_length=6)
    ] = None,
) -> dict[str, Any]:
    """Per platform the indicator statuses of this month and stale feeds; assets by type and CPU
    architecture; the pooled domestic rate; active alarms and warnings by level; stale feeds."""
    principal.require_kind("indicators")
    data = await overview_service.overview(
        session,
        principal,
        region_code=region_code,
        now=datetime.now(UTC),
        reporting_tz=settings.reporting_tz,
        raw_retention_days=settings.retention_metrics_days,
    )
    return ok(request, data)
