"""Administration of what the hub judges by (§10): thresholds (§6.6) and indicator policy (§7)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app.api.deps import CurrentPrincipal, SessionDep, ok, server_key_of
from app.schemas.common import Envelope, ErrorEnvelope, Page
from app.schemas.supervision import IndicatorPolicyPut
from app.schemas.supervision_admin import ThresholdRowOut, ThresholdsChange
from app.services import thresholds as service

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 403, 413, 422)
}


@router.get(
    "/thresholds",
    response_model=Envelope[Page[ThresholdRowOut]],
    response_model_exclude_unset=True,
    responses=_ERRORS,
    summary="环境阈值 (environment thresholds)",
)
async def get_thresholds(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    point_type: Annotated[str | None, Query(description="测点类型，可逗号分隔", max_length=500)] = None,
    applies_to: Annotated[
        str | None,
        Query(description="default 默认 / platform 云平台 / room 机房，可逗号分隔", max_length=100),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="每页条数，默认 100，最大 1000")] = 100,
    cursor: Annotated[str | None, Query(description="上一页返回的 next_cursor", max_length=2000)] = None,
    with_total: Annotated[bool, Query(description="是否返回总数 total")] = False,
) -> dict[str, Any]:
    """Threshold rows: the default of every point type (with its source) by ``point_type``, then
    the per-platform / per-room rows by ``platform_code, room_code, point_type``. Each row has the
    fields PUT takes: ``applies_to: default`` rows go in ``defaults``, the others in ``overrides``."""
    principal.require_role("admin")
    page = await service.thresholds(
        session,
        server_key_of(request),
        point_type=point_type,
        applies_to=applies_to,
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    return ok(request, page)


@router.put(
    "/thresholds",
    response_model=Envelope[Page[ThresholdRowOut]],
    response_model_exclude_unset=True,
    responses=_ERRORS,
    summary="修改环境阈值 (change environment thresholds)",
)
async def put_thresholds(
    request: Request, change: ThresholdsChange, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """``defaults`` replace the named point types' rows; ``overrides`` (when given) become the whole
    set of per-platform / per-room rows. Stored samples of the affected points are judged again by
    the evaluation job within a minute. Bounds are JSON numbers and ``dwell_s`` an integer:
    ``false`` or ``"5"`` is refused, not read as 0 or 5. Answers the first page of ``GET``
    (its ``next_cursor`` continues there)."""
    principal.require_role("admin")
    return ok(request, await service.put_thresholds(session, server_key_of(request), change))


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
