"""§6.6 environment states and excursions, and the derived dew point (docs/indicators.md).

States are evaluated inside the push that stores the samples (so an answer never shows an
unjudged sample), over a window around the new samples wide enough that every run of samples
past a critical bound that the push can change is seen whole, or long enough already to be an
excursion whatever lies outside the window. A threshold change marks points with
``reevaluate_from``; :func:`reevaluate_marked` (a scheduled job) re-judges them day by day.
"""

from __future__ import annotations

import itertools
import logging
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import (
    EnvironmentExcursion,
    EnvironmentPoint,
    EnvironmentSample,
    PointTypeDefinition,
    ThresholdOverride,
)
from app.repositories.bulk import chunks, key_in, upsert_rows

log = logging.getLogger(__name__)

#: a point's usual interval when it neither reports one nor has two samples to measure (s)
DEFAULT_INTERVAL_S = 300
#: a sample stands at most this many usual intervals (§6.6)
CAP_INTERVALS = 2
#: Magnus coefficients over water (Alduchov & Eskridge / Sonntag): b, c (℃)
MAGNUS_B, MAGNUS_C = 17.62, 243.12
DEW_POINT_TYPE = "cold_aisle_dew_point"
HUMIDITY_TYPE = "cold_aisle_rh"
DEW_POINT_TEMPERATURE_TYPES = ("cold_aisle_temp", "rack_inlet_temp")
DERIVED_PREFIX = "dp~"
BOUNDS = ("lower_critical", "lower_caution", "upper_caution", "upper_critical")
_REEVALUATE_CHUNK = timedelta(days=1)

PointKey = tuple[str, str]


@dataclass(frozen=True)
class Thresholds:
    """One §6.6 threshold row and where it came from (``default``, ``platform`` or ``room``)."""

    lower_critical: float | None = None
    lower_caution: float | None = None
    upper_caution: float | None = None
    upper_critical: float | None = None
    dwell_s: int = 0
    source: str | None = None
    origin: str = "default"

    @property
    def judged(self) -> bool:
        return any(getattr(self, b) is not None for b in BOUNDS)

    def past_critical(self, value: float) -> str | None:
        if self.upper_critical is not None and value > self.upper_critical:
            return "upper_critical"
        if self.lower_critical is not None and value < self.lower_critical:
            return "lower_critical"
        return None

    def band(self, value: float) -> str:
        """The state of a value that is not past a critical bound."""
        if (self.upper_caution is not None and value > self.upper_caution) or (
            self.lower_caution is not None and value < self.lower_caution
        ):
            return "caution"
        return "normal"

    def as_dict(self) -> dict[str, Any]:
        return {
            **{b: getattr(self, b) for b in BOUNDS},
            "dwell_s": self.dwell_s,
            "source": self.source,
            "origin": self.origin,
        }


@dataclass
class ThresholdBook:
    """Every threshold row of the deployment, resolved room → platform → default."""

    defaults: dict[str, Thresholds] = field(default_factory=dict)
    overrides: dict[tuple[str, str, str], Thresholds] = field(default_factory=dict)

    def resolve(self, platform_code: str, room_code: str, point_type: str) -> Thresholds:
        return (
            self.overrides.get((platform_code, room_code, point_type))
            or self.overrides.get((platform_code, "", point_type))
            or self.defaults.get(point_type)
            or Thresholds()
        )


def _row(row: Any, origin: str) -> Thresholds:
    return Thresholds(
        **{b: getattr(row, b) for b in BOUNDS}, dwell_s=row.dwell_s or 0, source=row.source, origin=origin
    )


async def load_thresholds(session: AsyncSession) -> ThresholdBook:
    book = ThresholdBook()
    for d in (await session.execute(select(PointTypeDefinition))).scalars():
        book.defaults[d.point_type] = _row(d, "default")
    for o in (await session.execute(select(ThresholdOverride))).scalars():
        book.overrides[(o.platform_code, o.room_code, o.point_type)] = _row(
            o, "room" if o.room_code else "platform"
        )
    return book


def magnus_dew_point(temperature_c: float, rh_percent: float) -> float | None:
    """Dew point (℃) from air temperature and relative humidity; None for a humidity ≤ 0."""
    if rh_percent <= 0:
        return None
    gamma = math.log(min(rh_percent, 100.0) / 100.0) + MAGNUS_B * temperature_c / (MAGNUS_C + temperature_c)
    return MAGNUS_C * gamma / (MAGNUS_B - gamma)


