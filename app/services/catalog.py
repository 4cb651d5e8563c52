"""The catalogue (§5, §6): everything an integrator needs to read the hub's codes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import DomesticListEntry, MetricDefinition, PointTypeDefinition
from app.schemas.enums import LABELS_ZH
from app.services.ingest import ASSET_UID_NAMESPACE

UNITS = {
    "memory": "MiB",
    "disk_volume": "GiB",
    "byte_rate": "B/s",
    "network_rate": "bit/s",
    "storage_bandwidth": "Gbit/s",
    "percent": "% (0–100)",
    "temperature": "℃",
    "device_power": "W",
    "room_power": "kW",
    "energy": "kWh",
}


async def catalog(session: AsyncSession) -> dict[str, Any]:
    """Enumerations with zh-CN labels, metric codes with units, point types with default thresholds."""
    metrics = (
        await session.execute(
            select(MetricDefinition).where(MetricDefinition.enabled.is_(True)).order_by(MetricDefinition.code)
        )
    ).scalars()
    points = (
        await session.execute(select(PointTypeDefinition).order_by(PointTypeDefinition.point_type))
    ).scalars()
    lists = (
        await session.execute(
            select(DomesticListEntry).order_by(DomesticListEntry.list_code, DomesticListEntry.entry)
        )
    ).scalars()
    domestic: dict[str, list[dict[str, Any]]] = {}
    for entry in lists:
        domestic.setdefault(entry.list_code, []).append({"entry": entry.entry, "aliases": entry.aliases})
    return {
        "enumerations": {
            name: [{"code": code, "label_zh": label} for code, label in labels.items()]
            for name, labels in LABELS_ZH.items()
        },
        "metrics": [
            {
                "code": m.code,
                "name_zh": m.name_zh,
                "unit": m.unit,
                "kind": m.kind,
                "default_interval_s": m.default_interval_s,
                "description": m.description,
            }
            for m in metrics
        ],
        "point_types": [
            {
                "point_type": p.point_type,
                "name_zh": p.name_zh,
                "unit": p.unit,
                "role": p.role,
                "thresholds": {
                    "lower_critical": p.lower_critical,
                    "lower_caution": p.lower_caution,
                    "upper_caution": p.upper_caution,
                    "upper_critical": p.upper_critical,
                    "dwell_s": p.dwell_s,
                },
                "source": p.source,
            }
            for p in points
        ],
        "domestic_lists": domestic,
        "units": UNITS,
        "asset_uid": {
            "algorithm": "uuid5",
            "namespace": str(ASSET_UID_NAMESPACE),
            "name": "{platform_code}|{asset_id}",
        },
    }
