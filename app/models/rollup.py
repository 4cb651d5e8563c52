"""Rollups of raw samples (§5): 5m / 1h / 1d buckets keeping count, sum, min, max and the last sample.

One table per kind and resolution, so each resolution has its own retention. A bucket row is
exact for every sample change up to the platform's ``rollup_state.built_seq``; a reader treats
a bucket touched by a later change as not built and computes it from raw samples
(:mod:`app.services.rollups`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class _Values:
    """What a bucket keeps: enough to answer avg, min, max, sum and last, and to merge buckets."""

    bucket_start: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    total: Mapped[float] = mapped_column(Float)
    minimum: Mapped[float] = mapped_column(Float)
    maximum: Mapped[float] = mapped_column(Float)
    last_ts: Mapped[datetime] = mapped_column()
    last: Mapped[float] = mapped_column(Float)


class _MetricKey:
    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    series_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class _PointKey:
    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    room_code: Mapped[str] = mapped_column(String(128), primary_key=True)
    point_code: Mapped[str] = mapped_column(String(128), primary_key=True)


_NO_ROWID = {"sqlite_with_rowid": False}


class MetricRollup5m(_MetricKey, _Values, Base):
    __tablename__ = "metric_rollup_5m"
    __table_args__ = _NO_ROWID


class MetricRollup1h(_MetricKey, _Values, Base):
    __tablename__ = "metric_rollup_1h"
    __table_args__ = _NO_ROWID


class MetricRollup1d(_MetricKey, _Values, Base):
    """Days in the reporting time zone (``rollup_state.day_tz`` records which)."""

    __tablename__ = "metric_rollup_1d"
    __table_args__ = _NO_ROWID


class EnvironmentRollup5m(_PointKey, _Values, Base):
    __tablename__ = "environment_rollup_5m"
    __table_args__ = _NO_ROWID


class EnvironmentRollup1h(_PointKey, _Values, Base):
    __tablename__ = "environment_rollup_1h"
    __table_args__ = _NO_ROWID


class EnvironmentRollup1d(_PointKey, _Values, Base):
    __tablename__ = "environment_rollup_1d"
    __table_args__ = _NO_ROWID


class RollupState(Base):
    """How far one platform's rollups of one kind are built: every sample change up to ``built_seq``."""

    __tablename__ = "rollup_state"

    #: ``metric_sample`` or ``environment_sample``
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    built_seq: Mapped[int] = mapped_column(BigInteger)
    #: the time zone the 1d buckets were cut in; another zone rebuilds them
    day_tz: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
