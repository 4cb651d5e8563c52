"""API clients (keys) and their scopes (§1, §3, §10)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONDoc, utcnow


class Client(Base):
    __tablename__ = "client"

    app_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    platforms: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    #: normalised region prefixes (``440100`` is kept as ``4401``)
    regions: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    kinds: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    require_signature: Mapped[bool] = mapped_column(Boolean)
    #: SHA-256 of the secret, for bearer lookup (the secret itself is never stored in clear)
    secret_hash: Mapped[str] = mapped_column(String(64))
    #: the secret encrypted under the server key (for HMAC signature checks); see app.security.keys
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    secret_key_id: Mapped[str] = mapped_column(String(32))
    #: the previous secret stays valid until this time after a rotation
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64))
    previous_secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_valid_until: Mapped[datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
