"""Northbound items of another hub → the §4 records this hub ingests.

Records ignore fields they do not know (``asset_uid``, ``received_at``, ``seq``…), so an item is
mostly passed on as it is. Two things are not: a field the record may not receive as ``null`` is
left out rather than sent empty, and a log keeps the hash it had at its origin (``origin_hash``:
the first hub's, when it was already forwarded) so the chain of custody survives the hop.
"""

from __future__ import annotations

from typing import Any

from app.schemas.ingest import (
    AlarmRecord,
    AssetRecord,
    EnvironmentRecord,
    LogRecordIn,
    MetricRecord,
    Record,
    RoomRecord,
)

#: northbound list per kind, and the record class its items become
LISTS: dict[str, tuple[str, type[Record]]] = {
    "assets": ("/api/v1/assets", AssetRecord),
    "logs": ("/api/v1/logs", LogRecordIn),
    "metrics": ("/api/v1/metrics/samples", MetricRecord),
    "environment": ("/api/v1/environment/samples", EnvironmentRecord),
    "alarms": ("/api/v1/alarms", AlarmRecord),
}


def to_record(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    """One northbound item as a push record of ``kind``."""
    record_class = RoomRecord if kind == "rooms" else LISTS[kind][1]
    names = set(record_class.model_fields)
    record = {
        name: value
        for name, value in item.items()
        if name in names and not (value is None and name in record_class.not_nullable)
    }
    if kind == "logs":
        record["origin_hash"] = item.get("origin_hash") or item.get("hash")
    if kind in {"metrics"} and not record.get("asset_id"):
        record.pop("asset_id", None)
    return record
