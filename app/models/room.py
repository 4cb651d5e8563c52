"""Machine rooms and their environment points and samples (§4.1, §4.5)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKeyConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONDoc, utcnow


class Room(Base):
    __tablename__ = "room"

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    room_code: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    datacenter_code: Mapped[str] = mapped_column(String(128))
    datacenter_name: Mapped[str] = mapped_column(String(256))
    region_code: Mapped[str] = mapped_column(String(6))
    address: Mapped[str | None] = mapped_column(String(500))
    gb50174_class: Mapped[str] = mapped_column(String(1))
    aisle_containment: Mapped[bool] = mapped_column(Boolean)
    area_m2: Mapped[float | None] = mapped_column(Float)
    rack_count: Mapped[int | None] = mapped_column(Integer)
    design_pue: Mapped[float | None] = mapped_column(Float)
    it_capacity_kw: Mapped[float | None] = mapped_column(Float)
    last_batch_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class EnvironmentPoint(Base):
    """A sensor point, registered on first sight; its ``point_type`` never changes."""

    __tablename__ = "environment_point"
    __table_args__ = (
        ForeignKeyConstraint(["platform_code", "room_code"], ["room.platform_code", "room.room_code"]),
    )

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    room_code: Mapped[str] = mapped_column(String(128), primary_key=True)
    point_code: Mapped[str] = mapped_column(String(128), primary_key=True)
    point_type: Mapped[str] = mapped_column(String(64))
    rack_code: Mapped[str | None] = mapped_column(String(128))
    position: Mapped[str | None] = mapped_column(String(32))
    height_m: Mapped[float | None] = mapped_column(Float)
    interval_s: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: the time of the newest sample (kept by ingest): the latest sample is then one probe of the
    #: partition holding that time, not a max() over every time partition
    last_ts: Mapped[datetime | None] = mapped_column()
    #: a derived point (dew point from a temperature and a humidity point): the point codes it is
    #: computed from; null for a sensor
    derived_from: Mapped[list[str] | None] = mapped_column(JSONDoc)
    #: set when thresholds changed: the evaluation job re-evaluates samples from this time on
    reevaluate_from: Mapped[datetime | None] = mapped_column()


class EnvironmentSample(Base):
    """One reading; the later write of the same (point, ts) replaces the value (a correction).

    ``change_seq`` as for metric samples; partitioned by day of ``ts`` on PostgreSQL.
    """

    __tablename__ = "environment_sample"
    __table_args__ = (
        Index("ix_environment_sample_change", "platform_code", "change_seq", "room_code", "point_code", "ts"),
        {"sqlite_with_rowid": False, "postgresql_partition_by": "RANGE (ts)"},
    )

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    room_code: Mapped[str] = mapped_column(String(128), primary_key=True)
    point_code: Mapped[str] = mapped_column(String(128), primary_key=True)
    ts: Mapped[datetime] = mapped_column(primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    #: §6.6 state; evaluated by the environment rules (null until evaluated)
    state: Mapped[str | None] = mapped_column(String(16))
    evaluated_at: Mapped[datetime | None] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    change_seq: Mapped[int] = mapped_column(BigInteger)
