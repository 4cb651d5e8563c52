"""Reference data the hub judges by: the default domestic lists of §7 (data, editable, §10)."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONDoc


class DomesticListEntry(Base):
    """One entry of a domestic list, e.g. ``cpu_vendor`` / ``海光 Hygon`` with its aliases."""

    __tablename__ = "domestic_list_entry"

    list_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    entry: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: strings matched case-insensitively (Latin aliases on word boundaries)
    aliases: Mapped[list[str]] = mapped_column(JSONDoc)
