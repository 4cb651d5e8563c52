"""The ``hub`` source: another Supervision Hub's northbound API (city hub → provincial hub)."""

from __future__ import annotations

from app.collectors.errors import SourceError


class PlatformRefused(SourceError):
    """``ctx.ensure_platform`` refuses a platform the source may not write into (§8): the
    collector leaves it alone (and keeps no sync token for it); the run's record says why."""
