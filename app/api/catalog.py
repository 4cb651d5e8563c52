"""目录 (§5): enumerations, metric codes and point types, for every authenticated client."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import CurrentPrincipal, SessionDep, ok
from app.schemas.common import Envelope, ErrorEnvelope
from app.services.catalog import catalog

router = APIRouter(prefix="/api/v1", tags=["catalog"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (401,)}


@router.get(
    "/catalog", response_model=Envelope[dict[str, Any]], responses=_ERRORS, summary="数据目录 (catalogue)"
)
async def get_catalog(request: Request, principal: CurrentPrincipal, session: SessionDep) -> dict[str, Any]:
    """Every enumeration with its zh-CN label, the metric catalogue with units, environment point
    types with their default thresholds and sources, the domestic lists and the asset_uid namespace."""
    return ok(request, await catalog(session))
