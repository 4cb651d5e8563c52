"""Normalised records of the push interface (§4), shared by push and collectors.

A record model validates one record on its own (no database). Merge-patch semantics need to
know which fields a record carried, which pydantic keeps in ``model_fields_set``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.schemas.enums import (
    ActorType,
    AlarmStatus,
    AssetStatus,
    AssetType,
    CpuArch,
    Gb50174Class,
    IpKind,
    Lifecycle,
    LogCategory,
    NetworkZone,
    Outcome,
    PointType,
    Position,
    Virtualization,
)
from app.schemas.types import (
    BatchId,
    Bool,
    Count,
    Day,
    Float,
    LongText,
    NonNegFloat,
    NonNegInt,
    PlatformCode,
    RecordId,
    RegionCode,
    Str,
    StrictStr,
    Timestamp,
    Uscc,
)

_RECORD_CONFIG = ConfigDict(extra="ignore", frozen=False)


class Record(BaseModel):
    model_config = _RECORD_CONFIG
    #: fields that may not be sent as ``null`` (they are required, or merge-patch could not clear them)
    not_nullable: ClassVar[frozenset[str]] = frozenset()


class SnapshotInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, StringConstraints(min_length=1, max_length=128, strict=True)]
    seq: Annotated[int, Field(strict=True, ge=1, le=1_000_000)]
    last: Bool
    asset_types: list[AssetType] | None = None


class BatchEnvelope(BaseModel):
    """The batch around the records; ``records`` are validated one by one afterwards."""

    model_config = ConfigDict(extra="ignore")

    batch_id: BatchId
    platform_code: PlatformCode
    collected_at: Timestamp
    records: list[Any]
    snapshot: SnapshotInfo | None = None


class RoomRecord(Record):
    not_nullable = frozenset(
        {
            "room_code",
            "name",
            "datacenter_code",
            "datacenter_name",
            "region_code",
            "gb50174_class",
            "aisle_containment",
        }
    )

    room_code: RecordId
    name: Str
    datacenter_code: RecordId
    datacenter_name: Str
    region_code: RegionCode
    address: Annotated[str, StringConstraints(max_length=500, strict=True)] | None = None
    gb50174_class: Gb50174Class
    aisle_containment: Bool
    area_m2: NonNegFloat | None = None
    rack_count: Count | None = None
    design_pue: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=1, le=10)] | None = None
    it_capacity_kw: NonNegFloat | None = None


class IpAddress(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ip: Annotated[str, StringConstraints(min_length=2, max_length=64, strict=True)]
    kind: IpKind


class AssetRecord(Record):
    not_nullable = frozenset({"asset_id", "asset_type", "name", "status", "lifecycle", "network_zone"})

    asset_id: RecordId
    asset_type: AssetType
    name: Str
    status: AssetStatus
    lifecycle: Lifecycle | None = None
    network_zone: NetworkZone | None = None
    using_unit: Str | None = None
    using_unit_uscc: Uscc | None = None
    business_system: Str | None = None
    ip_addresses: Annotated[list[IpAddress], Field(max_length=256)] | None = None
    tags: (
        Annotated[
            dict[Annotated[str, StringConstraints(max_length=128, strict=True)], Str], Field(max_length=64)
        ]
        | None
    ) = None
    source_updated_at: Timestamp | None = None
    manufacturer: Str | None = None
    model: Str | None = None
    serial_number: Str | None = None
    asset_tag: Str | None = None
    room_code: RecordId | None = None
    rack_code: RecordId | None = None
    u_position: Annotated[int, Field(strict=True, ge=0, le=100)] | None = None
    u_height: Annotated[int, Field(strict=True, ge=0, le=100)] | None = None
    purchase_date: Day | None = None
    warranty_end: Day | None = None
    rated_power_w: NonNegFloat | None = None
    cpu_arch: CpuArch | None = None
    cpu_vendor: Str | None = None
    cpu_model: Str | None = None
    cpu_cores: Count | None = None
    vcpus: Count | None = None
    memory_mib: NonNegInt | None = None
    disk_gib: NonNegFloat | None = None
    os_name: Str | None = None
    os_version: Str | None = None
    virtualization: Virtualization | None = None
    host_asset_id: RecordId | None = None
    capacity_gib: NonNegFloat | None = None
    used_gib: NonNegFloat | None = None
    storage_protocol: Annotated[str, StringConstraints(max_length=64, strict=True)] | None = None
    product: Str | None = None
    vendor: Str | None = None
    version: Annotated[str, StringConstraints(max_length=128, strict=True)] | None = None
    is_domestic: Bool | None = None

    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class LogRecordIn(Record):
    not_nullable = frozenset(
        {
            "category",
            "type",
            "event_time",
            "severity",
            "action",
            "outcome",
            "message",
        }
    )

    log_id: RecordId | None = None
    category: LogCategory
    type: Annotated[str, StringConstraints(min_length=1, max_length=64, strict=True)]
    event_time: Timestamp
    severity: Annotated[int, Field(strict=True, ge=0, le=7)]
    actor: Str | None = None
    actor_type: ActorType | None = None
    source_ip: Annotated[str, StringConstraints(max_length=64, strict=True)] | None = None
    action: Annotated[str, StringConstraints(min_length=1, max_length=256, strict=True)]
    object_type: Annotated[str, StringConstraints(max_length=128, strict=True)] | None = None
    object_id: Str | None = None
    outcome: Outcome
    message: Annotated[str, StringConstraints(max_length=65536, strict=True)]
    asset_id: RecordId | None = None
    raw: StrictStr | None = None
    origin_hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$", strict=True)] | None = None

    @model_validator(mode="after")
    def _actor_required(self) -> LogRecordIn:
        # GB/T 22239: operation and audit records must name the user
        if self.category in {"operation", "audit"} and not self.actor:
            raise ValueError("操作日志和审计日志必须包含 actor (operation and audit logs need an actor)")
        return self


LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=64, strict=True)]
LabelValue = Annotated[str, StringConstraints(max_length=256, strict=True)]


class MetricRecord(Record):
    not_nullable = frozenset({"metric", "ts", "value"})

    metric: Annotated[str, StringConstraints(min_length=1, max_length=64, strict=True)]
    ts: Timestamp
    value: Float
    asset_id: RecordId | None = None
    labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=8)] | None = None


class EnvironmentRecord(Record):
    not_nullable = frozenset({"room_code", "point_code", "point_type", "ts", "value"})

    room_code: RecordId
    point_code: RecordId
    point_type: PointType
    ts: Timestamp
    value: Float
    rack_code: RecordId | None = None
    position: Position | None = None
    height_m: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=100)] | None = None
    interval_s: Annotated[int, Field(strict=True, ge=1, le=86400)] | None = None


class AlarmRecord(Record):
    not_nullable = frozenset({"alarm_id", "level", "status", "title", "first_at"})

    alarm_id: RecordId
    level: Annotated[int, Field(strict=True, ge=1, le=4)]
    status: AlarmStatus
    title: Annotated[str, StringConstraints(min_length=1, max_length=500, strict=True)]
    message: LongText | None = None
    asset_id: RecordId | None = None
    room_code: RecordId | None = None
    first_at: Timestamp
    last_at: Timestamp | None = None
    cleared_at: Timestamp | None = None


RECORD_MODELS: dict[str, type[Record]] = {
    "rooms": RoomRecord,
    "assets": AssetRecord,
    "logs": LogRecordIn,
    "metrics": MetricRecord,
    "environment": EnvironmentRecord,
    "alarms": AlarmRecord,
}


class ReceiptOut(BaseModel):
    """``data`` of a push answer and of ``GET /reports/batches/{batch_id}``."""

    batch_id: str = Field(description="批次号")
    platform_code: str = Field(description="云平台编码")
    kind: str = Field(description="数据类别")
    status: str = Field(description="批次状态：accepted 全部接收 / partial 部分接收 / rejected 全部拒绝")
    received: int = Field(description="收到的记录数")
    accepted: int = Field(description="接收的记录数")
    rejected: int = Field(description="拒绝的记录数")
    errors: list[dict[str, Any]] = Field(description="被拒绝记录的 {index, loc, message}")
    warnings: list[dict[str, Any]] = Field(description="提示：忽略的未知字段、被覆盖的重复记录等")
    received_at: datetime = Field(description="接收时间")
    snapshot: dict[str, Any] | None = Field(default=None, description="全量快照进度（仅资产）")
    quarantined: list[dict[str, Any]] | None = Field(
        default=None, description="隔离区中被拒绝记录的原文（仅查询回执时）"
    )
