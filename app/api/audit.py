"""审计日志 (§9): the audit events and the check of their chain; admins only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, ok, server_key_of
from app.errors import BadParameter
from app.models import AuditEvent
from app.models.audit import ACTOR_MAX
from app.schemas.common import Envelope, ErrorEnvelope
from app.schemas.types import parse_rfc3339
from app.security.audit import verify_audit
from app.services.cursor import decode_cursor, encode_cursor

router = APIRouter(prefix="/api/v1/admin/audit", tags=["audit"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (400, 401, 403)}
EVENT_COLUMNS = (
    "seq",
    "at",
    "actor",
    "app_key",
    "role",
    "method",
    "path",
    "query",
    "status",
    "records",
    "request_id",
    "source_ip",
    "prev_hash",
    "hash",
)


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise BadParameter(f"{name}: {exc}") from None


@router.get("", response_model=Envelope[dict[str, Any]], responses=_ERRORS, summary="审计事件 (audit events)")
async def list_audit_events(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    app_key: Annotated[str | None, Query(description="按密钥编号筛选", max_length=64)] = None,
    actor: Annotated[
        str | None,
        Query(
            description="按操作者筛选：key:<app_key>、user:<用户名> 或 anonymous",
            max_length=ACTOR_MAX,
        ),
    ] = None,
    path: Annotated[str | None, Query(description="按路径前缀筛选", max_length=2048)] = None,
    from_: Annotated[str | None, Query(alias="from", description="起始时间（含），RFC 3339")] = None,
    to: Annotated[str | None, Query(description="结束时间（不含），RFC 3339")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="每页条数")] = 100,
    cursor: Annotated[str | None, Query(description="上一页的 next_cursor", max_length=2000)] = None,
) -> dict[str, Any]:
    """Audit events, newest first (by ``seq``), keyset-paged; filters: key, actor, path prefix, time."""
    principal.require_role("admin")
    start, end = _time(from_, "from"), _time(to, "to")
    filters = {"app_key": app_key, "actor": actor, "path": path, "from": from_, "to": to}
    stmt = select(AuditEvent)
    if app_key:
        stmt = stmt.where(AuditEvent.app_key == app_key)
    if actor:
        stmt = stmt.where(AuditEvent.actor == actor)
    if path:
        stmt = stmt.where(AuditEvent.path.startswith(path, autoescape=True))
    if start:
        stmt = stmt.where(AuditEvent.at >= start)
    if end:
        stmt = stmt.where(AuditEvent.at < end)
    key = server_key_of(request)
    if cursor:
        last = decode_cursor(key, "audit", filters, cursor)
        if len(last) != 1 or not isinstance(last[0], int):
            raise BadParameter("游标无效 (invalid cursor)")
        stmt = stmt.where(AuditEvent.seq < last[0])
    rows = list((await session.execute(stmt.order_by(AuditEvent.seq.desc()).limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    items = [{name: getattr(row, name) for name in EVENT_COLUMNS} for row in rows]
    next_cursor = encode_cursor(key, "audit", filters, [rows[-1].seq]) if more else None
    return ok(request, {"items": items, "next_cursor": next_cursor})


@router.get(
    "/verify",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="校验审计链 (verify the audit chain)",
)
async def verify_audit_chain(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    from_seq: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="起始序号")] = None,
    to_seq: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="结束序号")] = None,
) -> dict[str, Any]:
    """Recompute the chain, compare it with its head and the checkpoint file; name the first bad event."""
    principal.require_role("admin")
    await request.app.state.audit_writer.flush()  # the backlog too, when the store is back
    result = await verify_audit(session, settings.data_dir, server_key_of(request), from_seq, to_seq)
    return ok(request, result)
