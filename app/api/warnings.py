"""监管预警 (§5, §7.8): warnings raised by the hub's rules for the platforms in scope, newest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, ok, server_key_of
from app.schemas.common import Envelope, ErrorEnvelope
from app.services import warnings as warning_service
from app.services.warnings import WarningFilters

router = APIRouter(prefix="/api/v1", tags=["warnings"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404)}


@router.get(
    "/warnings",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="监管预警列表 (list warnings)",
)
async def list_warnings(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    platform_code: Annotated[str | None, Query(description="云平台编码", max_length=64)] = None,
    region_code: Annotated[str | None, Query(description="行政区划代码（2/4/6 位）", max_length=6)] = None,
    status: Annotated[
        str | None, Query(description="预警状态 active 活动 / cleared 已解除，可逗号分隔多个", max_length=100)
    ] = None,
    level_max: Annotated[
        int | None,
        Query(
            ge=1, le=4, description="级别上限：只返回 level ≤ level_max 的预警（1 紧急 2 重要 3 次要 4 提示）"
        ),
    ] = None,
    rule_code: Annotated[str | None, Query(description="规则编码，可逗号分隔多个", max_length=1000)] = None,
    from_: Annotated[
        str | None,
        Query(alias="from", description="首次出现时间起（含），RFC 3339 带时区偏移", max_length=64),
    ] = None,
    to: Annotated[
        str | None, Query(description="首次出现时间止（不含），RFC 3339 带时区偏移", max_length=64)
    ] = None,
    with_total: Annotated[bool, Query(description="是否返回总数 total")] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="每页条数，默认 100，最大 1000")] = 100,
    cursor: Annotated[str | None, Query(description="上一页返回的 next_cursor", max_length=2000)] = None,
) -> dict[str, Any]:
    """Warnings in scope, ordered by ``first_at`` desc then ``platform_code, warning_id``, keyset-paged."""
    principal.require_kind("indicators")
    filters = WarningFilters(
        platform_code=platform_code,
        region_code=region_code,
        status=status,
        level_max=level_max,
        rule_code=rule_code,
        from_=from_,
        to=to,
    )
    page = await warning_service.list_warnings(
        session,
        server_key_of(request),
        principal,
        filters,
        now=datetime.now(UTC),
        reporting_tz=settings.reporting_tz,
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    return ok(request, page)
