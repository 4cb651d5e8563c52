"""Administration (§10) of what the hub concludes: warning rules (§7.8) and recomputes of closed
periods (§7.9). The admin only; every change is in the audit log like every request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, ok, server_key_of
from app.errors import JSONAnswer, envelope, request_id_of
from app.schemas.common import Envelope, ErrorEnvelope, Page
from app.schemas.supervision_admin import RecomputeIn, WarningRuleOut, WarningRulesPut
from app.services import periods as period_service
from app.services import warnings as warning_service

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404, 413, 422)
}


@router.get(
    "/warning-rules",
    response_model=Envelope[Page[WarningRuleOut]],
    response_model_exclude_unset=True,
    responses=_ERRORS,
    summary="预警规则 (warning rules)",
)
async def get_warning_rules(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    subject: Annotated[
        str | None, Query(description="indicator / point_type / freshness，可逗号分隔", max_length=100)
    ] = None,
    enabled: Annotated[bool | None, Query(description="只列启用（true）或停用（false）的规则")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="每页条数，默认 100，最大 1000")] = 100,
    cursor: Annotated[str | None, Query(description="上一页返回的 next_cursor", max_length=2000)] = None,
    with_total: Annotated[bool, Query(description="是否返回总数 total")] = False,
) -> dict[str, Any]:
    """Warning rules, enabled or not, ordered by ``rule_code``."""
    principal.require_role("admin")
    page = await warning_service.list_rules(
        session,
        server_key_of(request),
        subject=subject,
        enabled=enabled,
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    return ok(request, page)


@router.put(
    "/warning-rules",
    response_model=Envelope[Page[WarningRuleOut]],
    response_model_exclude_unset=True,
    responses=_ERRORS,
    summary="修改预警规则 (create or replace warning rules)",
)
async def put_warning_rules(
    request: Request, change: WarningRulesPut, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """Each rule given is created or replaced as a whole (rules not named are kept); the next
    evaluation uses them. A disabled rule's open warnings clear after its hysteresis. Answers the
    first page of ``GET`` (its ``next_cursor`` continues there)."""
    principal.require_role("admin")
    rules = await warning_service.put_rules(
        session, server_key_of(request), change.rules, now=datetime.now(UTC)
    )
    return ok(request, rules)


@router.post(
    "/indicators/recompute",
    status_code=201,
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="重新计算已关闭周期的指标 (recompute a closed period)",
)
async def recompute_indicators(
    request: Request,
    spec: RecomputeIn,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
) -> JSONAnswer:
    """A new version of a past month's indicators for a platform or a region, from the data stored
    now; earlier versions are kept, readers get the newest."""
    principal.require_role("admin")
    snapshot = await period_service.recompute(
        session,
        period=spec.period,
        platform_code=spec.platform_code,
        region_code=spec.region_code,
        note=spec.note,
        requested_by=principal.app_key,
        now=datetime.now(UTC),
        reporting_tz=settings.reporting_tz,
        raw_retention_days=settings.retention_metrics_days,
    )
    await session.commit()
    data = period_service.snapshot_out(snapshot)
    return JSONAnswer(envelope(request_id_of(request), data=data), status_code=201)
