"""Computes every §7 indicator for a set of platforms over a window (docs/indicators.md).

Each indicator is computed per platform as numerator / denominator with its basis, then pooled:
a region's figure is Σ numerators / Σ denominators of its platforms, never a mean of ratios.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    Asset,
    DomesticListEntry,
    EnvironmentExcursion,
    EnvironmentPoint,
    EnvironmentSample,
    MetricDefinition,
    MetricSample,
    MetricSeries,
    Platform,
    Room,
)
from app.services.buckets import Step
from app.services.environment_states import CAP_INTERVALS, DEFAULT_INTERVAL_S, usual_interval
from app.services.metrics import raw_metric_buckets
from app.services.platforms import FRESHNESS_KINDS, freshness_policy, latest_receipts
from app.services.rollups import METRICS, rollup_source
from app.services.thresholds import policy_params

NAMES_ZH = {
    "availability": "可用性",
    "domestic_rate": "国产替代率",
    "storage_bandwidth": "存储读写带宽",
    "pue": "电能利用效率 PUE",
    "env_compliance": "机房环境合规率",
    "utilisation": "资源利用率",
    "freshness": "数据新鲜度",
}
_STATUS_ORDER = {"no_data": 0, "pass": 1, "caution": 2, "fail": 3}


@dataclass(frozen=True)
class Window:
    """``[start, end)`` in UTC; ``period`` is the ``YYYY-MM`` month it is, if it is one."""

    start: datetime
    end: datetime
    period: str | None = None


def month_window(period: str | None, tz: ZoneInfo, now: datetime) -> Window:
    """The month ``YYYY-MM`` (this month when None) in the reporting time zone."""
    if period is None:
        local = now.astimezone(tz)
        year, month = local.year, local.month
    else:
        year, month = int(period[:4]), int(period[5:7])
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
    return Window(start.astimezone(UTC), end.astimezone(UTC), f"{year:04d}-{month:02d}")


def item(
    code: str,
    *,
    value: float | None,
    unit: str,
    numerator: float | None,
    denominator: float | None,
    target: float | None,
    status: str,
    basis: dict[str, Any],
    coverage: float | None,
    components: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One figure in the §7 shape (components are figures of the same shape)."""
    return {
        "code": code,
        **extra,
        "name_zh": NAMES_ZH.get(code),
        "value": value,
        "unit": unit,
        "numerator": numerator,
        "denominator": denominator,
        "target": target,
        "status": status,
        "basis": basis,
        "coverage": coverage,
        "components": components or [],
    }


def _ratio(num: float, den: float) -> float | None:
    return 100.0 * num / den if den else None


def worst(statuses: Sequence[str]) -> str:
    return max(statuses, key=lambda s: _STATUS_ORDER[s]) if statuses else "no_data"


@dataclass
class Context:
    session: AsyncSession
    platforms: Sequence[Platform]
    start: datetime
    end: datetime
    window: Window
    now: datetime
    policy: dict[str, dict[str, Any]]

    @property
    def codes(self) -> list[str]:
        return [p.platform_code for p in self.platforms]

    @property
    def period_s(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)


def stand_in_window(
    times: Sequence[datetime], interval: float, end: datetime, next_after: datetime | None
) -> list[float]:
    """Seconds each sample stands inside ``[·, end)``: until the next sample, at most 2 intervals;
    the newest (none after) one interval."""
    cap = CAP_INTERVALS * interval
    out: list[float] = []
    for i, ts in enumerate(times):
        nxt = times[i + 1] if i + 1 < len(times) else next_after
        until = ts + timedelta(seconds=interval if nxt is None else min((nxt - ts).total_seconds(), cap))
        out.append(max((min(until, end) - ts).total_seconds(), 0.0))
    return out


async def _metric_samples(
    ctx: Context, metric: str, platform_codes: Sequence[str]
) -> dict[tuple[str, int], tuple[MetricSeries, list[tuple[datetime, float]], datetime | None]]:
    """Samples of every series of ``metric`` in the window, and each series' first sample after it."""
    series = (
        (
            await ctx.session.execute(
                select(MetricSeries).where(
                    MetricSeries.platform_code.in_(list(platform_codes)), MetricSeries.metric == metric
                )
            )
        )
        .scalars()
        .all()
    )
    out: dict[tuple[str, int], tuple[MetricSeries, list[tuple[datetime, float]], datetime | None]] = {}
    for s in sorted(series, key=lambda s: (s.platform_code, s.series_id)):
        key = and_(MetricSample.platform_code == s.platform_code, MetricSample.series_id == s.series_id)
        rows = await ctx.session.execute(
            select(MetricSample.ts, MetricSample.value)
            .where(key, MetricSample.ts >= ctx.start, MetricSample.ts < ctx.end)
            .order_by(MetricSample.ts)
        )
        samples = [(r.ts, r.value) for r in rows]
        after = await ctx.session.scalar(
            select(MetricSample.ts).where(key, MetricSample.ts >= ctx.end).order_by(MetricSample.ts).limit(1)
        )
        out[(s.platform_code, s.series_id)] = (s, samples, after)
    return out


