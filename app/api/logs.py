"""日志完整性校验 (§4.3)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app.api.deps import CurrentPrincipal, SessionDep, ok
from app.errors import Forbidden, NotFound
from app.models import Platform
from app.schemas.common import Envelope, ErrorEnvelope
from app.services.logs import verify_chain

router = APIRouter(prefix="/api/v1/logs", tags=["logs"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404)}


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
    from_seq: Annotated[int | None, Query(ge=1, description="起始序号")] = None,
    to_seq: Annotated[int | None, Query(ge=1, description="结束序号")] = None,
) -> dict[str, Any]:
    """Recompute the SM3 chain and name the first broken ``seq`` (``ok: false``)."""
    principal.require_kind("logs")
    platform = await session.get(Platform, platform_code)
    if platform is None or not principal.platform_in_scope(platform_code, platform.region_code):
        if platform is None and principal.is_admin:
            raise NotFound(f"云平台 {platform_code} 不存在 (no such platform)")
        raise Forbidden(f"云平台 {platform_code} 超出授权范围 (platform outside your scope)")
    return ok(request, await verify_chain(session, platform_code, from_seq, to_seq))
