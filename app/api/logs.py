"""日志 (§5): the log list and the check of a platform's log chain (§4.3)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, ok, server_key_of
from app.errors import Forbidden, NotFound
from app.models import Platform
from app.schemas.common import Envelope, ErrorEnvelope
from app.services import log_queries
from app.services.log_queries import LogFilters
from app.services.logs import verify_chain

router = APIRouter(prefix="/api/v1/logs", tags=["logs"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404)}


def log_filters(
    platform_code: Annotated[str | None, Query(description="云平台编码", max_length=64)] = None,
    region_code: Annotated[str | None, Query(description="行政区划代码（2/4/6 位）", max_length=6)] = None,
    category: Annotated[
        str | None,
        Query(description="日志类别 operation / security / audit / system，可逗号分隔多个", max_length=100),
    ] = None,
    type: Annotated[str | None, Query(description="事件类型（完全匹配），如 login", max_length=64)] = None,
    severity_max: Annotated[
        int | None,
        Query(ge=0, le=7, description="严重级别上限：只返回 severity ≤ severity_max（0 紧急 … 7 调试）"),
    ] = None,
    outcome: Annotated[
        str | None, Query(description="结果 success / failure / unknown，可逗号分隔多个", max_length=100)
    ] = None,
    actor: Annotated[str | None, Query(description="操作者（完全匹配）", max_length=256)] = None,
    q: Annotated[str | None, Query(description="日志内容包含（不区分大小写）", max_length=200)] = None,
    from_: Annotated[
        str | None,
        Query(
            alias="from",
            description="事件时间起（含），RFC 3339 带时区偏移；缺省为 to 之前 24 小时，并固定在游标中",
            max_length=64,
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(
            description="事件时间止（不含），RFC 3339 带时区偏移；缺省为当前时间，并固定在游标中",
            max_length=64,
        ),
    ] = None,
    updated_since: Annotated[
        str | None,
        Query(
            description="增量同步：RFC 3339 时间（此后接收的日志）或上次返回的 sync_token；按到达顺序返回",
            max_length=16000,
        ),
    ] = None,
) -> LogFilters:
    """The filters of this list (§5), shared by the list and its export."""
    return LogFilters(
        platform_code=platform_code,
        region_code=region_code,
        category=category,
        type=type,
        severity_max=severity_max,
        outcome=outcome,
        actor=actor,
        q=q,
        from_=from_,
        to=to,
        updated_since=updated_since,
    )


LogFiltersDep = Annotated[LogFilters, Depends(log_filters)]


@router.get("", response_model=Envelope[dict[str, Any]], responses=_ERRORS, summary="日志列表 (list logs)")
async def list_logs(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    filters: LogFiltersDep,
    with_total: Annotated[bool, Query(description="是否返回总数 total")] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="每页条数，默认 100，最大 1000")] = 100,
    cursor: Annotated[str | None, Query(description="上一页返回的 next_cursor", max_length=2000)] = None,
) -> dict[str, Any]:
    """Logs in scope within ``[from, to)`` (default the last 24 h), newest ``event_time`` first."""
    principal.require_kind("logs")
    page = await log_queries.list_logs(
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


@router.get(
    "/verify",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="校验日志链 (verify a platform's log chain)",
)
async def verify_logs(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    platform_code: Annotated[str, Query(description="云平台编码", max_length=64)],
    from_seq: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="起始序号")] = None,
    to_seq: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="结束序号")] = None,
) -> dict[str, Any]:
    """Recompute the SM3 chain and name the first broken ``seq`` (``ok: false``)."""
    principal.require_kind("logs")
    platform = await session.get(Platform, platform_code)
    if platform is None or not principal.platform_in_scope(platform_code, platform.region_code):
        if platform is None and principal.is_admin:
            raise NotFound(f"云平台 {platform_code} 不存在 (no such platform)")
        raise Forbidden(f"云平台 {platform_code} 超出授权范围 (platform outside your scope)")
    return ok(request, await verify_chain(session, platform_code, from_seq, to_seq))
