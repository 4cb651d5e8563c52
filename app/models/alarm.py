"""Alarms reported by platforms (§4.6)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class Alarm(Base):
    __tablename__ = "alarm"
    __table_args__ = (
        Index("ix_alarm_change", "change_seq", "platform_code", "alarm_id"),
        # the list's order (first_at desc, platform, id), read backwards
        Index("ix_alarm_first_at", "first_at", "platform_code", "alarm_id"),
        Index("ix_alarm_updated", "updated_at"),
    )

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    alarm_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    level: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(500))
    message: Mapped[str | None] = mapped_column(Text)
    asset_id: Mapped[str | None] = mapped_column(String(128))
    room_code: Mapped[str | None] = mapped_column(String(128))
    first_at: Mapped[datetime] = mapped_column()
    last_at: Mapped[datetime | None] = mapped_column()
    cleared_at: Mapped[datetime | None] = mapped_column()
    last_batch_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: position in commit order (see app.services.changes)
    change_seq: Mapped[int | None] = mapped_column(BigInteger)