def usual_interval(
    interval_s: int | None, times: Sequence[datetime], default: int = DEFAULT_INTERVAL_S
) -> float:
    """The point's reported interval, else the median gap between ``times``, else ``default``."""
    if interval_s:
        return float(interval_s)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times) if b > a]
    return float(statistics.median(gaps)) if gaps else float(default)


def standing(times: Sequence[datetime], interval: float, next_after: datetime | None = None) -> list[float]:
    """Seconds each sample stands: until the next one, at most ``CAP_INTERVALS`` × interval; the
    newest (no next sample, and ``next_after`` None) stands one interval."""
    cap = CAP_INTERVALS * interval
    out: list[float] = []
    for i, ts in enumerate(times):
        nxt = times[i + 1] if i + 1 < len(times) else next_after
        out.append(interval if nxt is None else min((nxt - ts).total_seconds(), cap))
    return out


@dataclass
class _Run:
    first: int
    last: int
    bound: str
    duration: float = 0.0
    left_open: bool = False
    right_open: bool = False


@dataclass
class PointEvaluation:
    states: list[str | None]
    excursions: list[dict[str, Any]]
    #: indices whose state could not be decided inside the window (short runs touching its edge)
    undecided: set[int]


def judge(
    times: Sequence[datetime],
    values: Sequence[float],
    thresholds: Thresholds,
    interval: float,
    *,
    earlier_within_cap: bool,
    later_after: datetime | None,
) -> PointEvaluation:
    """States and excursions of consecutive samples of one point (the pure core of §6.6).

    ``earlier_within_cap``: a sample precedes ``times[0]`` closely enough to continue a run into
    the window; ``later_after``: the first sample after the window, if any.
    """
    n = len(times)
    stand = standing(times, interval, later_after)
    cap = CAP_INTERVALS * interval
    sides = [thresholds.past_critical(v) for v in values]
    runs: list[_Run] = []
    current: _Run | None = None
    for i in range(n):
        side = sides[i]
        contiguous = i > 0 and (times[i] - times[i - 1]).total_seconds() <= cap
        if side is None:
            current = None
            continue
        if current is not None and contiguous and current.bound == side:
            current.last = i
        else:
            current = _Run(first=i, last=i, bound=side)
            runs.append(current)
    states: list[str | None] = [None if s else thresholds.band(values[i]) for i, s in enumerate(sides)]
    undecided: set[int] = set()
    excursions: list[dict[str, Any]] = []
    for run in runs:
        run.duration = sum(stand[run.first : run.last + 1])
        run.left_open = run.first == 0 and earlier_within_cap
        run.right_open = (
            run.last == n - 1
            and later_after is not None
            and (later_after - times[-1]).total_seconds() <= cap
            and sides[-1] is not None
        )
        # §6.6: with a non-zero dwell a single spike is never an excursion, however long it stands
        if run.duration >= thresholds.dwell_s and (thresholds.dwell_s == 0 or run.last > run.first):
            state = "critical"
            limit = thresholds.upper_critical if run.bound == "upper_critical" else thresholds.lower_critical
            members = values[run.first : run.last + 1]
            peak = max(members) if run.bound == "upper_critical" else min(members)
            excursions.append(
                {
                    "start_ts": times[run.first],
                    "end_ts": times[run.last] + timedelta(seconds=stand[run.last]),
                    "bound": run.bound,
                    "threshold": limit,
                    "peak_value": peak,
                    "samples": run.last - run.first + 1,
                    "left_open": run.left_open,
                    "right_open": run.right_open,
                }
            )
        elif run.left_open or run.right_open:
            undecided.update(range(run.first, run.last + 1))
            continue
        else:
            state = "caution"
        for i in range(run.first, run.last + 1):
            states[i] = state
    return PointEvaluation(states, excursions, undecided)


@dataclass
class _Point:
    room_code: str
    point_code: str
    point_type: str
    interval_s: int | None
    last_ts: datetime | None


