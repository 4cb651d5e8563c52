"""云平台登记信息与数据新鲜度 (§5, §7.7): open to every authenticated client, filtered by scope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from app.api.deps import CurrentPrincipal, SessionDep, ok, server_key_of
from app.schemas.common import Envelope, ErrorEnvelope
from app.services import platforms as platform_service

router = APIRouter(prefix="/api/v1", tags=["platforms"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404)}


@router.get(
    "/platforms",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="云平台列表 (list platforms)",
)
async def list_platforms(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    region_code: Annotated[str | None, Query(description="行政区划代码（2/4/6 位）", max_length=6)] = None,
    with_total: Annotated[bool, Query(description="是否返回总数 total")] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="每页条数，默认 100，最大 1000")] = 100,
    cursor: Annotated[str | None, Query(description="上一页返回的 next_cursor", max_length=2000)] = None,
) -> dict[str, Any]:
    """Platforms in the caller's scope by ``platform_code``, each with per-kind data freshness."""
    page = await platform_service.list_platforms_page(
        session,
        server_key_of(request),
        principal,
        region_code=region_code,
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    return ok(request, page)


@router.get(
    "/platforms/{code}",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="云平台详情 (one platform)",
)
async def get_platform(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    code: Annotated[str, Path(description="云平台编码", max_length=64)],
) -> dict[str, Any]:
    """One platform in the caller's scope with per-kind data freshness (else 404 ``3002``)."""
    return ok(request, await platform_service.read_platform(session, principal, code))
