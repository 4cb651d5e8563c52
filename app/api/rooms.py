"""机房 (§5): rooms in scope with the latest sample of each environment point."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app.api.deps import CurrentPrincipal, SessionDep, ok, server_key_of
from app.schemas.common import Envelope, ErrorEnvelope
from app.services import rooms as room_service
from app.services.rooms import RoomFilters

router = APIRouter(prefix="/api/v1", tags=["rooms"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404)}


@router.get(
    "/rooms", response_model=Envelope[dict[str, Any]], responses=_ERRORS, summary="机房列表 (list rooms)"
)
async def list_rooms(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    platform_code: Annotated[str | None, Query(description="云平台编码", max_length=64)] = None,
    region_code: Annotated[
        str | None, Query(description="云平台所在行政区划代码（2/4/6 位）", max_length=6)
    ] = None,
    with_total: Annotated[bool, Query(description="是否返回总数 total")] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="每页条数，默认 100，最大 1000")] = 100,
    cursor: Annotated[str | None, Query(description="上一页返回的 next_cursor", max_length=2000)] = None,
) -> dict[str, Any]:
    """Rooms in scope by ``platform_code, room_code``, each with its points' latest samples."""
    principal.require_kind("environment")
    page = await room_service.list_rooms(
        session,
        server_key_of(request),
        principal,
        RoomFilters(platform_code=platform_code, region_code=region_code),
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    return ok(request, page)
