"""The ingest service shared by push and collectors (§4, §8)."""

from app.services.ingest.kinds import asset_uid, series_id
from app.services.ingest.service import IngestOutcome, IngestService, quarantined_records

__all__ = ["IngestOutcome", "IngestService", "asset_uid", "quarantined_records", "series_id"]
