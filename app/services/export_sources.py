"""The exports of the lists other than assets: the same statements, scope and order as the lists."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.security.principal import Principal
from app.services import alarms as alarm_service
from app.services import environment as environment_service
from app.services import log_queries
from app.services import metrics as metric_service
from app.services.buckets import resolved_window
from app.services.export import Column, ExportSource

COMMON = {
    "platform_code": "云平台编码",
    "asset_id": "资产ID",
    "asset_uid": "资产统一编号",
    "asset_known": "资产已上报",
    "received_at": "接收时间",
}
LOG_COLUMNS = {
    "platform_code": COMMON["platform_code"],
    "seq": "序号",
    "log_id": "日志ID",
    "category": "日志类别",
    "type": "事件类型",
    "event_time": "事件时间",
    "severity": "级别",
    "actor": "操作者",
    "actor_type": "操作者类型",
    "source_ip": "来源IP",
    "action": "操作",
    "object_type": "对象类型",
    "object_id": "对象ID",
    "outcome": "结果",
    "message": "内容",
    "asset_id": COMMON["asset_id"],
    "asset_uid": COMMON["asset_uid"],
    "asset_known": COMMON["asset_known"],
    "raw": "原始日志",
    "origin_hash": "源哈希",
    "hash": "哈希",
    "received_at": COMMON["received_at"],
}
ALARM_COLUMNS = {
    "platform_code": COMMON["platform_code"],
    "alarm_id": "告警ID",
    "level": "级别",
    "status": "状态",
    "title": "标题",
    "message": "内容",
    "asset_id": COMMON["asset_id"],
    "asset_uid": COMMON["asset_uid"],
    "asset_known": COMMON["asset_known"],
    "room_code": "机房编码",
    "first_at": "首次发生时间",
    "last_at": "最近发生时间",
    "cleared_at": "清除时间",
    "created_at": "接收时间",
    "updated_at": "更新时间",
}
METRIC_COLUMNS = {
    "platform_code": COMMON["platform_code"],
    "metric": "指标编码",
    "asset_id": COMMON["asset_id"],
    "asset_uid": COMMON["asset_uid"],
    "labels": "标签",
    "ts": "时间",
    "value": "数值",
    "received_at": COMMON["received_at"],
}
ENVIRONMENT_COLUMNS = {
    "platform_code": COMMON["platform_code"],
    "room_code": "机房编码",
    "point_code": "测点编码",
    "point_type": "测点类型",
    "rack_code": "机柜编码",
    "position": "位置",
    "height_m": "高度（m）",
    "ts": "时间",
    "value": "数值",
    "state": "状态",
    "evaluated_at": "判定时间",
    "received_at": COMMON["received_at"],
}


def _columns(spec: dict[str, str]) -> list[Column]:
    return [Column(key, zh) for key, zh in spec.items()]


async def log_source(
    session: AsyncSession, principal: Principal, filters: log_queries.LogFilters
) -> ExportSource:
    start, end = log_queries.resolve_window(filters)
    stmt, _ = await log_queries.log_statement(session, principal, filters, start, end)
    return ExportSource(
        "logs", stmt, log_queries.LOG_KEYSET, _columns(LOG_COLUMNS), log_queries.log_row_out, False
    )


async def alarm_source(
    session: AsyncSession, principal: Principal, filters: alarm_service.AlarmFilters
) -> ExportSource:
    stmt, _ = await alarm_service.alarm_statement(session, principal, filters)
    return ExportSource(
        "alarms",
        stmt,
        alarm_service.ALARM_KEYSET,
        _columns(ALARM_COLUMNS),
        alarm_service.alarm_row_out,
        False,
    )


async def metric_sample_source(
    session: AsyncSession, principal: Principal, filters: metric_service.SampleFilters, tz_name: str
) -> ExportSource:
    start, end = resolved_window(
        filters.from_, filters.to, now=datetime.now(UTC), default_span=metric_service.DEFAULT_SPAN
    )
    stmt = await metric_service.samples_statement(session, principal, filters, start, end)
    return ExportSource(
        "metrics",
        stmt,
        metric_service.SAMPLE_KEYSET,
        _columns(METRIC_COLUMNS),
        lambda row: metric_service.sample_out(row, tz_name),
        False,
    )


async def environment_sample_source(
    session: AsyncSession, principal: Principal, filters: environment_service.SampleFilters, tz_name: str
) -> ExportSource:
    start, end = resolved_window(
        filters.from_, filters.to, now=datetime.now(UTC), default_span=metric_service.DEFAULT_SPAN
    )
    stmt = await environment_service.samples_statement(session, principal, filters, start, end)
    return ExportSource(
        "environment",
        stmt,
        environment_service.SAMPLE_KEYSET,
        _columns(ENVIRONMENT_COLUMNS),
        lambda row: environment_service.sample_out(row, tz_name),
        False,
    )