async def evaluate_points(
    session: AsyncSession,
    platform_code: str,
    touched: Mapping[PointKey, tuple[datetime, datetime]],
    book: ThresholdBook,
    now: datetime,
) -> None:
    """Re-judge every point of ``touched`` around its changed time range ``(first, last)``.

    The samples of all the points are read in one query per chunk of points (a push usually
    brings one time range for many points); a point whose measured interval is longer than
    assumed is judged again on its own with a window wide enough for it.
    """
    if not touched:
        return
    rows = await session.execute(
        select(
            EnvironmentPoint.room_code,
            EnvironmentPoint.point_code,
            EnvironmentPoint.point_type,
            EnvironmentPoint.interval_s,
            EnvironmentPoint.last_ts,
        ).where(
            EnvironmentPoint.platform_code == platform_code,
            EnvironmentPoint.room_code.in_(sorted({r for r, _ in touched})),
        )
    )
    points = {(r.room_code, r.point_code): _Point(*r) for r in rows if (r.room_code, r.point_code) in touched}
    plain: list[PointKey] = []
    judged: list[tuple[PointKey, Thresholds]] = []
    for key in sorted(points):
        thresholds = book.resolve(platform_code, points[key].room_code, points[key].point_type)
        if thresholds.judged:
            judged.append((key, thresholds))
        else:
            plain.append(key)
    for key in plain:
        first, last = touched[key]
        await _evaluate_point(session, platform_code, points[key], first, last, book, now)
    for part in chunks(judged, _POINT_CHUNK):
        await _evaluate_chunk(
            session, platform_code, [(points[k], t, *touched[k]) for k, t in part], book, now
        )


_POINT_CHUNK = 500


async def _evaluate_chunk(
    session: AsyncSession,
    platform_code: str,
    part: Sequence[tuple[_Point, Thresholds, datetime, datetime]],
    book: ThresholdBook,
    now: datetime,
) -> None:
    windows: dict[PointKey, tuple[datetime, datetime, float]] = {}
    for point, thresholds, first, last in part:
        guess = float(point.interval_s or DEFAULT_INTERVAL_S)
        margin = timedelta(seconds=thresholds.dwell_s + 2 * CAP_INTERVALS * guess)
        windows[(point.room_code, point.point_code)] = (first - margin, last + margin, CAP_INTERVALS * guess)
    # one read for the chunk, one cap beyond each side (to see a neighbour that continues a run)
    lo = min(w[0] - timedelta(seconds=w[2]) for w in windows.values())
    hi = max(w[1] + timedelta(seconds=w[2]) for w in windows.values())
    result = await session.execute(
        select(
            EnvironmentSample.room_code,
            EnvironmentSample.point_code,
            EnvironmentSample.ts,
            EnvironmentSample.value,
            EnvironmentSample.state,
        )
        .where(
            EnvironmentSample.platform_code == platform_code,
            key_in((EnvironmentSample.room_code, EnvironmentSample.point_code), sorted(windows)),
            EnvironmentSample.ts >= lo,
            EnvironmentSample.ts <= hi,
        )
        .order_by(EnvironmentSample.room_code, EnvironmentSample.point_code, EnvironmentSample.ts)
    )
    by_point: dict[PointKey, list[Any]] = {}
    for row in result:
        by_point.setdefault((row.room_code, row.point_code), []).append(row)
    changes: list[dict[str, Any]] = []
    outcomes: list[tuple[_Point, list[datetime], PointEvaluation]] = []
    for point, thresholds, first, last in part:
        key = (point.room_code, point.point_code)
        w_lo, w_hi, cap_guess = windows[key]
        fetched = by_point.get(key, [])
        samples = [r for r in fetched if w_lo <= r.ts <= w_hi]
        times = [r.ts for r in samples]
        interval = usual_interval(point.interval_s, times)
        if not samples:
            continue
        if not point.interval_s and interval > cap_guess / CAP_INTERVALS:
            await _evaluate_point(session, platform_code, point, first, last, book, now)
            continue
        cap = CAP_INTERVALS * interval
        before = [r.ts for r in fetched if r.ts < w_lo]
        after = [r.ts for r in fetched if r.ts > w_hi]
        later: datetime | None = after[0] if after else None
        if later is None and point.last_ts is not None and point.last_ts > times[-1]:
            later = point.last_ts  # a later sample exists beyond the read: more than a cap away
        outcome = judge(
            times,
            [r.value for r in samples],
            thresholds,
            interval,
            earlier_within_cap=bool(before) and (times[0] - before[-1]).total_seconds() <= cap,
            later_after=later,
        )
        changes.extend(
            {
                "b_room": point.room_code,
                "b_point": point.point_code,
                "b_ts": r.ts,
                "b_state": outcome.states[i],
                "b_at": now,
            }
            for i, r in enumerate(samples)
            if i not in outcome.undecided and (outcome.states[i] != r.state or first <= r.ts <= last)
        )
        outcomes.append((point, times, outcome))
    if changes:
        table: Table = EnvironmentSample.__table__  # type: ignore[assignment]
        await session.execute(
            update(table)
            .where(
                table.c.platform_code == platform_code,
                table.c.room_code == bindparam("b_room"),
                table.c.point_code == bindparam("b_point"),
                table.c.ts == bindparam("b_ts"),
            )
            .values(state=bindparam("b_state"), evaluated_at=bindparam("b_at")),
            changes,
        )
    zones = {
        (p.room_code, p.point_code): z
        for p, times, outcome in outcomes
        if (z := _decided_zone(times, outcome)) is not None
    }
    if not zones:
        return
    stored = (
        (
            await session.execute(
                select(EnvironmentExcursion).where(
                    EnvironmentExcursion.platform_code == platform_code,
                    key_in((EnvironmentExcursion.room_code, EnvironmentExcursion.point_code), sorted(zones)),
                    EnvironmentExcursion.end_ts > min(z[0] for z in zones.values()),
                    EnvironmentExcursion.start_ts <= max(z[1] for z in zones.values()),
                )
            )
        )
        .scalars()
        .all()
    )
    existing: dict[PointKey, list[EnvironmentExcursion]] = {}
    for e in stored:
        zone = zones.get((e.room_code, e.point_code))
        if zone is not None and e.end_ts > zone[0] and e.start_ts <= zone[1]:
            existing.setdefault((e.room_code, e.point_code), []).append(e)
    rows: list[dict[str, Any]] = []
    stale: dict[PointKey, list[datetime]] = {}
    for point, _times, outcome in outcomes:
        key = (point.room_code, point.point_code)
        if key not in zones:
            continue
        new_rows, doomed = _excursion_rows(platform_code, point, outcome, existing.get(key, []), now)
        rows.extend(new_rows)
        stale[key] = doomed
    await _write_excursions(session, platform_code, stale, rows)


