"""Administration (§10) of what the hub concludes: warning rules (§7.8) and recomputes of closed
periods (§7.9). The admin only; every change is in the audit log like every request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, ok
from app.errors import JSONAnswer, envelope, request_id_of
from app.schemas.common import Envelope, ErrorEnvelope
from app.schemas.supervision_admin import RecomputeIn, WarningRulesPut
from app.services import periods as period_service
from app.services import warnings as warning_service

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404, 413, 422)
}


@router.get(
    "/warning-rules",
    response_model=Envelope[list[dict[str, Any]]],
    responses=_ERRORS,
    summary="预警规则 (warning rules)",
)
async def get_warning_rules(
    request: Request, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """Every warning rule, enabled or not, by ``rule_code``."""
    principal.require_role("admin")
    return ok(request, await warning_service.list_rules(session))


@router.put(
    "/warning-rules",
    response_model=Envelope[list[dict[str, Any]]],
    responses=_ERRORS,
    summary="修改预警规则 (create or replace warning rules)",
)
async def put_warning_rules(
    request: Request, change: WarningRulesPut, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """Each rule given is created or replaced as a whole (rules not named are kept); the next
    evaluation uses them. A disabled rule's open warnings clear after its hysteresis."""
    principal.require_role("admin")
    rules = await warning_service.put_rules(session, change.rules, now=datetime.now(UTC))
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
