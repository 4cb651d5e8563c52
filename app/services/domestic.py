"""Per-dimension domestic (国产化) verdicts of an asset (§4.2) from the lists held as data (§7)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.schemas.enums import CPU_PRIMARY_TYPES

#: which lists judge the product dimension of each asset type (others: the manufacturer list)
PRODUCT_LISTS: Mapping[str, tuple[str, ...]] = {
    "database_instance": ("database", "manufacturer"),
    "middleware_instance": ("middleware", "manufacturer"),
}
#: architectures only domestic CPUs implement
DOMESTIC_ARCHES: Mapping[str, str] = {"loongarch64": "龙芯 Loongson", "sw_64": "申威 Sunway"}


@dataclass(frozen=True)
class ListEntry:
    list_code: str
    entry: str
    patterns: tuple[re.Pattern[str], ...]

    def matches(self, value: str) -> bool:
        return any(p.search(value) for p in self.patterns)


def _pattern(alias: str) -> re.Pattern[str]:
    escaped = re.escape(alias)
    if alias.isascii():
        # Latin aliases match on letter boundaries: "DM8" and "DM 8" match "DM", "AMD" does not
        return re.compile(rf"(?<![A-Za-z]){escaped}(?![A-Za-z])", re.IGNORECASE)
    return re.compile(escaped, re.IGNORECASE)


class DomesticLists:
    """The lists of one deployment, compiled once per batch."""

    def __init__(self, rows: Iterable[tuple[str, str, list[str]]]) -> None:
        self.by_list: dict[str, list[ListEntry]] = {}
        # a batch has few distinct vendor / OS / product strings: judge each once
        self._judged: dict[tuple[Any, ...], dict[str, Any]] = {}
        for list_code, entry, aliases in rows:
            patterns = tuple(_pattern(a) for a in [*aliases, entry] if a)
            self.by_list.setdefault(list_code, []).append(ListEntry(list_code, entry, patterns))

    def find(self, list_codes: Iterable[str], value: str) -> ListEntry | None:
        for code in list_codes:
            for entry in self.by_list.get(code, ()):
                if entry.matches(value):
                    return entry
        return None

    def judge(
        self, list_codes: tuple[str, ...], fields: Mapping[str, Any], names: tuple[str, ...]
    ) -> dict[str, Any]:
        """``true`` with the matching entry, ``false`` when judged against no match, ``null``."""
        memo_key = (list_codes, names, *(fields.get(n) for n in names))
        cached = self._judged.get(memo_key)
        if cached is None:
            cached = self._judge(list_codes, fields, names)
            self._judged[memo_key] = cached
        return cached

    def _judge(
        self, list_codes: tuple[str, ...], fields: Mapping[str, Any], names: tuple[str, ...]
    ) -> dict[str, Any]:
        available = [c for c in list_codes if self.by_list.get(c)]
        given = [(n, fields.get(n)) for n in names if fields.get(n)]
        if not given or not available:
            return {"value": None, "basis": None}
        for name, value in given:
            hit = self.find(available, str(value))
            if hit is not None:
                return {
                    "value": True,
                    "basis": {"list": hit.list_code, "entry": hit.entry, "field": name, "value": value},
                }
        return {
            "value": False,
            "basis": {"list": ",".join(available), "entry": None, "field": given[0][0], "value": given[0][1]},
        }


def verdicts(lists: DomesticLists, fields: Mapping[str, Any]) -> tuple[dict[str, Any], bool | None]:
    """``domestic`` (cpu / os / product, each with basis) and the primary ``is_domestic``."""
    cpu = lists.judge(("cpu_vendor",), fields, ("cpu_vendor", "cpu_model"))
    arch = str(fields.get("cpu_arch") or "")
    if cpu["value"] is not True and arch in DOMESTIC_ARCHES:
        cpu = {
            "value": True,
            "basis": {"list": "cpu_arch", "entry": DOMESTIC_ARCHES[arch], "field": "cpu_arch", "value": arch},
        }
    os_verdict = lists.judge(("os",), fields, ("os_name",))
    asset_type = str(fields.get("asset_type") or "")
    product_lists = PRODUCT_LISTS.get(asset_type, ("manufacturer",))
    product = lists.judge(product_lists, fields, ("product", "vendor", "manufacturer"))
    domestic: dict[str, Any] = {"cpu": cpu, "os": os_verdict, "product": product}
    primary = "cpu" if asset_type in CPU_PRIMARY_TYPES else "product"
    reported = fields.get("is_domestic_reported")
    if reported is not None:
        domestic[primary] = {"value": reported, "basis": {"source": "reported"}}
    domestic["primary"] = primary
    return domestic, domestic[primary]["value"]