async def _evaluate_point(
    session: AsyncSession,
    platform_code: str,
    point: _Point,
    first: datetime,
    last: datetime,
    book: ThresholdBook,
    now: datetime,
) -> None:
    thresholds = book.resolve(platform_code, point.room_code, point.point_type)
    where = and_(
        EnvironmentSample.platform_code == platform_code,
        EnvironmentSample.room_code == point.room_code,
        EnvironmentSample.point_code == point.point_code,
    )
    if not thresholds.judged:
        await session.execute(
            update(EnvironmentSample)
            .where(where, EnvironmentSample.ts >= first, EnvironmentSample.ts <= last)
            .values(state=None, evaluated_at=now)
        )
        return
    guess = float(point.interval_s or DEFAULT_INTERVAL_S)
    while True:
        # the window must reach dwell + 2 caps past the changed range on each side (see judge)
        margin = timedelta(seconds=thresholds.dwell_s + 2 * CAP_INTERVALS * guess)
        lo, hi = first - margin, last + margin
        result = await session.execute(
            select(EnvironmentSample.ts, EnvironmentSample.value, EnvironmentSample.state)
            .where(where, EnvironmentSample.ts >= lo, EnvironmentSample.ts <= hi)
            .order_by(EnvironmentSample.ts)
        )
        samples = result.all()
        times = [s.ts for s in samples]
        interval = usual_interval(point.interval_s, times)
        if interval <= guess or point.interval_s:
            break
        guess = interval
    if not samples:
        return
    before = await session.scalar(
        select(EnvironmentSample.ts)
        .where(where, EnvironmentSample.ts < lo)
        .order_by(EnvironmentSample.ts.desc())
        .limit(1)
    )
    after = await session.scalar(
        select(EnvironmentSample.ts)
        .where(where, EnvironmentSample.ts > hi)
        .order_by(EnvironmentSample.ts)
        .limit(1)
    )
    cap = CAP_INTERVALS * interval
    outcome = judge(
        times,
        [s.value for s in samples],
        thresholds,
        interval,
        earlier_within_cap=before is not None and (times[0] - before).total_seconds() <= cap,
        later_after=after,
    )
    changes = [
        {"b_ts": s.ts, "b_state": outcome.states[i], "b_at": now}
        for i, s in enumerate(samples)
        if i not in outcome.undecided and (outcome.states[i] != s.state or first <= s.ts <= last)
    ]
    if changes:
        table: Table = EnvironmentSample.__table__  # type: ignore[assignment]
        await session.execute(
            update(table)
            .where(
                table.c.platform_code == platform_code,
                table.c.room_code == point.room_code,
                table.c.point_code == point.point_code,
                table.c.ts == bindparam("b_ts"),
            )
            .values(state=bindparam("b_state"), evaluated_at=bindparam("b_at")),
            changes,
        )
    await _store_excursions(session, platform_code, point, times, outcome, now)


