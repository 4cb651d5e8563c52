"""Cloud platforms registered by the regulator (§10)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONDoc, utcnow


class Platform(Base):
    __tablename__ = "platform"

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    region_code: Mapped[str] = mapped_column(String(6))
    #: ``region_code`` with trailing ``00`` pairs removed, so scope checks are a prefix match.
    region_prefix: Mapped[str] = mapped_column(String(6), index=True)
    network_zone: Mapped[str] = mapped_column(String(32))
    provider_name: Mapped[str | None] = mapped_column(String(200))
    provider_uscc: Mapped[str | None] = mapped_column(String(18))
    level: Mapped[str] = mapped_column(String(16))
    virtualization: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    protection_level: Mapped[int | None] = mapped_column(Integer)
    availability_target: Mapped[float] = mapped_column(Float, default=99.99)
    storage_bw_target_gbps: Mapped[float] = mapped_column(Float, default=10.0)
    expected_intervals: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