async def _default_interval(ctx: Context, metric: str) -> float:
    value = await ctx.session.scalar(
        select(MetricDefinition.default_interval_s).where(MetricDefinition.code == metric)
    )
    return float(value or 60)


# -------------------------------------------------------------------------------- availability
async def availability(ctx: Context) -> dict[str, Any]:
    metric = "service.availability"
    default = await _default_interval(ctx, metric)
    found = await _metric_samples(ctx, metric, ctx.codes)
    per_platform: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (code, _), (series, samples, after) in found.items():
        if not samples:
            continue
        times = [t for t, _ in samples]
        interval = usual_interval(None, times, int(default))
        stand = stand_in_window(times, interval, ctx.end, after)
        num = sum(v / 100.0 * d for (_, v), d in zip(samples, stand, strict=True))
        den = sum(stand)
        per_platform[code].append(
            item(
                "series",
                value=_ratio(num, den),
                unit="%",
                numerator=num,
                denominator=den,
                target=None,
                status="no_data" if not den else "pass",
                basis={"samples": len(samples), "interval_s": interval, "unavailable_s": den - num},
                coverage=den / ctx.period_s if ctx.period_s else None,
                platform_code=code,
                asset_id=series.asset_id or None,
                labels=series.labels,
            )
        )
    figures: list[dict[str, Any]] = []
    for p in ctx.platforms:
        series_items = per_platform.get(p.platform_code, [])
        num = sum(s["numerator"] for s in series_items)
        den = sum(s["denominator"] for s in series_items)
        value = _ratio(num, den)
        target = p.availability_target
        for s in series_items:
            s["target"] = target
            s["status"] = "no_data" if s["value"] is None else ("fail" if s["value"] < target else "pass")
        coverage = den / (len(series_items) * ctx.period_s) if series_items and ctx.period_s else 0.0
        figures.append(
            item(
                "availability",
                value=value,
                unit="%",
                numerator=num,
                denominator=den,
                target=target,
                status="no_data" if value is None else ("fail" if value < target else "pass"),
                basis={
                    "metric": metric,
                    "series": len(series_items),
                    "unavailable_s": den - num,
                    "rule": "time-weighted mean; a sample stands until the next, at most 2 intervals",
                },
                coverage=coverage,
                components=series_items,
                platform_code=p.platform_code,
            )
        )
    return _pool_ratio(
        "availability",
        "%",
        figures,
        target_of=lambda fs: max((f["target"] for f in fs if f["value"] is not None), default=None),
        status_of=lambda v, t: "fail" if t is not None and v < t else "pass",
        basis={"metric": metric},
    )


def _pool_ratio(
    code: str,
    unit: str,
    figures: list[dict[str, Any]],
    *,
    target_of: Callable[[list[dict[str, Any]]], float | None],
    status_of: Callable[[float, float | None], str],
    basis: dict[str, Any],
    scale: float = 100.0,
) -> dict[str, Any]:
    """One platform: its figure; several: Σ num / Σ den, with one component per platform."""
    if len(figures) == 1:
        figure = dict(figures[0])
        figure.pop("platform_code", None)
        return figure
    num = sum(f["numerator"] or 0.0 for f in figures)
    den = sum(f["denominator"] or 0.0 for f in figures)
    value = scale * num / den if den else None
    target = target_of(figures)
    coverages = [f["coverage"] or 0.0 for f in figures]
    components = []
    for f in figures:
        c = dict(f)
        c["code"] = "platform"
        c["components"] = []
        components.append(c)
    return item(
        code,
        value=value,
        unit=unit,
        numerator=num,
        denominator=den,
        target=target,
        status="no_data" if value is None else status_of(value, target),
        basis={**basis, "pooled_platforms": len(figures)},
        coverage=sum(coverages) / len(coverages) if coverages else None,
        components=components,
    )


