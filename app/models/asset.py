"""Assets (§4.2), their field-level history and the progress of complete snapshots."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Float,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONDoc, utcnow


class Asset(Base):
    __tablename__ = "asset"
    __table_args__ = (
        UniqueConstraint("asset_uid", "platform_code"),
        Index("ix_asset_platform_updated", "platform_code", "updated_at"),
        Index("ix_asset_change", "change_seq", "platform_code", "asset_id"),
        # free-text filters of §5 that can name a handful of rows among millions; the list order
        # follows in the index. ``q`` (name or IP contains) has trigram indexes on PostgreSQL,
        # made by migration 0009 only (see ``PG_ONLY_INDEXES``).
        Index("ix_asset_business_system", "business_system", "platform_code", "asset_id"),
        Index("ix_asset_using_unit", "using_unit", "platform_code", "asset_id"),
        # ``updated_since`` given as a time (a first sync): the changed rows, not every row
        Index("ix_asset_updated", "updated_at"),
    )

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    asset_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    asset_uid: Mapped[uuid.UUID] = mapped_column(Uuid)
    asset_type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    lifecycle: Mapped[str] = mapped_column(String(16))
    network_zone: Mapped[str] = mapped_column(String(32))
    using_unit: Mapped[str | None] = mapped_column(String(256))
    using_unit_uscc: Mapped[str | None] = mapped_column(String(18))
    business_system: Mapped[str | None] = mapped_column(String(256))
    ip_addresses: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONDoc)
    tags: Mapped[dict[str, str] | None] = mapped_column(JSONDoc)
    source_updated_at: Mapped[datetime | None] = mapped_column()
    # hardware
    manufacturer: Mapped[str | None] = mapped_column(String(256))
    model: Mapped[str | None] = mapped_column(String(256))
    serial_number: Mapped[str | None] = mapped_column(String(256))
    asset_tag: Mapped[str | None] = mapped_column(String(256))
    room_code: Mapped[str | None] = mapped_column(String(128))
    rack_code: Mapped[str | None] = mapped_column(String(128))
    u_position: Mapped[int | None] = mapped_column(Integer)
    u_height: Mapped[int | None] = mapped_column(Integer)
    purchase_date: Mapped[date | None] = mapped_column(Date)
    warranty_end: Mapped[date | None] = mapped_column(Date)
    rated_power_w: Mapped[float | None] = mapped_column(Float)
    # compute
    cpu_arch: Mapped[str | None] = mapped_column(String(16))
    cpu_vendor: Mapped[str | None] = mapped_column(String(256))
    cpu_model: Mapped[str | None] = mapped_column(String(256))
    cpu_cores: Mapped[int | None] = mapped_column(Integer)
    vcpus: Mapped[int | None] = mapped_column(Integer)
    memory_mib: Mapped[int | None] = mapped_column(BigInteger)
    disk_gib: Mapped[float | None] = mapped_column(Float)
    os_name: Mapped[str | None] = mapped_column(String(256))
    os_version: Mapped[str | None] = mapped_column(String(256))
    virtualization: Mapped[str | None] = mapped_column(String(16))
    host_asset_id: Mapped[str | None] = mapped_column(String(128))
    # storage
    capacity_gib: Mapped[float | None] = mapped_column(Float)
    used_gib: Mapped[float | None] = mapped_column(Float)
    storage_protocol: Mapped[str | None] = mapped_column(String(64))
    # software / devices
    product: Mapped[str | None] = mapped_column(String(256))
    vendor: Mapped[str | None] = mapped_column(String(256))
    version: Mapped[str | None] = mapped_column(String(128))
    # domestic: the reported flag as sent, and the hub's verdicts
    is_domestic_reported: Mapped[bool | None] = mapped_column(Boolean)
    is_domestic: Mapped[bool | None] = mapped_column(Boolean)
    domestic: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    # bookkeeping
    reporter: Mapped[str] = mapped_column(String(200))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    retired_by_snapshot: Mapped[str | None] = mapped_column(String(200))
    last_batch_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: position in commit order (see app.services.changes); null only inside the writing transaction
    change_seq: Mapped[int | None] = mapped_column(BigInteger)


class AssetChange(Base):
    """One field of one asset changed by one revision: old → new, and who sent it."""

    __tablename__ = "asset_change"

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    asset_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    old_value: Mapped[Any] = mapped_column(JSONDoc, nullable=True)
    new_value: Mapped[Any] = mapped_column(JSONDoc, nullable=True)
    changed_at: Mapped[datetime] = mapped_column()
    batch_id: Mapped[str | None] = mapped_column(String(200))
    reporter: Mapped[str] = mapped_column(String(200))


class AssetSnapshot(Base):
    """Which pages of a complete snapshot have arrived (§4 full sync)."""

    __tablename__ = "asset_snapshot"

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    reporter: Mapped[str] = mapped_column(String(200), primary_key=True)
    snapshot_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    asset_types: Mapped[list[str] | None] = mapped_column(JSONDoc)
    seqs: Mapped[list[int]] = mapped_column(JSONDoc, default=list)
    last_seq: Mapped[int | None] = mapped_column(Integer)
    completed_at: Mapped[datetime | None] = mapped_column()
    retired: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AssetSnapshotMember(Base):
    """An asset present in a snapshot still being received; removed once the snapshot completes."""

    __tablename__ = "asset_snapshot_member"

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    reporter: Mapped[str] = mapped_column(String(200), primary_key=True)
    snapshot_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    asset_id: Mapped[str] = mapped_column(String(128), primary_key=True)


#: indexes migrations create on PostgreSQL only (pg_trgm), which the models therefore do not declare
PG_ONLY_INDEXES = frozenset({"ix_asset_name_trgm", "ix_asset_ips_trgm"})