async def _store_excursions(
    session: AsyncSession,
    platform_code: str,
    point: _Point,
    times: Sequence[datetime],
    outcome: PointEvaluation,
    now: datetime,
) -> None:
    """Replace the point's excursions inside the decided part of the window with the new ones."""
    zone = _decided_zone(times, outcome)
    if zone is None:
        return
    existing = (
        (
            await session.execute(
                select(EnvironmentExcursion).where(
                    EnvironmentExcursion.platform_code == platform_code,
                    EnvironmentExcursion.room_code == point.room_code,
                    EnvironmentExcursion.point_code == point.point_code,
                    EnvironmentExcursion.end_ts > zone[0],
                    EnvironmentExcursion.start_ts <= zone[1],
                )
            )
        )
        .scalars()
        .all()
    )
    rows, stale = _excursion_rows(platform_code, point, outcome, existing, now)
    await _write_excursions(session, platform_code, {(point.room_code, point.point_code): stale}, rows)


def _decided_zone(times: Sequence[datetime], outcome: PointEvaluation) -> tuple[datetime, datetime] | None:
    decided = [i for i in range(len(times)) if i not in outcome.undecided]
    return (times[decided[0]], times[decided[-1]]) if decided else None


def _excursion_rows(
    platform_code: str,
    point: _Point,
    outcome: PointEvaluation,
    existing: Sequence[EnvironmentExcursion],
    now: datetime,
) -> tuple[list[dict[str, Any]], list[datetime]]:
    """The point's excursions to write, and the start times of the stored ones they replace."""
    rows: list[dict[str, Any]] = []
    for exc in outcome.excursions:
        start, end, peak = exc["start_ts"], exc["end_ts"], exc["peak_value"]
        upper = exc["bound"] == "upper_critical"
        for old in existing:
            # a run continuing past the window keeps what the stored excursion knows beyond it
            if exc["left_open"] and old.start_ts < start <= old.end_ts:
                start = old.start_ts
                peak = max(peak, old.peak_value) if upper else min(peak, old.peak_value)
            if exc["right_open"] and old.start_ts <= end and old.end_ts > end:
                end = old.end_ts
                peak = max(peak, old.peak_value) if upper else min(peak, old.peak_value)
        rows.append(
            {
                "platform_code": platform_code,
                "room_code": point.room_code,
                "point_code": point.point_code,
                "start_ts": start,
                "end_ts": end,
                "point_type": point.point_type,
                "bound": exc["bound"],
                "threshold": exc["threshold"],
                "peak_value": peak,
                "samples": exc["samples"],
                "updated_at": now,
            }
        )
    return rows, [e.start_ts for e in existing]


async def _write_excursions(
    session: AsyncSession,
    platform_code: str,
    stale: Mapping[PointKey, Sequence[datetime]],
    rows: list[dict[str, Any]],
) -> None:
    table: Table = EnvironmentExcursion.__table__  # type: ignore[assignment]
    doomed = [
        {"b_room": room, "b_point": point, "b_start": start}
        for (room, point), starts in sorted(stale.items())
        for start in starts
    ]
    if doomed:
        await session.execute(
            delete(table).where(
                table.c.platform_code == platform_code,
                table.c.room_code == bindparam("b_room"),
                table.c.point_code == bindparam("b_point"),
                table.c.start_ts == bindparam("b_start"),
            ),
            doomed,
        )
    rows.sort(key=lambda r: (r["room_code"], r["point_code"], r["start_ts"]))
    await upsert_rows(
        session,
        EnvironmentExcursion.__table__,
        rows,
        key=("platform_code", "room_code", "point_code", "start_ts"),
    )


