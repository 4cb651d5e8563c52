"""Logs (§4.3) chained with SM3 per platform, the chain head and retention checkpoints."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class LogRecord(Base):
    __tablename__ = "log_record"
    __table_args__ = (
        UniqueConstraint("platform_code", "log_key"),
        Index("ix_log_record_platform_event_time", "platform_code", "event_time"),
        # the list's order (event_time desc, platform, seq), read backwards
        Index("ix_log_record_event_time", "event_time", "platform_code", "seq"),
        # ``updated_since`` as a time (received since), and the ``actor`` filter in list order
        Index("ix_log_record_received", "received_at"),
        Index("ix_log_record_actor", "actor", "event_time", "platform_code", "seq"),
    )

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    #: ``log_id``, or ``sha256:<hex>`` of the canonical record when the reporter gave no id
    log_key: Mapped[str] = mapped_column(String(200))
    log_id: Mapped[str | None] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(64))
    event_time: Mapped[datetime] = mapped_column()
    severity: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(String(256))
    actor_type: Mapped[str | None] = mapped_column(String(16))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(256))
    object_type: Mapped[str | None] = mapped_column(String(128))
    object_id: Mapped[str | None] = mapped_column(String(256))
    outcome: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    asset_id: Mapped[str | None] = mapped_column(String(128))
    raw: Mapped[str | None] = mapped_column(Text)
    origin_hash: Mapped[str | None] = mapped_column(String(64))
    #: SHA-256 of the canonical record without chain fields: "same content" for insert-only
    content_sha256: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class LogChainHead(Base):
    """The newest link of a platform's chain; its row lock serialises appends per platform."""

    __tablename__ = "log_chain_head"

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LogCheckpoint(Base):
    """Written before retention removes a chain prefix; verification starts from it."""

    __tablename__ = "log_checkpoint"

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
