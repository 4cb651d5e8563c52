"""The audit log (§9): every request as an event, chained with HMAC-SM3 under keys held sealed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow

#: an actor is kept to this length (a failed console login records the name it claimed, any length)
ACTOR_MAX = 160


class AuditEvent(Base):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_app_key_seq", "app_key", "seq"),
        Index("ix_audit_event_actor_seq", "actor", "seq"),
        Index("ix_audit_event_at", "at"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column()
    #: who asked: ``key:<app_key>``, ``user:<username>`` (console) or ``anonymous``; chained from
    #: ``audit_head.keyed_from`` on (the events before it were chained without it: see 0014)
    actor: Mapped[str | None] = mapped_column(String(ACTOR_MAX))
    app_key: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(2048))
    query: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    records: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str] = mapped_column(String(32))
    source_ip: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The newest link; locking this one row makes appends one writer at a time, hub-wide."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: events from this ``seq`` on are keyed (HMAC-SM3); earlier ones are the plain SM3 chain of a
    #: hub from before the keyed chain (set by the migration to its head + 1; 1 on a new hub)
    keyed_from: Mapped[int] = mapped_column(BigInteger, server_default="1")


class AuditCheckpoint(Base):
    """A link remembered so retention can cut the chain there and verification start from it."""

    __tablename__ = "audit_checkpoint"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column()


class AuditChainKey(Base):
    """A chain key, sealed under the server key, for the events from ``from_seq`` until the next row.

    The key is derived from the server key when the row is made; ``supervision-hub keys rotate``
    re-seals every row under the new server key and adds a row for the events after the rotation,
    so events chained before it stay verifiable without the retired key.
    """

    __tablename__ = "audit_chain_key"

    from_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    #: the server key it is sealed under (the ciphertext names it too; kept here to be read)
    key_id: Mapped[str] = mapped_column(String(16))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
