"""数据导出 (§5): a list's rows as csv, ndjson or xlsx, streamed in constant memory."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from app.api.alarms import AlarmFiltersDep
from app.api.assets import AssetFiltersDep
from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, sessionmaker_of
from app.api.environment import SampleFiltersDep as EnvironmentSampleFiltersDep
from app.api.logs import LogFiltersDep
from app.api.metrics import SampleFiltersDep as MetricSampleFiltersDep
from app.schemas.common import ErrorEnvelope
from app.services import export as exporter
from app.services import export_sources as sources
from app.services.assets import asset_export_source

router = APIRouter(prefix="/api/v1/export", tags=["export"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404, 413)
}
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
ExportFormat = Annotated[
    Literal["csv", "ndjson", "xlsx"], Query(description="格式：csv（UTF-8 带 BOM）、ndjson、xlsx")
]
Headers = Annotated[Literal["en", "zh"], Query(description="列名：en 字段名 / zh 中文列名（csv、xlsx）")]


@router.get(
    "/assets",
    responses={**_ERRORS, 200: {"content": {m: {} for m in MEDIA.values()}, "description": "导出文件"}},
    summary="导出资产 (export assets)",
)
async def export_assets(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    filters: AssetFiltersDep,
    format: ExportFormat = "csv",
    headers: Headers = "en",
) -> StreamingResponse:
    """The asset list with the same filters as a file (413 ``1003`` past ``SUPHUB_EXPORT_MAX_ROWS`` rows)."""
    principal.require_kind("assets")
    source = await asset_export_source(session, principal, filters)
    return await _export(request, session, settings, source, format, headers)


@router.get(
    "/logs",
    responses={**_ERRORS, 200: {"content": {m: {} for m in MEDIA.values()}, "description": "导出文件"}},
    summary="导出日志 (export logs)",
)
async def export_logs(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    filters: LogFiltersDep,
    format: ExportFormat = "csv",
    headers: Headers = "en",
) -> StreamingResponse:
    """The log list with the same filters (default window: the last 24 h) as a file."""
    principal.require_kind("logs")
    source = await sources.log_source(session, principal, filters)
    return await _export(request, session, settings, source, format, headers)


@router.get(
    "/alarms",
    responses={**_ERRORS, 200: {"content": {m: {} for m in MEDIA.values()}, "description": "导出文件"}},
    summary="导出告警 (export alarms)",
)
async def export_alarms(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    filters: AlarmFiltersDep,
    format: ExportFormat = "csv",
    headers: Headers = "en",
) -> StreamingResponse:
    """The alarm list with the same filters as a file."""
    principal.require_kind("alarms")
    source = await sources.alarm_source(session, principal, filters)
    return await _export(request, session, settings, source, format, headers)


@router.get(
    "/metrics",
    responses={**_ERRORS, 200: {"content": {m: {} for m in MEDIA.values()}, "description": "导出文件"}},
    summary="导出监控数据 (export metric samples)",
)
async def export_metrics(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    filters: MetricSampleFiltersDep,
    format: ExportFormat = "csv",
    headers: Headers = "en",
) -> StreamingResponse:
    """The raw metric samples with the filters of ``/metrics/samples`` (default: the last 24 h) as a file."""
    principal.require_kind("metrics")
    source = await sources.metric_sample_source(session, principal, filters, settings.reporting_tz)
    return await _export(request, session, settings, source, format, headers)


@router.get(
    "/environment",
    responses={**_ERRORS, 200: {"content": {m: {} for m in MEDIA.values()}, "description": "导出文件"}},
    summary="导出机房环控数据 (export environment samples)",
)
async def export_environment(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    filters: EnvironmentSampleFiltersDep,
    format: ExportFormat = "csv",
    headers: Headers = "en",
) -> StreamingResponse:
    """The raw environment samples with the filters of ``/environment/samples`` as a file."""
    principal.require_kind("environment")
    source = await sources.environment_sample_source(session, principal, filters, settings.reporting_tz)
    return await _export(request, session, settings, source, format, headers)


async def _export(
    request: Request, session: Any, settings: Any, source: exporter.ExportSource, fmt: str, headers: str
) -> StreamingResponse:
    total = await exporter.count_rows(session, source, settings.export_max_rows)
    request.state.audit_records = total
    return await _stream(request, source, fmt, headers == "zh", settings.reporting_tz)


async def _stream(
    request: Request, source: exporter.ExportSource, fmt: str, chinese: bool, tz_name: str
) -> StreamingResponse:
    tz = ZoneInfo(tz_name)
    maker = sessionmaker_of(request)
    stamp = datetime.now(UTC).astimezone(tz).strftime("%Y%m%d-%H%M%S")
    disposition = {"Content-Disposition": f'attachment; filename="{source.name}-{stamp}.{fmt}"'}
    if fmt == "csv":
        body = exporter.csv_stream(maker, source, chinese_headers=chinese, tz=tz)
    elif fmt == "ndjson":
        body = exporter.ndjson_stream(maker, source)
    else:
        path = await exporter.xlsx_file(maker, source, chinese_headers=chinese, tz=tz)
        body = exporter.file_stream(path)
    return StreamingResponse(body, media_type=MEDIA[fmt], headers=disposition)
