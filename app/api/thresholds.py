"""Administration of what the hub judges by (§10): thresholds (§6.6) and indicator policy (§7)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import CurrentPrincipal, SessionDep, ok
from app.schemas.common import Envelope, ErrorEnvelope
from app.schemas.supervision import IndicatorPolicyPut
from app.schemas.supervision_admin import ThresholdsChange
from app.services import thresholds as service

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 403, 413, 422)
}


@router.get(
    "/thresholds",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="环境阈值 (environment thresholds)",
)
async def get_thresholds(
    request: Request, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """The default row of every point type (with its source) and the per-platform / per-room rows."""
    principal.require_role("admin")
    return ok(request, await service.thresholds(session))


@router.put(
    "/thresholds",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="修改环境阈值 (change environment thresholds)",
)
async def put_thresholds(
    request: Request, change: ThresholdsChange, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """``defaults`` replace the named point types' rows; ``overrides`` (when given) become the whole
    set of per-platform / per-room rows. Stored samples of the affected points are judged again by
    the evaluation job within a minute. Bounds are JSON numbers and ``dwell_s`` an integer:
    ``false`` or ``"5"`` is refused, not read as 0 or 5."""
    principal.require_role("admin")
    return ok(request, await service.put_thresholds(session, change))


@router.get(
    "/indicator-policy",
    response_model=Envelope[list[dict[str, Any]]],
    responses=_ERRORS,
    summary="指标参数 (indicator targets and parameters)",
)
async def get_indicator_policy(
    request: Request, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """Targets and parameters of every §7 indicator."""
    principal.require_role("admin")
    return ok(request, await service.indicator_policy(session))


@router.put(
    "/indicator-policy",
    response_model=Envelope[list[dict[str, Any]]],
    responses=_ERRORS,
    summary="修改指标参数 (change indicator targets and parameters)",
)
async def put_indicator_policy(
    request: Request, change: IndicatorPolicyPut, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """The named parameters of each named indicator are replaced; closed periods keep their figures."""
    principal.require_role("admin")
    return ok(request, await service.put_indicator_policy(session, change))