# -------------------------------------------------------------------------------- domestic rate
#: component → (asset types, verdict dimension, the lists that judge it)
DOMESTIC_CATEGORIES: dict[str, tuple[frozenset[str], str, tuple[str, ...]]] = {
    "server_cpu": (frozenset({"server", "hypervisor_host", "bare_metal"}), "cpu", ("cpu_vendor",)),
    "os": (frozenset({"server", "hypervisor_host", "bare_metal", "vm"}), "os", ("os",)),
    "database": (frozenset({"database_instance"}), "product", ("database", "manufacturer")),
    "middleware": (frozenset({"middleware_instance"}), "product", ("middleware", "manufacturer")),
    "security": (frozenset({"security_device"}), "product", ("manufacturer",)),
    "storage": (frozenset({"storage_device"}), "product", ("manufacturer",)),
    "network": (frozenset({"network_device"}), "product", ("manufacturer",)),
}
_DOMESTIC_TYPES = sorted(set().union(*(types for types, _, _ in DOMESTIC_CATEGORIES.values())))


async def domestic_rate(ctx: Context) -> dict[str, Any]:
    lists = set((await ctx.session.execute(select(DomesticListEntry.list_code).distinct())).scalars())
    counts: dict[str, list[int]] = {c: [0, 0, 0] for c in DOMESTIC_CATEGORIES}  # domestic, judged, all
    cores = [0.0, 0.0, 0]  # domestic cores, judged cores, servers judged with cores
    stmt = select(Asset.asset_type, Asset.domestic, Asset.cpu_cores, Asset.os_name).where(
        Asset.platform_code.in_(ctx.codes),
        Asset.lifecycle != "retired",
        Asset.asset_type.in_(_DOMESTIC_TYPES),
    )
    result = await ctx.session.stream(stmt.execution_options(yield_per=5000))
    async for asset_type, domestic, cpu_cores, os_name in result:
        for code, (types, dimension, _) in DOMESTIC_CATEGORIES.items():
            if asset_type not in types or (code == "os" and not os_name):
                continue
            verdict = ((domestic or {}).get(dimension) or {}).get("value")
            counts[code][2] += 1
            if verdict is None:
                continue
            counts[code][1] += 1
            counts[code][0] += bool(verdict)
            if code == "server_cpu" and cpu_cores:
                cores[1] += cpu_cores
                cores[0] += cpu_cores if verdict else 0
                cores[2] += 1
    target = ctx.policy.get("domestic_rate", {}).get("target")
    components: list[dict[str, Any]] = []
    for code, (types, dimension, list_codes) in DOMESTIC_CATEGORIES.items():
        domestic_n, judged, total = counts[code]
        has_list = any(c in lists for c in list_codes)
        value = _ratio(domestic_n, judged) if has_list else None
        components.append(
            item(
                code,
                value=value,
                unit="%",
                numerator=domestic_n,
                denominator=judged,
                target=None,
                status="no_data" if value is None else "pass",
                basis={
                    "asset_types": sorted(types),
                    "verdict": dimension,
                    "lists": list(list_codes),
                    "lists_present": has_list,
                    "assets": total,
                },
                coverage=judged / total if total else None,
            )
        )
        if code == "server_cpu":
            core_value = _ratio(cores[0], cores[1]) if has_list else None
            components.append(
                item(
                    "server_cpu_cores",
                    value=core_value,
                    unit="%",
                    numerator=cores[0],
                    denominator=cores[1],
                    target=None,
                    status="no_data" if core_value is None else "pass",
                    basis={"asset_types": sorted(types), "weight": "cpu_cores", "servers": cores[2]},
                    coverage=cores[2] / total if total else None,
                )
            )
    head = components[0]
    value = head["value"]
    status = "no_data" if value is None else ("fail" if target is not None and value < target else "pass")
    return item(
        "domestic_rate",
        value=value,
        unit="%",
        numerator=head["numerator"],
        denominator=head["denominator"],
        target=target,
        status=status,
        basis={"value_of": "server_cpu", "inventory_at": ctx.now, "target_set": target is not None},
        coverage=head["coverage"],
        components=components,
    )


# -------------------------------------------------------------------------------- storage bandwidth
def _samples_of(platform_code: str, metric: str) -> Select[datetime, float]:
    """``(ts, value)`` of every series of ``metric`` of one platform."""
    return (
        select(MetricSample.ts, MetricSample.value)
        .join(
            MetricSeries,
            and_(
                MetricSeries.platform_code == MetricSample.platform_code,
                MetricSeries.series_id == MetricSample.series_id,
            ),
        )
        .where(MetricSample.platform_code == platform_code, MetricSeries.metric == metric)
    )


async def _latest_sample(
    ctx: Context, platform_code: str, metric: str, *, before: datetime
) -> tuple[datetime, float] | None:
    row = (
        await ctx.session.execute(
            _samples_of(platform_code, metric)
            .where(MetricSample.ts < before)
            .order_by(MetricSample.ts.desc())
            .limit(1)
        )
    ).first()
    return (row.ts, row.value) if row else None


