"""The metric catalogue (§6.5), series and raw samples (§4.4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONDoc, utcnow


class MetricDefinition(Base):
    __tablename__ = "metric_definition"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16), default="gauge")
    description: Mapped[str | None] = mapped_column(Text)
    default_interval_s: Mapped[int] = mapped_column(Integer, default=60)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class MetricSeries(Base):
    """One (metric, asset or platform-level, sorted labels) of a platform.

    ``series_id`` is derived from the identity (64 bits of SHA-256), so a batch knows its
    keys without asking the database first.
    """

    __tablename__ = "metric_series"
    __table_args__ = (
        Index("ix_metric_series_platform_metric_asset", "platform_code", "metric", "asset_id"),
        # every push moves the newest value of its series: room in each page for heap-only updates
        {"postgresql_with": {"fillfactor": 70}},
    )

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    series_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    metric: Mapped[str] = mapped_column(String(64))
    #: empty string for a platform-level series
    asset_id: Mapped[str] = mapped_column(String(128))
    labels: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    labels_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: the newest sample (kept by ingest): the latest-value list reads these instead of probing
    #: every time partition of the samples for each series
    last_ts: Mapped[datetime | None] = mapped_column()
    last_value: Mapped[float | None] = mapped_column(Float)


class MetricSample(Base):
    """A raw sample; a later write of the same (series, ts) replaces the value (a correction).

    ``change_seq`` is the platform's sample change sequence at the write (see
    :mod:`app.services.changes`): incremental sync and the rollup job both follow it. On
    PostgreSQL the table is partitioned by day of ``ts`` (:mod:`app.services.retention`).
    """

    __tablename__ = "metric_sample"
    __table_args__ = (
        Index("ix_metric_sample_change", "platform_code", "change_seq", "series_id", "ts"),
        {"sqlite_with_rowid": False, "postgresql_partition_by": "RANGE (ts)"},
    )

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    series_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    change_seq: Mapped[int] = mapped_column(BigInteger)
