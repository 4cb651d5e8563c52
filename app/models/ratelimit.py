"""Token buckets of the rate limits (§9), shared by every API worker."""

from __future__ import annotations

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class RateBucket(Base):
    __tablename__ = "rate_bucket"

    #: ``key:<app_key>`` or ``ip:<address>``
    bucket: Mapped[str] = mapped_column(String(128), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    #: unix seconds (a float keeps the refill arithmetic the same on both databases)
    updated_at: Mapped[float] = mapped_column(Float)
