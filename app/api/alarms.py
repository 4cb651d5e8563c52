"""告警 (§5): alarms reported by the platforms in scope, newest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, ok, server_key_of
from app.schemas.common import Envelope, ErrorEnvelope
from app.services import alarms as alarm_service
from app.services.alarms import AlarmFilters

router = APIRouter(prefix="/api/v1", tags=["alarms"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404)}


def alarm_filters(
    platform_code: Annotated[str | None, Query(description="云平台编码", max_length=64)] = None,
    region_code: Annotated[str | None, Query(description="行政区划代码（2/4/6 位）", max_length=6)] = None,
    status: Annotated[
        str | None, Query(description="告警状态 active 活动 / cleared 已清除，可逗号分隔多个", max_length=100)
    ] = None,
    level_max: Annotated[
        int | None,
        Query(
            ge=1, le=4, description="级别上限：只返回 level ≤ level_max 的告警（1 紧急 2 重要 3 次要 4 提示）"
        ),
    ] = None,
    from_: Annotated[
        str | None,
        Query(alias="from", description="首次发生时间起（含），RFC 3339 带时区偏移", max_length=64),
    ] = None,
    to: Annotated[
        str | None, Query(description="首次发生时间止（不含），RFC 3339 带时区偏移", max_length=64)
    ] = None,
    updated_since: Annotated[
        str | None,
        Query(
            description="增量同步：RFC 3339 时间或上次返回的 sync_token；按变更顺序返回并给出新的 sync_token",
            max_length=2000,
        ),
    ] = None,
) -> AlarmFilters:
    """The filters of this list (§5), shared by the list and its export."""
    return AlarmFilters(
        platform_code=platform_code,
        region_code=region_code,
        status=status,
        level_max=level_max,
        from_=from_,
        to=to,
        updated_since=updated_since,
    )


AlarmFiltersDep = Annotated[AlarmFilters, Depends(alarm_filters)]


@router.get(
    "/alarms", response_model=Envelope[dict[str, Any]], responses=_ERRORS, summary="告警列表 (list alarms)"
)
async def list_alarms(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    filters: AlarmFiltersDep,
    with_total: Annotated[bool, Query(description="是否返回总数 total")] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="每页条数，默认 100，最大 1000")] = 100,
    cursor: Annotated[str | None, Query(description="上一页返回的 next_cursor", max_length=2000)] = None,
) -> dict[str, Any]:
    """Alarms in scope, ordered by ``first_at`` desc then ``platform_code, alarm_id``, keyset-paged."""
    principal.require_kind("alarms")
    page = await alarm_service.list_alarms(
        session,
        server_key_of(request),
        principal,
        filters,
        reporting_tz=settings.reporting_tz,
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    return ok(request, page)