async def storage_bandwidth(ctx: Context) -> dict[str, Any]:
    share = float(ctx.policy.get("storage_bandwidth", {}).get("observed_caution_share", 0.8))
    figures = []
    for p in ctx.platforms:
        tested = await _latest_sample(ctx, p.platform_code, "storage.bw.tested_gbps", before=ctx.end)
        peak_row = (
            await ctx.session.execute(
                _samples_of(p.platform_code, "storage.bw.observed_gbps")
                .where(MetricSample.ts >= ctx.start, MetricSample.ts < ctx.end)
                .order_by(MetricSample.value.desc())
                .limit(1)
            )
        ).first()
        target = p.storage_bw_target_gbps
        value = tested[1] if tested else None
        if value is None:
            status = "no_data"
        elif value < target:
            status = "fail"
        elif peak_row is not None and peak_row.value > share * value:
            status = "caution"
        else:
            status = "pass"
        figures.append(
            item(
                "storage_bandwidth",
                value=value,
                unit="Gbit/s",
                numerator=value,
                denominator=target,
                target=target,
                status=status,
                basis={
                    "tested_at": tested[0] if tested else None,
                    "observed_peak_gbps": peak_row.value if peak_row else None,
                    "observed_peak_at": peak_row.ts if peak_row else None,
                    "observed_caution_share": share,
                },
                coverage=1.0 if tested else 0.0,
                platform_code=p.platform_code,
            )
        )
    if len(figures) == 1:
        figure = dict(figures[0])
        figure.pop("platform_code")
        return figure
    judged = [f for f in figures if f["value"] is not None]
    weakest = min(judged, key=lambda f: f["value"] / f["target"]) if judged else None
    components = [{**f, "code": "platform"} for f in figures]
    return item(
        "storage_bandwidth",
        value=weakest["value"] if weakest else None,
        unit="Gbit/s",
        numerator=weakest["value"] if weakest else None,
        denominator=weakest["target"] if weakest else None,
        target=weakest["target"] if weakest else None,
        status=worst([f["status"] for f in judged]),
        basis={"value_of": weakest.get("platform_code") if weakest else None, "rule": "the weakest platform"},
        coverage=len(judged) / len(figures) if figures else None,
        components=components,
    )


# -------------------------------------------------------------------------------- environment reads
@dataclass
class _PointSamples:
    platform_code: str
    room_code: str
    point_code: str
    point_type: str
    interval: float
    times: list[datetime]
    values: list[float]
    stand: list[float]


async def _point_samples(ctx: Context, point_types: Sequence[str]) -> list[_PointSamples]:
    points = (
        (
            await ctx.session.execute(
                select(EnvironmentPoint)
                .where(
                    EnvironmentPoint.platform_code.in_(ctx.codes),
                    EnvironmentPoint.point_type.in_(list(point_types)),
                )
                .order_by(
                    EnvironmentPoint.platform_code, EnvironmentPoint.room_code, EnvironmentPoint.point_code
                )
            )
        )
        .scalars()
        .all()
    )
    out: list[_PointSamples] = []
    for p in points:
        key = and_(
            EnvironmentSample.platform_code == p.platform_code,
            EnvironmentSample.room_code == p.room_code,
            EnvironmentSample.point_code == p.point_code,
        )
        rows = (
            await ctx.session.execute(
                select(EnvironmentSample.ts, EnvironmentSample.value)
                .where(key, EnvironmentSample.ts >= ctx.start, EnvironmentSample.ts < ctx.end)
                .order_by(EnvironmentSample.ts)
            )
        ).all()
        if not rows:
            continue
        after = await ctx.session.scalar(
            select(EnvironmentSample.ts)
            .where(key, EnvironmentSample.ts >= ctx.end)
            .order_by(EnvironmentSample.ts)
            .limit(1)
        )
        times = [r.ts for r in rows]
        interval = usual_interval(p.interval_s, times, DEFAULT_INTERVAL_S)
        out.append(
            _PointSamples(
                p.platform_code,
                p.room_code,
                p.point_code,
                p.point_type,
                interval,
                times,
                [r.value for r in rows],
                stand_in_window(times, interval, ctx.end, after),
            )
        )
    return out


