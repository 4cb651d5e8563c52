"""The collector contract (§8, Telegraf / OpenTelemetry style).

A collector is built from its source's configuration and does no I/O until :meth:`Collector.run`.
It reads from its system through ``ctx.http`` (one client per run, timeouts and retries built in)
and hands §4 records to ``ctx.emit`` page by page; the runner turns each page into a batch for
the same ingest service a push goes through (batch id ``src:{source_id}:{run}:{page}``). A record
the collector cannot map is skipped with ``ctx.skip`` (logged and counted); anything raised fails
the run — and a failed full run retires nothing, because its snapshot never completes.

Exceptions a collector may raise on purpose (all fail the run with their message):

    SourceError              the source cannot be used (configuration, credentials)
    ├── SourceUnavailable    transport failure, timeout, 429 / 503 after every retry
    ├── SourceHTTPError      another non-2xx answer
    └── SourceDataError      an answer that is not what the API documents (malformed JSON…)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from app.collectors.errors import SourceDataError, SourceError, SourceHTTPError, SourceUnavailable
from app.collectors.http import SourceHTTP

__all__ = [
    "Collector",
    "RunContext",
    "RunMode",
    "SourceConfig",
    "SourceDataError",
    "SourceError",
    "SourceHTTPError",
    "SourceUnavailable",
]

RunMode = Literal["full", "incremental"]


@dataclass(frozen=True)
class SourceConfig:
    """What a collector is built from: the stored source with its credentials resolved."""

    source_id: str
    #: the platform records belong to unless a page names another (``None`` for a ``hub`` source)
    platform_code: str | None
    type: str
    base_url: str
    interval_s: int
    kinds: tuple[str, ...]
    options: dict[str, Any]
    credentials: dict[str, str] = field(repr=False)


Emit = Callable[[str, list[dict[str, Any]], "str | None"], Awaitable[None]]
EnsurePlatform = Callable[[dict[str, Any]], Awaitable[bool]]


@dataclass
class RunContext:
    """One run as a collector sees it."""

    run_id: str
    mode: RunMode
    started_at: datetime
    http: SourceHTTP
    #: what the last successful run left (a window end, sync tokens…); a collector updates it and
    #: the runner stores it only if the run succeeds
    state: dict[str, Any]
    _emit: Emit = field(repr=False)
    _ensure_platform: EnsurePlatform | None = field(default=None, repr=False)
    skipped: int = 0
    skip_reasons: list[str] = field(default_factory=list)

    async def emit(
        self, kind: str, records: list[dict[str, Any]], *, platform_code: str | None = None
    ) -> None:
        """Ingest one page of §4 records of ``kind`` (for another platform only where the type allows)."""
        if records:
            await self._emit(kind, records, platform_code)

    async def ensure_platform(self, platform: dict[str, Any]) -> bool:
        """Register a mirrored platform (the ``hub`` type) if it is new here; ``True`` when created."""
        if self._ensure_platform is None:
            raise SourceError("此类型的采集源不能登记云平台 (this source type cannot register platforms)")
        return await self._ensure_platform(platform)

    def skip(self, reason: str) -> None:
        """A record that could not be mapped: counted, and the first few reasons kept for the run."""
        self.skipped += 1
        if len(self.skip_reasons) < 20:
            self.skip_reasons.append(reason)


class Collector(ABC):
    """One source type. Subclasses set ``type`` and implement :meth:`run`."""

    type: ClassVar[str]
    #: the kinds this type can produce (a source's ``kinds`` must be among them)
    produces: ClassVar[tuple[str, ...]]
    #: whether records may belong to platforms other than the source's own (the ``hub`` type)
    mirrors_platforms: ClassVar[bool] = False

    def __init__(self, config: SourceConfig) -> None:
        self.config = config

    @classmethod
    def check_options(cls, options: dict[str, Any], interval_s: int) -> None:
        """Raise :class:`SourceError` for ``options`` this type cannot use (called when a source
        is saved, so a mistake is a 422 then rather than a failed run later)."""
        return None

    @classmethod
    def _probe_config(cls, options: dict[str, Any], interval_s: int) -> SourceConfig:
        """A configuration carrying only ``options``, for option checks that need one."""
        return SourceConfig(
            "-", None, cls.type, "http://check.invalid", interval_s, cls.produces, options, {}
        )

    def snapshot_asset_types(self) -> list[str] | None:
        """The asset types a full run reports completely (others are never retired by it)."""
        return None

    @abstractmethod
    async def run(self, ctx: RunContext) -> None:
        """Fetch from the source and ``ctx.emit`` pages; raise to fail the run."""
