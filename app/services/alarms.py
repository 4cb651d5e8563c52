"""Reading alarms back (§5): the alarm list, newest first, with whether each asset is known."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Alarm, Asset
from app.schemas.enums import AlarmStatus
from app.schemas.ingest import AlarmRecord
from app.security.keys import ServerKey
from app.security.principal import Principal
from app.services.changes import SyncSpec, parse_updated_since, sync_page
from app.services.ingest import asset_uid
from app.services.query import (
    Keyset,
    decode_times,
    echo_time,
    enum_filter,
    keyset_page,
    scope_condition,
    time_window,
)

ALARM_FIELDS = tuple(AlarmRecord.model_fields)
ALARM_KEYSET = Keyset(
    "alarms",
    (Alarm.first_at, Alarm.platform_code, Alarm.alarm_id),
    lambda row: [row[0].first_at, row[0].platform_code, row[0].alarm_id],
    decode=decode_times(0),
    descending=True,
)


@dataclass(frozen=True)
class AlarmFilters:
    """The §5 filters of the alarm list; ``from_`` / ``to`` (RFC 3339) bound ``first_at``, half-open."""

    platform_code: str | None = None
    region_code: str | None = None
    status: str | None = None
    level_max: int | None = None
    from_: str | None = None
    to: str | None = None
    #: an RFC 3339 time or a ``sync_token``: switches the list to change order
    updated_since: str | None = None


ALARM_SYNC = SyncSpec(
    "alarms-sync", "alarms", Alarm.change_seq, (Alarm.platform_code, Alarm.alarm_id), Alarm.updated_at
)


def alarm_out(alarm: Alarm, asset_known: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"platform_code": alarm.platform_code}
    out.update({name: getattr(alarm, name) for name in ALARM_FIELDS})
    out["asset_uid"] = str(asset_uid(alarm.platform_code, alarm.asset_id)) if alarm.asset_id else None
    out["asset_known"] = asset_known
    out["created_at"] = alarm.created_at
    out["updated_at"] = alarm.updated_at
    return out


async def alarm_statement(
    session: AsyncSession, principal: Principal, filters: AlarmFilters
) -> tuple[Select[Any], dict[str, Any]]:
    """The alarms (each with ``asset_known``) a list or an export with ``filters`` holds, and the
    filters resolved (status codes, ``from`` / ``to`` in UTC) as a cursor binds them."""
    statuses = enum_filter(filters.status, "status", get_args(AlarmStatus))
    start, end = time_window(filters.from_, filters.to, now=datetime.now(UTC), default_span=None)
    scope = await scope_condition(
        session,
        principal,
        Alarm.platform_code,
        platform_code=filters.platform_code,
        region_code=filters.region_code,
    )
    # whether the named asset exists, decided in the same statement (one PK probe per row)
    known = (
        exists()
        .where(Asset.platform_code == Alarm.platform_code, Asset.asset_id == Alarm.asset_id)
        .label("asset_known")
    )
    stmt = select(Alarm).add_columns(known).where(scope)
    if statuses is not None:
        stmt = stmt.where(Alarm.status.in_(statuses))
    if filters.level_max is not None:
        stmt = stmt.where(Alarm.level <= filters.level_max)
    if start is not None:
        stmt = stmt.where(Alarm.first_at >= start)
    if end is not None:
        stmt = stmt.where(Alarm.first_at < end)
    resolved = {
        "platform_code": filters.platform_code,
        "region_code": filters.region_code,
        "status": statuses,
        "level_max": filters.level_max,
        "from": start,
        "to": end,
    }
    return stmt, resolved


async def list_alarms(
    session: AsyncSession,
    key: ServerKey,
    principal: Principal,
    filters: AlarmFilters,
    *,
    reporting_tz: str,
    limit: int,
    cursor: str | None,
    with_total: bool = False,
) -> dict[str, Any]:
    """Alarms in scope ordered by ``first_at`` desc, then platform and id (desc), keyset-paged;
    with ``updated_since``, in change order with a ``sync_token``."""
    stmt, resolved = await alarm_statement(session, principal, filters)
    if filters.updated_since is not None:
        bound = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in resolved.items()}
        start = parse_updated_since(key, ALARM_SYNC, bound, filters.updated_since)
        rows, token, more = await sync_page(
            session,
            stmt,
            ALARM_SYNC,
            start,
            server_key=key,
            filters=bound,
            limit=limit,
            key_of=lambda row: [row[0].change_seq, row[0].platform_code, row[0].alarm_id],
            scalars=False,
        )
        return {
            "items": [alarm_row_out(row) for row in rows],
            "next_cursor": token if more else None,
            "sync_token": token,
            "from": echo_time(resolved["from"], reporting_tz),
            "to": echo_time(resolved["to"], reporting_tz),
        }
    rows, next_cursor, total = await keyset_page(
        session,
        stmt,
        ALARM_KEYSET,
        server_key=key,
        filters=resolved,
        limit=limit,
        cursor=cursor,
        with_total=with_total,
        scalars=False,
    )
    page: dict[str, Any] = {
        "items": [alarm_row_out(row) for row in rows],
        "next_cursor": next_cursor,
        "from": echo_time(resolved["from"], reporting_tz),
        "to": echo_time(resolved["to"], reporting_tz),
    }
    if with_total:
        page["total"] = total
    return page


def alarm_row_out(row: Any) -> dict[str, Any]:
    """A row of :func:`alarm_statement` (the alarm, ``asset_known``) as the list shows it."""
    alarm, known = row
    return alarm_out(alarm, bool(known))