def _union(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted(i for i in intervals if i[1] > i[0]):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _length(intervals: list[tuple[datetime, datetime]]) -> float:
    return sum((hi - lo).total_seconds() for lo, hi in intervals)


def _intersect(
    a: list[tuple[datetime, datetime]], b: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


# -------------------------------------------------------------------------------- environment compliance
async def env_compliance(ctx: Context) -> dict[str, Any]:
    params = ctx.policy.get("env_compliance", {})
    fail_below, caution_below = (
        float(params.get("fail_below", 99.0)),
        float(params.get("caution_below", 99.9)),
    )
    point_types = list(params.get("point_types") or [])

    def status_of(value: float | None) -> str:
        if value is None:
            return "no_data"
        return "fail" if value < fail_below else "caution" if value < caution_below else "pass"

    samples = await _point_samples(ctx, point_types)
    covered: dict[tuple[str, str], list[tuple[datetime, datetime]]] = defaultdict(list)
    for s in samples:
        covered[(s.platform_code, s.room_code)].extend(
            (t, t + timedelta(seconds=d)) for t, d in zip(s.times, s.stand, strict=True)
        )
    excursions = (
        (
            await ctx.session.execute(
                select(EnvironmentExcursion)
                .where(
                    EnvironmentExcursion.platform_code.in_(ctx.codes),
                    EnvironmentExcursion.point_type.in_(point_types),
                    EnvironmentExcursion.start_ts < ctx.end,
                    EnvironmentExcursion.end_ts > ctx.start,
                )
                .order_by(
                    EnvironmentExcursion.platform_code,
                    EnvironmentExcursion.room_code,
                    EnvironmentExcursion.start_ts,
                    EnvironmentExcursion.point_code,
                )
            )
        )
        .scalars()
        .all()
    )
    by_room: dict[tuple[str, str], list[EnvironmentExcursion]] = defaultdict(list)
    for e in excursions:
        by_room[(e.platform_code, e.room_code)].append(e)
    room_items: list[dict[str, Any]] = []
    excursion_items: list[dict[str, Any]] = []
    total_num = total_den = 0.0
    for room_key in sorted(covered):
        cover = _union(covered[room_key])
        exc_union = _union(
            [(max(e.start_ts, ctx.start), min(e.end_ts, ctx.end)) for e in by_room.get(room_key, [])]
        )
        den = _length(cover)
        bad = _length(_intersect(cover, exc_union))
        num = den - bad
        total_num += num
        total_den += den
        value = _ratio(num, den)
        room_items.append(
            item(
                "room",
                value=value,
                unit="%",
                numerator=num,
                denominator=den,
                target=fail_below,
                status=status_of(value),
                basis={"excursion_s": bad, "excursions": len(by_room.get(room_key, []))},
                coverage=den / ctx.period_s if ctx.period_s else None,
                platform_code=room_key[0],
                room_code=room_key[1],
            )
        )
    for e in excursions:
        excursion_items.append(
            item(
                "excursion",
                value=e.peak_value,
                unit="",
                numerator=None,
                denominator=None,
                target=e.threshold,
                status="fail",
                basis={"bound": e.bound, "samples": e.samples},
                coverage=None,
                platform_code=e.platform_code,
                room_code=e.room_code,
                point_code=e.point_code,
                point_type=e.point_type,
                start=e.start_ts,
                end=e.end_ts,
                peak_value=e.peak_value,
                duration_s=(e.end_ts - e.start_ts).total_seconds(),
            )
        )
    value = _ratio(total_num, total_den)
    rooms = len(room_items)
    return item(
        "env_compliance",
        value=value,
        unit="%",
        numerator=total_num,
        denominator=total_den,
        target=fail_below,
        status=status_of(value),
        basis={
            "fail_below": fail_below,
            "caution_below": caution_below,
            "point_types": point_types,
            "excursion_s": total_den - total_num,
            "rooms": rooms,
        },
        coverage=total_den / (rooms * ctx.period_s)
        if rooms and ctx.period_s
        else (0.0 if ctx.period_s else None),
        components=room_items + excursion_items,
    )


# -------------------------------------------------------------------------------- PUE
ENERGY_TYPES = {"facility": "facility_energy_kwh", "it": "it_energy_kwh"}
POWER_TYPES = {"facility": "facility_power_kw", "it": "it_power_kw"}


def meter_energy(values: Sequence[float]) -> float:
    """kWh counted by a cumulative meter: the sum of its increases (a decrease is a reset)."""
    total = 0.0
    for before, after in itertools.pairwise(values):
        total += after - before if after >= before else after
    return total


async def pue(ctx: Context) -> dict[str, Any]:
    params = ctx.policy.get("pue", {})
    overrides: dict[str, dict[str, float]] = params.get("datacenters") or {}
    rooms = (
        await ctx.session.execute(
            select(Room.platform_code, Room.room_code, Room.datacenter_code).where(
                Room.platform_code.in_(ctx.codes)
            )
        )
    ).all()
    dc_of = {(r.platform_code, r.room_code): r.datacenter_code for r in rooms}
    datacenters = sorted({(r.platform_code, r.datacenter_code) for r in rooms})
    feeds = await _point_samples(ctx, [*ENERGY_TYPES.values(), *POWER_TYPES.values()])
    by_dc: dict[tuple[str, str], list[_PointSamples]] = defaultdict(list)
    for f in feeds:
        by_dc[(f.platform_code, dc_of[(f.platform_code, f.room_code)])].append(f)
    dc_count: dict[str, int] = defaultdict(int)
    for platform_code, _ in datacenters:
        dc_count[platform_code] += 1
    reported = await _metric_samples(ctx, "dc.pue", ctx.codes)
    default_interval = await _default_interval(ctx, "dc.pue")

    def bounds(dc: str) -> tuple[float, float]:
        o = overrides.get(dc) or {}
        return (
            float(o.get("caution_above", params.get("caution_above", 1.3))),
            float(o.get("fail_above", params.get("fail_above", 1.5))),
        )

    def status_of(value: float | None, dc: str | None) -> str:
        if value is None:
            return "no_data"
        caution, fail = (
            bounds(dc)
            if dc
            else (float(params.get("caution_above", 1.3)), float(params.get("fail_above", 1.5)))
        )
        return "fail" if value > fail else "caution" if value > caution else "pass"

    components: list[dict[str, Any]] = []
    energy_num = energy_den = 0.0
    reported_num = reported_den = 0.0
    for platform_code, dc in datacenters:
        points = by_dc.get((platform_code, dc), [])
        method = None
        facility = it = None
        coverage = 0.0
        meters = {
            k: [p for p in points if p.point_type == t and len(p.times) >= 2] for k, t in ENERGY_TYPES.items()
        }
        powers = {k: [p for p in points if p.point_type == t] for k, t in POWER_TYPES.items()}
        if meters["facility"] and meters["it"]:
            method = "meters"
            facility = sum(meter_energy(p.values) for p in meters["facility"])
            it = sum(meter_energy(p.values) for p in meters["it"])
            coverage = min((p.times[-1] - p.times[0]).total_seconds() for p in meters["it"]) / ctx.period_s
        elif powers["facility"] and powers["it"]:
            method = "power"
            facility = sum(
                v * d / 3600.0 for p in powers["facility"] for v, d in zip(p.values, p.stand, strict=True)
            )
            it = sum(v * d / 3600.0 for p in powers["it"] for v, d in zip(p.values, p.stand, strict=True))
            coverage = min(sum(p.stand) for p in powers["it"]) / ctx.period_s
        value: float | None = None
        basis: dict[str, Any] = {
            "method": method,
            "caution_above": bounds(dc)[0],
            "fail_above": bounds(dc)[1],
        }
        if method is not None and it:
            value = facility / it if facility is not None else None
            energy_num += facility or 0.0
            energy_den += it
        else:
            method = None
            mine = [
                (series, samples, after)
                for (code, _), (series, samples, after) in reported.items()
                if code == platform_code
                and samples
                and (
                    (series.labels or {}).get("datacenter_code") == dc
                    or (not series.labels and dc_count[platform_code] == 1)
                )
            ]
            num = den = 0.0
            for _series, samples, after in mine:
                times = [t for t, _ in samples]
                stand = stand_in_window(
                    times, usual_interval(None, times, int(default_interval)), ctx.end, after
                )
                num += sum(v * d for (_, v), d in zip(samples, stand, strict=True))
                den += sum(stand)
            if den:
                method = "reported"
                value = num / den
                reported_num += num
                reported_den += den
                coverage = den / (len(mine) * ctx.period_s)
                basis["reported_samples"] = sum(len(s) for _, s, _ in mine)
            basis["method"] = method
        components.append(
            item(
                "datacenter",
                value=value,
                unit="1",
                numerator=facility if method in ("meters", "power") else None,
                denominator=it if method in ("meters", "power") else None,
                target=bounds(dc)[0],
                status=status_of(value, dc),
                basis=basis,
                coverage=min(coverage, 1.0) if ctx.period_s else None,
                platform_code=platform_code,
                datacenter_code=dc,
            )
        )
    if energy_den:
        value, num_out, den_out, method = energy_num / energy_den, energy_num, energy_den, "energy"
    elif reported_den:
        value, num_out, den_out, method = reported_num / reported_den, None, None, "reported"
    else:
        value, num_out, den_out, method = None, None, None, None
    judged = [c["status"] for c in components if c["status"] != "no_data"]
    status = "no_data" if value is None else worst([status_of(value, None), *judged])
    coverages = [c["coverage"] or 0.0 for c in components]
    return item(
        "pue",
        value=value,
        unit="1",
        numerator=num_out,
        denominator=den_out,
        target=float(params.get("caution_above", 1.3)),
        status=status,
        basis={
            "pooled": method,
            "caution_above": params.get("caution_above", 1.3),
            "fail_above": params.get("fail_above", 1.5),
            "datacenters": len(components),
        },
        coverage=sum(coverages) / len(coverages) if coverages else None,
        components=components,
    )


# -------------------------------------------------------------------------------- utilisation
async def _allocation(ctx: Context, used: str, total: str, code: str, unit: str) -> dict[str, Any]:
    rows = (
        await ctx.session.execute(
            select(MetricSeries.metric, func.sum(MetricSeries.last_value), func.count())
            .outerjoin(
                Asset,
                and_(
                    Asset.platform_code == MetricSeries.platform_code, Asset.asset_id == MetricSeries.asset_id
                ),
            )
            .where(
                MetricSeries.platform_code.in_(ctx.codes),
                MetricSeries.metric.in_([used, total]),
                MetricSeries.last_value.is_not(None),
                or_(Asset.asset_id.is_(None), Asset.lifecycle != "retired"),
            )
            .group_by(MetricSeries.metric)
        )
    ).all()
    sums = {metric: (float(s or 0.0), n) for metric, s, n in rows}
    num, den = sums.get(used, (0.0, 0))[0], sums.get(total, (0.0, 0))[0]
    value = _ratio(num, den)
    return item(
        code,
        value=value,
        unit="%",
        numerator=num,
        denominator=den,
        target=None,
        status="no_data" if value is None else "pass",
        basis={
            "used": used,
            "total": total,
            "series": {m: n for m, (_, n) in sums.items()},
            "unit": unit,
            "inventory_at": ctx.now,
        },
        coverage=None,
    )


def p95(values: Sequence[float]) -> float:
    """Nearest rank: the ⌈0.95 n⌉-th smallest value."""
    ordered = sorted(values)
    return ordered[max(math.ceil(0.95 * len(ordered)), 1) - 1]


async def _low_utilisation(ctx: Context, raw_retention_days: int) -> dict[str, Any]:
    below = float(ctx.policy.get("utilisation", {}).get("low_util_p95_below", 10.0))
    rows = (
        await ctx.session.execute(
            select(MetricSeries.platform_code, MetricSeries.series_id, MetricSeries.asset_id)
            .join(
                Asset,
                and_(
                    Asset.platform_code == MetricSeries.platform_code, Asset.asset_id == MetricSeries.asset_id
                ),
            )
            .where(
                MetricSeries.platform_code.in_(ctx.codes),
                MetricSeries.metric == "cpu.util",
                Asset.asset_type == "vm",
                Asset.lifecycle != "retired",
            )
            .order_by(MetricSeries.platform_code, MetricSeries.series_id)
        )
    ).all()
    by_platform: dict[str, dict[int, str]] = defaultdict(dict)
    for r in rows:
        by_platform[r.platform_code][r.series_id] = r.asset_id
    source = rollup_source(
        METRICS,
        raw_metric_buckets,
        wrap=lambda key: key[0],
        unwrap=lambda series: (series,),
        raw_retention_days=raw_retention_days,
        now=ctx.now,
    )
    step = Step("5m", ZoneInfo("UTC"))
    buckets: dict[tuple[str, str], dict[datetime, list[float]]] = defaultdict(dict)
    for platform_code, series in sorted(by_platform.items()):
        stream = source(ctx.session, platform_code, sorted(series), step, ctx.start, ctx.end)
        try:
            async for series_id, bucket in stream:
                vm = (platform_code, series[series_id])
                acc = buckets[vm].setdefault(bucket.start, [0.0, 0.0])
                acc[0] += bucket.total
                acc[1] += bucket.count
        finally:
            await stream.aclose()
    low = []
    for vm, per_bucket in sorted(buckets.items()):
        averages = [total / count for total, count in per_bucket.values() if count]
        if averages and p95(averages) < below:
            low.append({"platform_code": vm[0], "asset_id": vm[1], "p95": p95(averages)})
    judged = len(buckets)
    value = _ratio(len(low), judged)
    return item(
        "low_utilisation_vms",
        value=value,
        unit="%",
        numerator=len(low),
        denominator=judged,
        target=None,
        status="no_data" if value is None else "pass",
        basis={"metric": "cpu.util", "rule": f"p95 of 5-minute averages < {below} %", "vms": low[:100]},
        coverage=None,
    )


async def utilisation(ctx: Context, raw_retention_days: int) -> dict[str, Any]:
    components = [
        await _allocation(ctx, "host.vcpu.used", "host.vcpu.total", "vcpu_allocation", "vCPU"),
        await _allocation(ctx, "host.mem.used_mib", "host.mem.total_mib", "memory_allocation", "MiB"),
        await _low_utilisation(ctx, raw_retention_days),
    ]
    head = components[0]
    has_data = any(c["status"] != "no_data" for c in components)
    return item(
        "utilisation",
        value=head["value"],
        unit="%",
        numerator=head["numerator"],
        denominator=head["denominator"],
        target=None,
        status="pass" if has_data else "no_data",
        basis={
            "value_of": "vcpu_allocation",
            "low_util_p95_below": ctx.policy.get("utilisation", {}).get("low_util_p95_below", 10.0),
        },
        coverage=None,
        components=components,
    )


# -------------------------------------------------------------------------------- freshness
async def freshness(ctx: Context) -> dict[str, Any]:
    policy = await freshness_policy(ctx.session)
    after = policy.stale_after_intervals
    latest = await latest_receipts(ctx.session, ctx.codes)
    figures = []
    for p in ctx.platforms:
        components = []
        for kind in FRESHNESS_KINDS:
            interval = policy.interval_s(p, kind)
            received = latest.get((p.platform_code, kind))
            age = (ctx.now - received).total_seconds() if received else None
            status = "no_data" if age is None else ("fail" if age > after * interval else "pass")
            components.append(
                item(
                    kind,
                    value=age,
                    unit="s",
                    numerator=None,
                    denominator=None,
                    target=after * interval,
                    status=status,
                    basis={"latest_received_at": received, "expected_interval_s": interval},
                    coverage=None,
                    platform_code=p.platform_code,
                )
            )
        judged = [c for c in components if c["status"] != "no_data"]
        fresh = sum(c["status"] == "pass" for c in judged)
        value = _ratio(fresh, len(judged))
        figures.append(
            item(
                "freshness",
                value=value,
                unit="%",
                numerator=fresh,
                denominator=len(judged),
                target=100.0,
                status="no_data" if not judged else ("fail" if fresh < len(judged) else "pass"),
                basis={
                    "stale_after_intervals": after,
                    "stale": [c["code"] for c in judged if c["status"] == "fail"],
                },
                coverage=len(judged) / len(components),
                components=components,
                platform_code=p.platform_code,
            )
        )
    return _pool_ratio(
        "freshness",
        "%",
        figures,
        target_of=lambda _: 100.0,
        status_of=lambda v, _: "fail" if v < 100.0 else "pass",
        basis={"stale_after_intervals": after},
    )


# -------------------------------------------------------------------------------- all
async def with_platforms(
    compute: Callable[[Context], Awaitable[dict[str, Any]]], ctx: Context
) -> dict[str, Any]:
    """A pooled figure, followed (for several platforms) by each platform's own figure."""
    pooled = await compute(ctx)
    if len(ctx.platforms) > 1:
        for platform in ctx.platforms:
            own = await compute(replace(ctx, platforms=[platform]))
            pooled["components"].append(
                {**own, "code": "platform", "platform_code": platform.platform_code, "components": []}
            )
    return pooled


async def compute_indicators(
    session: AsyncSession,
    platforms: Sequence[Platform],
    window: Window,
    *,
    now: datetime,
    region_code: str | None = None,
    raw_retention_days: int = 30,
) -> list[dict[str, Any]]:
    """The items of §7 for ``platforms`` pooled (one platform: its own figures)."""
    ctx = Context(
        session=session,
        platforms=sorted(platforms, key=lambda p: p.platform_code),
        start=window.start,
        end=window.end,
        window=window,
        now=now,
        policy=await policy_params(session),
    )
    if not ctx.platforms:
        return [
            item(
                code,
                value=None,
                unit="",
                numerator=None,
                denominator=None,
                target=None,
                status="no_data",
                basis={"platforms": 0},
                coverage=None,
            )
            for code in NAMES_ZH
        ]

    async def util(c: Context) -> dict[str, Any]:
        return await utilisation(c, raw_retention_days)

    items = [
        await availability(ctx),
        await with_platforms(domestic_rate, ctx),
        await storage_bandwidth(ctx),
        await with_platforms(pue, ctx),
        await with_platforms(env_compliance, ctx),
        await with_platforms(util, ctx),
        await freshness(ctx),
    ]
    return [jsonable(i) for i in items]


def jsonable(value: Any) -> Any:
    """Times as RFC 3339 strings (UTC), so a figure can be stored as it was answered (§7.9)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
