"""Collector sources (§8) and their runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONDoc, utcnow


class Source(Base):
    """A system the hub polls for one platform; its credentials are sealed with the server key."""

    __tablename__ = "source"

    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the platform its data belongs to; none for a ``hub`` source, which mirrors several
    platform_code: Mapped[str | None] = mapped_column(ForeignKey("platform.platform_code"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    base_url: Mapped[str] = mapped_column(String(500))
    #: the credentials object as JSON, encrypted (values may be ``{"env": "SUPHUB_SOURCE_…"}``)
    credentials_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    interval_s: Mapped[int] = mapped_column(Integer)
    kinds: Mapped[list[str]] = mapped_column(JSONDoc)
    options: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    #: scheduling: when the next run is due, and the failures in a row behind a back-off
    next_run_at: Mapped[datetime | None] = mapped_column()
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_success_at: Mapped[datetime | None] = mapped_column()
    #: what an incremental run resumes from (end of the last metrics window, sync tokens…)
    cursor_state: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)

    #: one run per source across every process: the holder and when its lease lapses
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    lease_run_id: Mapped[str | None] = mapped_column(String(32))


class SourceRun(Base):
    """One run of a source, with the §8 fields."""

    __tablename__ = "source_run"
    __table_args__ = (Index("ix_source_run_source_started", "source_id", "started_at"),)

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("source.source_id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    #: running | success | failed
    status: Mapped[str] = mapped_column(String(16))
    #: full (a complete snapshot of the source) or incremental
    mode: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16))
    pages: Mapped[int] = mapped_column(Integer, default=0)
    records: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
