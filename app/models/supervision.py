"""What the hub judges and concludes (§6.6, §7): threshold overrides, excursions, the indicator
policy, warning rules and warnings, and frozen indicator snapshots of closed periods.

Every rule, bound and target is a row a deployment can change through §10; nothing here is a
constant in code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONDoc, utcnow


class ThresholdOverride(Base):
    """A §6.6 threshold row for one platform (``room_code`` empty) or one of its rooms.

    A room's row wins over its platform's, which wins over the point type's default; a row
    replaces the whole default row (an empty bound means "no bound", not "inherit").
    """

    __tablename__ = "threshold_override"

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: empty string: the whole platform
    room_code: Mapped[str] = mapped_column(String(128), primary_key=True)
    point_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    lower_critical: Mapped[float | None] = mapped_column(Float)
    lower_caution: Mapped[float | None] = mapped_column(Float)
    upper_caution: Mapped[float | None] = mapped_column(Float)
    upper_critical: Mapped[float | None] = mapped_column(Float)
    dwell_s: Mapped[int | None] = mapped_column(Integer)
    #: why these numbers (a manufacturer's specification, a regulator's decision …)
    source: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class EnvironmentExcursion(Base):
    """A run of a point's samples past a critical bound that lasted at least the dwell time."""

    __tablename__ = "environment_excursion"
    __table_args__ = (Index("ix_environment_excursion_platform_end", "platform_code", "end_ts"),)

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    room_code: Mapped[str] = mapped_column(String(128), primary_key=True)
    point_code: Mapped[str] = mapped_column(String(128), primary_key=True)
    start_ts: Mapped[datetime] = mapped_column(primary_key=True)
    #: when the last sample of the run stops standing (next sample, capped at 2× the interval)
    end_ts: Mapped[datetime] = mapped_column()
    point_type: Mapped[str] = mapped_column(String(64))
    #: ``upper_critical`` or ``lower_critical``: the bound the run was past first
    bound: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[float] = mapped_column(Float)
    #: the value furthest past the bound
    peak_value: Mapped[float] = mapped_column(Float)
    samples: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class IndicatorPolicy(Base):
    """Targets and parameters of one §7 indicator (e.g. PUE caution / fail bounds), as data."""

    __tablename__ = "indicator_policy"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    source: Mapped[str | None] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WarningRule(Base):
    """A §7.8 rule: what is watched, when it is bad, how bad, and how long before open / clear."""

    __tablename__ = "warning_rule"

    rule_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    #: ``indicator`` (an indicator's status), ``point_type`` (a point's state) or ``freshness``
    #: (a feed's staleness, per kind)
    subject: Mapped[str] = mapped_column(String(16))
    #: the indicator code, point type or kind watched; ``*`` for every one
    target: Mapped[str] = mapped_column(String(64))
    #: e.g. ``{"status_in": ["fail"]}`` or ``{"state_in": ["critical"]}``
    condition: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    #: 1 紧急 … 4 提示, as alarm levels
    level: Mapped[int] = mapped_column(Integer)
    hold_s: Mapped[int] = mapped_column(Integer)
    clear_s: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WarningEvent(Base):
    """A raised 监管预警: opened after its rule's hold time, cleared after its hysteresis."""

    __tablename__ = "warning"
    __table_args__ = (
        Index("ix_warning_first_at", "first_at", "platform_code", "warning_id"),
        Index("ix_warning_platform_status", "platform_code", "status"),
    )

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    warning_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    rule_code: Mapped[str] = mapped_column(String(64))
    #: what the warning is about inside the platform, e.g. ``indicator:availability`` or
    #: ``point:R1/T-01``
    subject_key: Mapped[str] = mapped_column(String(300))
    level: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    first_at: Mapped[datetime] = mapped_column()
    last_at: Mapped[datetime] = mapped_column()
    cleared_at: Mapped[datetime | None] = mapped_column()
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WarningTracker(Base):
    """Where one (rule, subject) stands between evaluations: since when its condition holds or is
    absent, and which warning is open. Hold and hysteresis are measured from these times."""

    __tablename__ = "warning_tracker"

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    condition_since: Mapped[datetime | None] = mapped_column()
    absent_since: Mapped[datetime | None] = mapped_column()
    open_warning_id: Mapped[str | None] = mapped_column(String(40))
    evaluated_at: Mapped[datetime] = mapped_column()


class IndicatorSnapshot(Base):
    """The frozen indicators of a closed period (§7.9) for a platform or a region, by version."""

    __tablename__ = "indicator_snapshot"

    #: ``platform`` or ``region``
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    scope_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    frozen_at: Mapped[datetime] = mapped_column()
    from_ts: Mapped[datetime] = mapped_column()
    to_ts: Mapped[datetime] = mapped_column()
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc)
    #: ``grace`` (frozen by the job) or ``recompute`` (an admin's explicit new version)
    reason: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