# ---------------------------------------------------------------------------------------- dew point
async def derive_dew_points(
    session: AsyncSession,
    platform_code: str,
    touched: Mapping[PointKey, tuple[datetime, datetime]],
    seq: int,
    now: datetime,
) -> dict[PointKey, tuple[datetime, datetime]]:
    """Write the dew-point samples a push of temperature / humidity samples implies.

    Returns the derived points touched, with their time ranges, to be judged like sensors.
    """
    rooms = sorted({room for room, _ in touched})
    if not rooms:
        return {}
    rows = (
        (
            await session.execute(
                select(EnvironmentPoint).where(
                    EnvironmentPoint.platform_code == platform_code, EnvironmentPoint.room_code.in_(rooms)
                )
            )
        )
        .scalars()
        .all()
    )
    by_place: dict[tuple[str, str | None, str | None], list[EnvironmentPoint]] = {}
    for p in rows:
        by_place.setdefault((p.room_code, p.rack_code, p.position), []).append(p)
    derived_touched: dict[PointKey, tuple[datetime, datetime]] = {}
    for place, members in sorted(by_place.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2] or "")):
        if any(p.point_type == DEW_POINT_TYPE and not p.derived_from for p in members):
            continue  # a dew-point sensor reports here
        humidity = sorted((p for p in members if p.point_type == HUMIDITY_TYPE), key=lambda p: p.point_code)
        temperature = sorted(
            (p for p in members if p.point_type in DEW_POINT_TEMPERATURE_TYPES), key=lambda p: p.point_code
        )
        if not humidity or not temperature:
            continue
        temp = temperature[0]
        for rh in humidity:
            ranges = [
                touched[k] for k in ((place[0], rh.point_code), (place[0], temp.point_code)) if k in touched
            ]
            if not ranges:
                continue
            written = await _derive_pair(
                session,
                platform_code,
                rh,
                temp,
                min(r[0] for r in ranges),
                max(r[1] for r in ranges),
                seq,
                now,
            )
            if written is not None:
                derived_touched[(rh.room_code, DERIVED_PREFIX + rh.point_code)] = written
    return derived_touched


async def _samples(
    session: AsyncSession, platform_code: str, room: str, point: str, lo: datetime, hi: datetime
) -> list[tuple[datetime, float]]:
    result = await session.execute(
        select(EnvironmentSample.ts, EnvironmentSample.value)
        .where(
            EnvironmentSample.platform_code == platform_code,
            EnvironmentSample.room_code == room,
            EnvironmentSample.point_code == point,
            EnvironmentSample.ts >= lo,
            EnvironmentSample.ts <= hi,
        )
        .order_by(EnvironmentSample.ts)
    )
    return [(r.ts, r.value) for r in result]


async def _derive_pair(
    session: AsyncSession,
    platform_code: str,
    rh: EnvironmentPoint,
    temp: EnvironmentPoint,
    first: datetime,
    last: datetime,
    seq: int,
    now: datetime,
) -> tuple[datetime, datetime] | None:
    """Dew points for the humidity samples in ``[first − cap, last + cap]`` (a temperature change
    alters the dew points of the humidity samples it stands for)."""
    cap = timedelta(seconds=CAP_INTERVALS * float(temp.interval_s or rh.interval_s or DEFAULT_INTERVAL_S))
    humidity = await _samples(session, platform_code, rh.room_code, rh.point_code, first - cap, last + cap)
    if not humidity:
        return None
    temps = await _samples(
        session, platform_code, temp.room_code, temp.point_code, humidity[0][0] - cap, humidity[-1][0]
    )
    code = DERIVED_PREFIX + rh.point_code
    out: list[dict[str, Any]] = []
    j = -1
    for ts, rh_value in humidity:
        while j + 1 < len(temps) and temps[j + 1][0] <= ts:
            j += 1
        if j < 0 or ts - temps[j][0] > cap:
            continue  # no temperature standing at this time
        dew = magnus_dew_point(temps[j][1], rh_value)
        if dew is None:
            continue
        out.append(
            {
                "platform_code": platform_code,
                "room_code": rh.room_code,
                "point_code": code,
                "ts": ts,
                "value": round(dew, 3),
                "state": None,
                "evaluated_at": None,
                "received_at": now,
                "change_seq": seq,
            }
        )
    if not out:
        return None
    await upsert_rows(
        session,
        EnvironmentPoint.__table__,
        [
            {
                "platform_code": platform_code,
                "room_code": rh.room_code,
                "point_code": code,
                "point_type": DEW_POINT_TYPE,
                "rack_code": rh.rack_code,
                "position": rh.position,
                "height_m": rh.height_m,
                "interval_s": rh.interval_s,
                "derived_from": [temp.point_code, rh.point_code],
                "created_at": now,
                "updated_at": now,
                "last_ts": out[-1]["ts"],
            }
        ],
        key=("platform_code", "room_code", "point_code"),
        update=["derived_from"],
    )
    points: Table = EnvironmentPoint.__table__  # type: ignore[assignment]
    await session.execute(
        update(points)
        .where(
            points.c.platform_code == platform_code,
            points.c.room_code == rh.room_code,
            points.c.point_code == code,
            (points.c.last_ts.is_(None)) | (points.c.last_ts < out[-1]["ts"]),
        )
        .values(last_ts=out[-1]["ts"])
    )
    await upsert_rows(
        session, EnvironmentSample.__table__, out, key=("platform_code", "room_code", "point_code", "ts")
    )
    return out[0]["ts"], out[-1]["ts"]


