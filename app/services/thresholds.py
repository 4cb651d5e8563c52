"""§6.6 threshold rows and §7 indicator policy, read and changed through §10."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import ErrorItem, ValidationFailed
from app.models import IndicatorPolicy, Platform, PointTypeDefinition, Room, ThresholdOverride
from app.schemas.supervision import IndicatorPolicyPut, ThresholdsPut
from app.services.environment_states import BOUNDS, mark_for_reevaluation

_ROW = (*BOUNDS, "dwell_s", "source")


def _out(row: Any, **extra: Any) -> dict[str, Any]:
    return {**extra, **{f: getattr(row, f) for f in _ROW}}


async def thresholds(session: AsyncSession) -> dict[str, Any]:
    defaults = (
        await session.execute(select(PointTypeDefinition).order_by(PointTypeDefinition.point_type))
    ).scalars()
    overrides = (
        await session.execute(
            select(ThresholdOverride).order_by(
                ThresholdOverride.platform_code, ThresholdOverride.room_code, ThresholdOverride.point_type
            )
        )
    ).scalars()
    return {
        "defaults": [
            _out(d, point_type=d.point_type, name_zh=d.name_zh, unit=d.unit, role=d.role) for d in defaults
        ],
        "overrides": [
            _out(o, platform_code=o.platform_code, room_code=o.room_code or None, point_type=o.point_type)
            | {"updated_at": o.updated_at}
            for o in overrides
        ],
    }


async def put_thresholds(session: AsyncSession, change: ThresholdsPut) -> dict[str, Any]:
    """Replace the named default rows and / or the whole set of overrides; the points they judge
    are marked for re-evaluation (the evaluation job re-judges their stored samples)."""
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
    return await thresholds(session)


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


def _same_shape(new: Any, old: Any) -> bool:
    if old is None or new is None:
        return True
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, int | float):
        return isinstance(new, int | float)
    return isinstance(new, type(old))


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
            elif not _same_shape(value, policy.params[name]):
                errors.append(
                    ErrorItem.of(
                        f"policies[{i}].params.{name}",
                        f"参数类型不符 (expected {type(policy.params[name]).__name__})",
                    )
                )
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
