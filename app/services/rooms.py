"""Reading rooms back (§5): rooms in scope, each with the latest sample of each of its points."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import and_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import EnvironmentPoint, EnvironmentSample, Room
from app.schemas.ingest import RoomRecord
from app.security.keys import ServerKey
from app.security.principal import Principal
from app.services.query import Keyset, keyset_page, scope_condition

ROOM_FIELDS = tuple(RoomRecord.model_fields)
ROOM_KEYSET = Keyset("rooms", (Room.platform_code, Room.room_code), lambda r: [r.platform_code, r.room_code])


@dataclass(frozen=True)
class RoomFilters:
    """The §5 filters of the room list (``region_code`` is the platform's region)."""

    platform_code: str | None = None
    region_code: str | None = None


def room_out(room: Room, points: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"platform_code": room.platform_code}
    out.update({name: getattr(room, name) for name in ROOM_FIELDS})
    out["created_at"] = room.created_at
    out["updated_at"] = room.updated_at
    out["points"] = points
    return out


async def latest_points(
    session: AsyncSession, rooms: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every point of ``rooms`` with its latest sample (or nulls), in one query for all of them.

    Each point keeps the time of its newest sample (``last_ts``, kept by ingest): the latest
    sample is one primary-key probe of the one time partition holding it.
    """
    if not rooms:
        return {}
    point, sample = EnvironmentPoint, EnvironmentSample
    stmt = (
        select(point, sample.ts, sample.value, sample.state)
        .outerjoin(
            sample,
            and_(
                sample.platform_code == point.platform_code,
                sample.room_code == point.room_code,
                sample.point_code == point.point_code,
                sample.ts == point.last_ts,
            ),
        )
        .where(
            # the plain IN lets SQLite seek by platform; the row-value IN picks the page's rooms
            point.platform_code.in_(sorted({platform for platform, _ in rooms})),
            tuple_(point.platform_code, point.room_code).in_(sorted(set(rooms))),
        )
        .order_by(point.platform_code, point.room_code, point.point_code)
    )
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p, ts, value, state in await session.execute(stmt):
        out.setdefault((p.platform_code, p.room_code), []).append(
            {
                "point_code": p.point_code,
                "point_type": p.point_type,
                "rack_code": p.rack_code,
                "position": p.position,
                "derived_from": p.derived_from,
                "ts": ts,
                "value": value,
                "state": state,
            }
        )
    return out


async def list_rooms(
    session: AsyncSession,
    key: ServerKey,
    principal: Principal,
    filters: RoomFilters,
    *,
    limit: int,
    cursor: str | None,
    with_total: bool = False,
) -> dict[str, Any]:
    """Rooms in scope ordered by (platform_code, room_code), with their points' latest samples."""
    scope = await scope_condition(
        session,
        principal,
        Room.platform_code,
        platform_code=filters.platform_code,
        region_code=filters.region_code,
    )
    rows, next_cursor, total = await keyset_page(
        session,
        select(Room).where(scope),
        ROOM_KEYSET,
        server_key=key,
        filters=asdict(filters),
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    points = await latest_points(session, [(r.platform_code, r.room_code) for r in rows])
    page: dict[str, Any] = {
        "items": [room_out(r, points.get((r.platform_code, r.room_code), [])) for r in rows],
        "next_cursor": next_cursor,
    }
    if with_total:
        page["total"] = total
    return page
