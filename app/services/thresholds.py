"""§6.6 threshold rows and §7 indicator policy, read and changed through §10."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, get_args

from sqlalchemy import Integer, String, case, cast, delete, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import ErrorItem, ValidationFailed
from app.models import IndicatorPolicy, Platform, PointTypeDefinition, Room, ThresholdOverride
from app.models.base import UTCDateTime
from app.schemas.enums import PointType
from app.schemas.supervision import IndicatorPolicyPut, ThresholdsPut
from app.security.keys import ServerKey
from app.services.environment_states import BOUNDS, mark_for_reevaluation
from app.services.platforms import FRESHNESS_KINDS
from app.services.query import Keyset, enum_filter, keyset_page

_ROW = (*BOUNDS, "dwell_s", "source")


def _out(row: Any, **extra: Any) -> dict[str, Any]:
    return {**extra, **{f: getattr(row, f) for f in _ROW}}


THRESHOLD_SCOPES = ("default", "platform", "room")


def _threshold_rows() -> Any:
    """Every threshold row as one relation: the point types' defaults first (``rank`` 0), then
    the per-platform / per-room rows (``rank`` 1), each carrying the fields PUT takes."""
    text = String(200)
    defaults = select(
        literal(0, Integer).label("rank"),
        literal("default", String(16)).label("applies_to"),
        literal("", String(64)).label("platform_code"),
        literal("", String(128)).label("room_code"),
        PointTypeDefinition.point_type.label("point_type"),
        *(getattr(PointTypeDefinition, b).label(b) for b in BOUNDS),
        PointTypeDefinition.dwell_s.label("dwell_s"),
        PointTypeDefinition.source.label("source"),
        PointTypeDefinition.name_zh.label("name_zh"),
        PointTypeDefinition.unit.label("unit"),
        PointTypeDefinition.role.label("role"),
        cast(null(), UTCDateTime()).label("updated_at"),
    )
    overrides = select(
        literal(1, Integer).label("rank"),
        case(
            (ThresholdOverride.room_code == "", literal("platform", String(16))),
            else_=literal("room", String(16)),
        ).label("applies_to"),
        ThresholdOverride.platform_code.label("platform_code"),
        ThresholdOverride.room_code.label("room_code"),
        ThresholdOverride.point_type.label("point_type"),
        *(getattr(ThresholdOverride, b).label(b) for b in BOUNDS),
        ThresholdOverride.dwell_s.label("dwell_s"),
        ThresholdOverride.source.label("source"),
        cast(null(), text).label("name_zh"),
        cast(null(), text).label("unit"),
        cast(null(), text).label("role"),
        ThresholdOverride.updated_at.label("updated_at"),
    )
    return union_all(defaults, overrides).subquery("threshold_rows")


async def thresholds(
    session: AsyncSession,
    key: ServerKey,
    *,
    point_type: str | None = None,
    applies_to: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
    with_total: bool = False,
) -> dict[str, Any]:
    """Threshold rows, keyset-paged: defaults by ``point_type``, then overrides by
    ``platform_code, room_code`` (the platform-wide row first), ``point_type``. Each item has the
    fields of a PUT row: ``applies_to: default`` goes back in ``defaults``, the others in
    ``overrides`` (which PUT replaces whole, so read every page before changing one)."""
    rows = _threshold_rows()
    stmt = select(rows)
    types = enum_filter(point_type, "point_type", get_args(PointType))
    scopes = enum_filter(applies_to, "applies_to", THRESHOLD_SCOPES)
    if types is not None:
        stmt = stmt.where(rows.c.point_type.in_(types))
    if scopes is not None:
        stmt = stmt.where(rows.c.applies_to.in_(scopes))
    keyset = Keyset(
        "thresholds",
        (rows.c.rank, rows.c.platform_code, rows.c.room_code, rows.c.point_type),
        lambda r: [r.rank, r.platform_code, r.room_code, r.point_type],
    )
    found, next_cursor, total = await keyset_page(
        session,
        stmt,
        keyset,
        server_key=key,
        filters={"point_type": types, "applies_to": scopes},
        limit=limit,
        cursor=cursor,
        with_total=with_total,
        scalars=False,
    )
    items = [
        {
            "applies_to": r.applies_to,
            "platform_code": r.platform_code or None,
            "room_code": r.room_code or None,
            "point_type": r.point_type,
            **{f: getattr(r, f) for f in _ROW},
            "dwell_s": r.dwell_s or 0,  # no dwell time is 0, as the judging reads it (and PUT takes)
            "name_zh": r.name_zh,
            "unit": r.unit,
            "role": r.role,
            "updated_at": r.updated_at,
        }
        for r in found
    ]
    page: dict[str, Any] = {"items": items, "next_cursor": next_cursor}
    if with_total:
        page["total"] = total
    return page


async def put_thresholds(session: AsyncSession, key: ServerKey, change: ThresholdsPut) -> dict[str, Any]:
    """Replace the named default rows and / or the whole set of overrides; the points they judge
    are marked for re-evaluation (the evaluation job re-judges their stored samples). Answers the
    list's first page, as ``GET`` without filters would."""
    now = datetime.now(UTC)
    errors: list[ErrorItem] = []
    if change.overrides:
        platforms = set((await session.execute(select(Platform.platform_code))).scalars())
        rooms = {(p, r) for p, r in (await session.execute(select(Room.platform_code, Room.room_code))).all()}
        for i, o in enumerate(change.overrides):
            if o.platform_code not in platforms:
                errors.append(
                    ErrorItem.of(
                        f"overrides[{i}].platform_code", f"云平台 {o.platform_code} 不存在 (no such platform)"
                    )
                )
            elif o.room_code and (o.platform_code, o.room_code) not in rooms:
                errors.append(
                    ErrorItem.of(f"overrides[{i}].room_code", f"机房 {o.room_code} 不存在 (no such room)")
                )
    if errors:
        raise ValidationFailed(errors=errors)
    touched_types: set[str] = set()
    marks: list[tuple[str, str | None, str]] = []
    for row in change.defaults or []:
        definition = await session.get(PointTypeDefinition, row.point_type)
        if definition is None:  # every PointType is seeded; a deployment may have removed one
            raise ValidationFailed(
                errors=[ErrorItem.of("defaults", f"测点类型 {row.point_type} 未登记 (unknown point type)")]
            )
        for f in _ROW:
            setattr(definition, f, getattr(row, f))
        if any(getattr(row, b) is not None for b in BOUNDS) and definition.role == "informational":
            definition.role = "threshold"
        touched_types.add(row.point_type)
    if change.overrides is not None:
        old = (await session.execute(select(ThresholdOverride))).scalars().all()
        marks.extend((row.platform_code, row.room_code or None, row.point_type) for row in old)
        await session.execute(delete(ThresholdOverride))
        for o in change.overrides:
            session.add(
                ThresholdOverride(
                    platform_code=o.platform_code,
                    room_code=o.room_code or "",
                    point_type=o.point_type,
                    **{f: getattr(o, f) for f in _ROW},
                    updated_at=now,
                )
            )
            marks.append((o.platform_code, o.room_code, o.point_type))
    await session.flush()
    if touched_types:
        await mark_for_reevaluation(session, point_types=touched_types)
    for platform_code, room_code, point_type in sorted(set(marks), key=lambda m: (m[0], m[1] or "", m[2])):
        await mark_for_reevaluation(
            session, point_types=[point_type], platform_code=platform_code, room_code=room_code
        )
    return await thresholds(session, key)


