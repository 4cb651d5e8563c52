"""The ingest service shared by push and collectors (§4, §8)."""

from app.services.ingest.kinds import ASSET_UID_NAMESPACE, asset_uid, series_id
from app.services.ingest.service import IngestOutcome, IngestService, quarantined_records

__all__ = [
    "ASSET_UID_NAMESPACE",
    "IngestOutcome",
    "IngestService",
    "asset_uid",
    "quarantined_records",
    "series_id",
]
