"""Environment point types with their units and default thresholds (§6.6), held as data."""

from __future__ import annotations

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class PointTypeDefinition(Base):
    """One §6.6 point type: unit, default threshold row and where the numbers come from."""

    __tablename__ = "point_type_definition"

    point_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    unit: Mapped[str] = mapped_column(String(32))
    #: ``threshold`` (judged), ``informational`` or ``pue_feed`` (power and energy for PUE)
    role: Mapped[str] = mapped_column(String(16))
    lower_critical: Mapped[float | None] = mapped_column(Float)
    lower_caution: Mapped[float | None] = mapped_column(Float)
    upper_caution: Mapped[float | None] = mapped_column(Float)
    upper_critical: Mapped[float | None] = mapped_column(Float)
    dwell_s: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(String(200))
