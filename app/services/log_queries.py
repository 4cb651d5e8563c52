"""Reading logs back (§5): the log list, newest first, over a time window kept by its cursor.

Without ``from`` / ``to`` the window is the last 24 h, resolved when the first page is asked for.
Later pages must read the same window even though "now" has moved on, so the cursor carries the
resolved window: it wraps the keyset cursor (which binds every filter, the window included) in a
signed envelope holding the window's two bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadParameter
from app.models import Asset, LogRecord
from app.schemas.enums import LogCategory, Outcome
from app.schemas.ingest import LogRecordIn
from app.security.keys import ServerKey
from app.security.principal import Principal
from app.services.cursor import decode_cursor, encode_cursor
from app.services.ingest import asset_uid
from app.services.query import (
    Keyset,
    decode_times,
    echo_time,
    enum_filter,
    keyset_page,
    parse_time,
    scope_condition,
    time_window,
)

DEFAULT_WINDOW = timedelta(hours=24)
LOG_FIELDS = tuple(LogRecordIn.model_fields)
LOG_KEYSET = Keyset(
    "logs",
    (LogRecord.event_time, LogRecord.platform_code, LogRecord.seq),
    lambda row: [row[0].event_time, row[0].platform_code, row[0].seq],
    decode=decode_times(0),
    descending=True,
)
#: the resource name of the outer cursor that carries the resolved window
_WINDOW_RESOURCE = "logs.window"


@dataclass(frozen=True)
class LogFilters:
    """The §5 filters of the log list; ``from_`` / ``to`` (RFC 3339) bound ``event_time``, half-open."""

    platform_code: str | None = None
    region_code: str | None = None
    category: str | None = None
    type: str | None = None
    severity_max: int | None = None
    outcome: str | None = None
    actor: str | None = None
    q: str | None = None
    from_: str | None = None
    to: str | None = None
    #: an RFC 3339 time (logs received since) or a ``sync_token``: arrival order, per platform
    updated_since: str | None = None


def log_out(log: LogRecord, asset_known: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"platform_code": log.platform_code, "seq": log.seq}
    out.update({name: getattr(log, name) for name in LOG_FIELDS})
    out["hash"] = log.hash
    out["asset_uid"] = str(asset_uid(log.platform_code, log.asset_id)) if log.asset_id else None
    out["asset_known"] = asset_known
    out["received_at"] = log.received_at
    return out


async def log_statement(
    session: AsyncSession,
    principal: Principal,
    filters: LogFilters,
    start: datetime | None,
    end: datetime | None,
) -> tuple[Select[Any], dict[str, Any]]:
    """The logs (each with ``asset_known``) in ``[start, end)`` a list or an export with ``filters``
    holds, and the filters resolved (the window included) as a cursor binds them."""
    categories = enum_filter(filters.category, "category", get_args(LogCategory))
    outcomes = enum_filter(filters.outcome, "outcome", get_args(Outcome))
    given_from, given_to = parse_time(filters.from_, "from"), parse_time(filters.to, "to")
    scope = await scope_condition(
        session,
        principal,
        LogRecord.platform_code,
        platform_code=filters.platform_code,
        region_code=filters.region_code,
    )
    # whether the named asset exists, decided in the same statement (one PK probe per row)
    known = (
        exists()
        .where(Asset.platform_code == LogRecord.platform_code, Asset.asset_id == LogRecord.asset_id)
        .label("asset_known")
    )
    stmt = select(LogRecord).add_columns(known).where(scope)
    if start is not None:
        stmt = stmt.where(LogRecord.event_time >= start)
    if end is not None:
        stmt = stmt.where(LogRecord.event_time < end)
    if categories is not None:
        stmt = stmt.where(LogRecord.category.in_(categories))
    if outcomes is not None:
        stmt = stmt.where(LogRecord.outcome.in_(outcomes))
    if filters.type is not None:
        stmt = stmt.where(LogRecord.type == filters.type)
    if filters.severity_max is not None:
        stmt = stmt.where(LogRecord.severity <= filters.severity_max)
    if filters.actor is not None:
        stmt = stmt.where(LogRecord.actor == filters.actor)
    if filters.q:
        stmt = stmt.where(LogRecord.message.icontains(filters.q, autoescape=True))
    resolved = {
        "platform_code": filters.platform_code,
        "region_code": filters.region_code,
        "category": categories,
        "type": filters.type,
        "severity_max": filters.severity_max,
        "outcome": outcomes,
        "actor": filters.actor,
        "q": filters.q,
        # the bounds as given (a later page may repeat them or leave them out) and as resolved
        "given_from": given_from,
        "given_to": given_to,
        "from": start,
        "to": end,
    }
    return stmt, resolved


async def list_logs(
    session: AsyncSession,
    key: ServerKey,
    principal: Principal,
    filters: LogFilters,
    *,
    reporting_tz: str,
    limit: int,
    cursor: str | None,
    with_total: bool = False,
) -> dict[str, Any]:
    """Logs in scope within ``[from, to)`` ordered by ``event_time`` desc, then platform and seq desc;
    with ``updated_since``, in arrival order (see :func:`sync_logs`)."""
    if filters.updated_since is not None:
        return await sync_logs(session, key, principal, filters, reporting_tz=reporting_tz, limit=limit)
    inner_cursor: str | None = None
    if cursor:
        start, end, inner_cursor = _open_window(key, cursor)
    else:
        start, end = resolve_window(filters)
    stmt, resolved = await log_statement(session, principal, filters, start, end)
    rows, next_inner, total = await keyset_page(
        session,
        stmt,
        LOG_KEYSET,
        server_key=key,
        filters=resolved,
        limit=limit,
        cursor=inner_cursor,
        with_total=with_total,
        scalars=False,
    )
    page: dict[str, Any] = {
        "items": [log_row_out(row) for row in rows],
        "next_cursor": _wrap_window(key, start, end, next_inner) if next_inner else None,
        "from": echo_time(start, reporting_tz),
        "to": echo_time(end, reporting_tz),
    }
    if with_total:
        page["total"] = total
    return page


def resolve_window(filters: LogFilters) -> tuple[datetime, datetime]:
    """``[from, to)`` as given, a missing bound filled in from the 24 h default ending now."""
    start, end = time_window(filters.from_, filters.to, now=datetime.now(UTC), default_span=DEFAULT_WINDOW)
    if start is None or end is None:  # a default span always resolves both bounds
        raise BadParameter("时间范围无效 (invalid time range)")
    return start, end


def log_row_out(row: Any) -> dict[str, Any]:
    """A row of :func:`log_statement` (the log, ``asset_known``) as the list shows it."""
    log, known = row
    return log_out(log, bool(known))


def _wrap_window(key: ServerKey, start: datetime, end: datetime, inner: str) -> str:
    return encode_cursor(key, _WINDOW_RESOURCE, {}, [start.isoformat(), end.isoformat(), inner])


def _open_window(key: ServerKey, cursor: str) -> tuple[datetime, datetime, str]:
    """The window and the keyset cursor inside a log cursor; 400 ``1001`` when forged."""
    raw = decode_cursor(key, _WINDOW_RESOURCE, {}, cursor)
    try:
        start_text, end_text, inner = raw
        start, end = datetime.fromisoformat(start_text), datetime.fromisoformat(end_text)
    except (TypeError, ValueError):
        raise BadParameter("游标无效 (invalid cursor)") from None
    if not isinstance(inner, str) or start.tzinfo is None or end.tzinfo is None:
        raise BadParameter("游标无效 (invalid cursor)")
    return start, end, inner


async def sync_logs(
    session: AsyncSession,
    key: ServerKey,
    principal: Principal,
    filters: LogFilters,
    *,
    reporting_tz: str,
    limit: int,
) -> dict[str, Any]:
    """Logs in arrival order, ``(platform_code, seq)``, for incremental sync (§2.2).

    Each platform's ``seq`` is handed out under its chain head's row lock, so it follows commit
    order: once a sync has seen ``seq`` *s* of a platform, no log of that platform at or below *s*
    can still appear. The ``sync_token`` is therefore the last ``seq`` seen per platform, signed
    and bound to the filters; a time instead of a token starts with the logs received since then.
    """
    given_from, given_to = parse_time(filters.from_, "from"), parse_time(filters.to, "to")
    stmt, resolved = await log_statement(session, principal, filters, given_from, given_to)
    bound = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in resolved.items()}
    assert filters.updated_since is not None
    seen: dict[str, int] = {}
    since = filters.updated_since
    if since[:1].isdigit() and "T" in since[:11].upper():
        stmt = stmt.where(LogRecord.received_at >= parse_time(since, "updated_since"))
    else:
        try:
            raw = decode_cursor(key, "logs-sync", bound, since)
            seen = {str(p): int(s) for p, s in raw}
        except (BadParameter, TypeError, ValueError):
            raise BadParameter(
                "updated_since 应为 RFC 3339 时间或同一筛选条件下返回的 sync_token "
                "(updated_since must be a time with offset or a sync_token of the same filters)"
            ) from None
    if seen:
        stmt = stmt.where(
            or_(
                LogRecord.platform_code.not_in(sorted(seen)),
                *(and_(LogRecord.platform_code == p, LogRecord.seq > s) for p, s in sorted(seen.items())),
            )
        )
    result = await session.execute(stmt.order_by(LogRecord.platform_code, LogRecord.seq).limit(limit + 1))
    rows = list(result.all())
    more = len(rows) > limit
    rows = rows[:limit]
    for log, _known in rows:
        seen[log.platform_code] = max(seen.get(log.platform_code, 0), log.seq)
    token = encode_cursor(key, "logs-sync", bound, [[p, s] for p, s in sorted(seen.items())])
    return {
        "items": [log_row_out(row) for row in rows],
        "next_cursor": token if more else None,
        "sync_token": token,
        "from": echo_time(given_from, reporting_tz),
        "to": echo_time(given_to, reporting_tz),
    }
