"""数据导出 (§5): a list's rows as csv, ndjson or xlsx, streamed in constant memory."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.alarms import AlarmFiltersDep
from app.api.assets import AssetFiltersDep
from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, settings_of
from app.api.environment import SampleFiltersDep as EnvironmentSampleFiltersDep
from app.api.logs import LogFiltersDep
from app.api.metrics import SampleFiltersDep as MetricSampleFiltersDep
from app.db import create_export_sessionmaker
from app.errors import AppError, InternalError, describe_storage_error, request_id_of, storage_error
from app.schemas.common import ErrorEnvelope
from app.services import export as exporter
from app.services import export_sources as sources
from app.services.assets import asset_export_source

log = logging.getLogger(__name__)
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


def export_sessionmaker_of(request: Request) -> async_sessionmaker[AsyncSession]:
    """Sessions with the exports' statement time limit (``SUPHUB_EXPORT_STATEMENT_TIMEOUT_S``, §13)."""
    return create_export_sessionmaker(request.app.state.engine, settings_of(request))


async def _export(
    request: Request, session: Any, settings: Any, source: exporter.ExportSource, fmt: str, headers: str
) -> StreamingResponse:
    # the count reads every matching row: it gets the exports' time limit, not the request's
    async with export_sessionmaker_of(request)() as export_session:
        total = await exporter.count_rows(export_session, source, settings.export_max_rows)
    request.state.audit_records = total
    return await _stream(request, source, fmt, headers == "zh", settings.reporting_tz)


async def _stream(
    request: Request, source: exporter.ExportSource, fmt: str, chinese: bool, tz_name: str
) -> StreamingResponse:
    tz = ZoneInfo(tz_name)
    maker = export_sessionmaker_of(request)
    stamp = datetime.now(UTC).astimezone(tz).strftime("%Y%m%d-%H%M%S")
    disposition = {"Content-Disposition": f'attachment; filename="{source.name}-{stamp}.{fmt}"'}
    if fmt == "csv":
        body = exporter.csv_stream(maker, source, chinese_headers=chinese, tz=tz)
    elif fmt == "ndjson":
        body = exporter.ndjson_stream(maker, source)
    else:
        path = await exporter.xlsx_file(maker, source, chinese_headers=chinese, tz=tz)
        body = exporter.file_stream(path)
    if fmt in _MARKED:
        body = _ending_if_cut(body, fmt, request_id_of(request))
    return StreamingResponse(body, media_type=MEDIA[fmt], headers=disposition)


#: formats read as they arrive: a cut one ends with a line saying so (an xlsx is written whole
#: before its first byte is sent, so a failure there is still an ordinary error answer)
_MARKED = frozenset({"csv", "ndjson"})


async def _ending_if_cut(body: AsyncIterator[bytes], fmt: str, request_id: str) -> AsyncIterator[bytes]:
    """Once the first bytes are sent the status cannot change: an export whose later chunk fails
    (cancelled at the export time limit, database gone) ends with a line saying it is incomplete
    (§13), with the §2.1 code, rather than stopping where a reader would take the file as whole."""
    try:
        async for chunk in body:
            yield chunk
    except Exception as exc:
        error = storage_error(exc)
        if error is None:
            log.exception("export %s cut by an error", request_id)
            error = InternalError()
        else:
            log.warning("export %s cut: %s %s", request_id, error.code, describe_storage_error(exc))
        yield _incomplete_line(fmt, error, request_id)


def _incomplete_line(fmt: str, error: AppError, request_id: str) -> bytes:
    message = f"导出不完整 (export incomplete): {error.message}"
    if fmt == "ndjson":
        marker = {"incomplete": True, "code": error.code, "message": message, "request_id": request_id}
        return orjson.dumps(marker) + b"\n"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(["# 导出不完整", error.code, message, request_id])
    return buffer.getvalue().encode()
