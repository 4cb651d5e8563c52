"""Batch receipts (idempotency, §4) and the quarantine of rejected records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONDoc, utcnow


class BatchReceipt(Base):
    __tablename__ = "batch_receipt"

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    #: SHA-256 of the decompressed body: "the same body" for replays
    body_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    received: Mapped[int] = mapped_column(Integer)
    accepted: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc)
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc)
    #: kind-specific extras of the receipt (e.g. the snapshot's progress)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    reporter: Mapped[str] = mapped_column(String(200))
    collected_at: Mapped[datetime | None] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class QuarantinedRecord(Base):
    """A rejected record, kept raw for its provider and the regulator's admins."""

    __tablename__ = "quarantined_record"

    platform_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    record_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: the record exactly as sent, as JSON text (JSON escapes keep even ``\u0000`` storable)
    raw: Mapped[str] = mapped_column(Text)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChangeCounter(Base):
    """The last change sequence handed out for one table; its row lock orders commits (§2.2)."""

    __tablename__ = "change_counter"

    #: a table (``assets``) or a table of one platform (``metric_sample:<platform_code>``)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
