"""Shared pieces of one batch in flight: the items, their errors and the write context."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.errors import ErrorItem
from app.schemas.ingest import SnapshotInfo

#: at most this many warnings are listed one by one; the rest are summarised
MAX_WARNINGS = 1000


@dataclass
class Item:
    """One record of the batch: its position, raw JSON and (when valid) its parsed model."""

    index: int
    raw: Any
    #: the kind's record model (``RoomRecord``, ``AssetRecord``…) once valid
    record: Any = None
    errors: list[ErrorItem] = field(default_factory=list)
    #: the kind's key (``KindHandler.key``), set when the batch is de-duplicated; the write
    #: receives only de-duplicated items
    key: tuple[Any, ...] = ()

    @property
    def ok(self) -> bool:
        return self.record is not None and not self.errors

    def reject(self, loc: str, message: str) -> None:
        self.errors.append(ErrorItem.of(f"records[{self.index}]{loc}", message, self.index))

    def fields(self) -> dict[str, Any]:
        """The fields the record carried (merge-patch: absent means "keep")."""
        assert self.record is not None
        return {name: getattr(self.record, name) for name in self.record.model_fields_set}


@dataclass
class BatchContext:
    """What every kind handler needs to write one batch."""

    kind: str
    platform_code: str
    platform_network_zone: str
    batch_id: str
    reporter: str
    collected_at: datetime
    now: datetime
    snapshot: SnapshotInfo | None
    warnings: list[ErrorItem] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    suppressed_warnings: int = 0

    def warn(self, loc: str, message: str, index: int | None = None) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(ErrorItem.of(loc, message, index))
        else:
            self.suppressed_warnings += 1

    def final_warnings(self) -> list[ErrorItem]:
        if not self.suppressed_warnings:
            return list(self.warnings)
        return [
            *self.warnings,
            ErrorItem.of(
                "records",
                f"另有 {self.suppressed_warnings} 条提示未列出 "
                f"({self.suppressed_warnings} more warnings not listed)",
            ),
        ]