async def indicator_policy(session: AsyncSession) -> list[dict[str, Any]]:
    rows = (await session.execute(select(IndicatorPolicy).order_by(IndicatorPolicy.code))).scalars()
    return [
        {
            "code": p.code,
            "name_zh": p.name_zh,
            "params": p.params,
            "source": p.source,
            "updated_at": p.updated_at,
        }
        for p in rows
    ]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _param_problem(name: str, new: Any, old: Any) -> str | None:
    """Why ``new`` cannot replace the seeded ``old`` value of parameter ``name`` (None: it can).

    Every value an indicator computes with is checked here, so a bad policy is a 422 now, not a
    500 on every later ``GET /indicators``."""
    if (
        name == "datacenters"
    ):  # PUE bounds per data centre: {"DC1": {"caution_above": 1.2, "fail_above": 1.25}}
        if not isinstance(new, dict):
            return "应为对象 {datacenter_code: {caution_above, fail_above}} (expected an object)"
        for dc, bounds in new.items():
            if not isinstance(bounds, dict) or not bounds or set(bounds) - {"caution_above", "fail_above"}:
                return f"{dc}: 只能含 caution_above / fail_above (only caution_above / fail_above)"
            if not all(_number(v) for v in bounds.values()):
                return f"{dc}: 限值应为数字 (bounds must be numbers)"
        return None
    if name == "default_intervals_s":
        if not isinstance(new, dict) or set(new) - set(FRESHNESS_KINDS):
            return f"应为对象，键为 {', '.join(FRESHNESS_KINDS)} (expected an object keyed by kind)"
        if not all(_number(v) and v > 0 for v in new.values()):
            return "间隔应为正数 (intervals must be positive numbers)"
        return None
    if name == "point_types":
        known = set(get_args(PointType))
        if not isinstance(new, list) or not all(isinstance(v, str) and v in known for v in new):
            return "应为测点类型列表 (expected a list of point types)"
        return None
    if old is None:  # an optional number, e.g. a target not set by default
        return None if new is None or _number(new) else "应为数字或 null (expected a number or null)"
    if _number(old):
        return None if _number(new) else "应为数字 (expected a number)"
    return None if isinstance(new, type(old)) else f"参数类型不符 (expected {type(old).__name__})"


async def put_indicator_policy(session: AsyncSession, change: IndicatorPolicyPut) -> list[dict[str, Any]]:
    """Each named policy's parameters are replaced; a parameter the hub does not know, or of
    another type than the seeded one, is refused (it would silently change nothing)."""
    errors: list[ErrorItem] = []
    now = datetime.now(UTC)
    for i, item in enumerate(change.policies):
        policy = await session.get(IndicatorPolicy, item.code)
        if policy is None:
            errors.append(ErrorItem.of(f"policies[{i}].code", f"指标 {item.code} 不存在 (unknown indicator)"))
            continue
        for name, value in item.params.items():
            if name not in policy.params:
                errors.append(
                    ErrorItem.of(f"policies[{i}].params.{name}", f"未知参数 {name} (unknown parameter)")
                )
            elif (problem := _param_problem(name, value, policy.params[name])) is not None:
                errors.append(ErrorItem.of(f"policies[{i}].params.{name}", problem))
        if not errors:
            policy.params = {**policy.params, **item.params}
            if item.source is not None:
                policy.source = item.source
            policy.updated_at = now
    if errors:
        raise ValidationFailed(errors=errors)
    await session.flush()
    return await indicator_policy(session)


async def policy_params(session: AsyncSession) -> dict[str, dict[str, Any]]:
    rows = (await session.execute(select(IndicatorPolicy))).scalars()
    return {p.code: dict(p.params) for p in rows}