async def judge_pushed_samples(
    session: AsyncSession,
    platform_code: str,
    touched: Mapping[PointKey, tuple[datetime, datetime]],
    seq: int,
    now: datetime,
) -> None:
    """The push's part: derive dew points, then judge the pushed and the derived points."""
    derived = await derive_dew_points(session, platform_code, touched, seq, now)
    book = await load_thresholds(session)
    await evaluate_points(session, platform_code, {**touched, **derived}, book, now)


# --------------------------------------------------------------------------------- re-evaluation
async def mark_for_reevaluation(
    session: AsyncSession,
    *,
    point_types: Iterable[str],
    platform_code: str | None = None,
    room_code: str | None = None,
) -> None:
    """Thresholds changed: every stored sample of these points is judged again by the job."""
    stmt = update(EnvironmentPoint).where(EnvironmentPoint.point_type.in_(sorted(set(point_types))))
    if platform_code is not None:
        stmt = stmt.where(EnvironmentPoint.platform_code == platform_code)
    if room_code:
        stmt = stmt.where(EnvironmentPoint.room_code == room_code)
    await session.execute(stmt.values(reevaluate_from=datetime(1970, 1, 1, tzinfo=UTC)))


async def reevaluate_marked(sessionmaker: async_sessionmaker[AsyncSession], *, limit: int = 500) -> int:
    """Judge marked points again, a day of samples per point and transaction; returns points done."""
    done = 0
    async with sessionmaker() as session:
        marked = (
            await session.execute(
                select(
                    EnvironmentPoint.platform_code,
                    EnvironmentPoint.room_code,
                    EnvironmentPoint.point_code,
                )
                .where(EnvironmentPoint.reevaluate_from.is_not(None))
                .order_by(
                    EnvironmentPoint.platform_code, EnvironmentPoint.room_code, EnvironmentPoint.point_code
                )
                .limit(limit)
            )
        ).all()
    for platform_code, room_code, point_code in marked:
        while True:
            async with sessionmaker() as session, session.begin():
                point = (
                    await session.execute(
                        select(EnvironmentPoint)
                        .where(
                            EnvironmentPoint.platform_code == platform_code,
                            EnvironmentPoint.room_code == room_code,
                            EnvironmentPoint.point_code == point_code,
                        )
                        .with_for_update()
                    )
                ).scalar_one_or_none()
                if point is None or point.reevaluate_from is None:
                    break
                start = await session.scalar(
                    select(EnvironmentSample.ts)
                    .where(
                        EnvironmentSample.platform_code == platform_code,
                        EnvironmentSample.room_code == room_code,
                        EnvironmentSample.point_code == point_code,
                        EnvironmentSample.ts >= point.reevaluate_from,
                    )
                    .order_by(EnvironmentSample.ts)
                    .limit(1)
                )
                if start is None:
                    point.reevaluate_from = None
                    break
                end = start + _REEVALUATE_CHUNK
                now = datetime.now(UTC)
                book = await load_thresholds(session)
                await _evaluate_point(
                    session,
                    platform_code,
                    _Point(room_code, point_code, point.point_type, point.interval_s, point.last_ts),
                    start,
                    end - timedelta(microseconds=1),
                    book,
                    now,
                )
                point.reevaluate_from = end
        done += 1
    return done
