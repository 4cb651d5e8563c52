"""Rollups 5m / 1h / 1d of raw samples (§5): the job that builds them and the series source that reads them.

**What is built.** Every raw sample write carries its platform's next ``change_seq`` (taken in
commit order, see :mod:`app.services.changes`). ``rollup_state.built_seq`` = *B* means: every
bucket row is exact for all sample changes up to *B*. The job reads the changes after *B* (late
samples and corrections included, since a correction is a new write), recomputes the 5m buckets
they touch from raw samples, then the 1h and 1d buckets holding those from the 5m rows, and
moves *B* forward — all in one transaction per platform and kind, under the state row's lock.

**What is read.** A series answer at 5m / 1h / 1d reads, in this order, *B*, the bucket rows
and the raw changes after *B* in the window: a bucket touched by one of those is computed from
raw samples instead, as are the partial buckets at the window's edges (only the samples inside
the window count) and everything when the job has not run yet. So an answer always reflects
every accepted sample, and never shows a hole between a push and the next run. Edge buckets
older than the raw retention can no longer be cut and are answered whole from the rollup.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import dialect_name, write_session
from app.models import (
    ChangeCounter,
    EnvironmentPoint,
    EnvironmentRollup1d,
    EnvironmentRollup1h,
    EnvironmentRollup5m,
    EnvironmentSample,
    MetricRollup1d,
    MetricRollup1h,
    MetricRollup5m,
    MetricSample,
    MetricSeries,
    Platform,
    RollupState,
)
from app.repositories.bulk import chunks, key_in, upsert_rows
from app.services.buckets import Bucket, BucketSource, Step
from app.services.changes import sample_counter

log = logging.getLogger(__name__)

Key = tuple[Any, ...]
#: keys per ``IN`` list of one statement
_KEY_CHUNK = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: dirty buckets further apart than this are read from raw in separate statements
_SPAN_GAP = timedelta(hours=1)
#: a series answer with more not-yet-built buckets (or pending samples) than this reads the whole window raw
_MAX_DIRTY_BUCKETS = 2_000
_MAX_PENDING = 100_000
#: … or needs more separate raw reads than this
_MAX_RAW_RANGES = 16


@dataclass(frozen=True)
class RollupKind:
    """One kind of raw samples and its rollup tables."""

    name: str
    samples: Table
    key_names: tuple[str, ...]
    tables: dict[str, Table]
    #: where the keys of a platform are registered (retention walks them in chunks)
    registry: Table
    retention_setting: str

    def keys_of(self, table: Table) -> list[Any]:
        return [table.c[name] for name in self.key_names]


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


METRICS = RollupKind(
    "metric_sample",
    _table(MetricSample),
    ("series_id",),
    {"5m": _table(MetricRollup5m), "1h": _table(MetricRollup1h), "1d": _table(MetricRollup1d)},
    _table(MetricSeries),
    "retention_metrics_days",
)
ENVIRONMENT = RollupKind(
    "environment_sample",
    _table(EnvironmentSample),
    ("room_code", "point_code"),
    {"5m": _table(EnvironmentRollup5m), "1h": _table(EnvironmentRollup1h), "1d": _table(EnvironmentRollup1d)},
    _table(EnvironmentPoint),
    "retention_environment_days",
)
KINDS = (METRICS, ENVIRONMENT)


# --- buckets ---------------------------------------------------------------------------------
def _merge(into: Bucket | None, other: Bucket) -> Bucket:
    if into is None:
        return Bucket(
            other.start, other.count, other.total, other.minimum, other.maximum, other.last_ts, other.last
        )
    into.count += other.count
    into.total += other.total
    into.minimum = min(into.minimum, other.minimum)
    into.maximum = max(into.maximum, other.maximum)
    if other.last_ts >= into.last_ts:
        into.last_ts, into.last = other.last_ts, other.last
    return into


def _bucket_row(row: Any) -> Bucket:
    return Bucket(row.bucket_start, row.count, row.total, row.minimum, row.maximum, row.last_ts, row.last)


def _spans(
    starts: Iterable[datetime], length: Callable[[datetime], datetime]
) -> list[tuple[datetime, datetime]]:
    """Sorted bucket starts → ``[start, end)`` spans, joining buckets closer than :data:`_SPAN_GAP`."""
    spans: list[tuple[datetime, datetime]] = []
    for start in sorted(set(starts)):
        end = length(start)
        if spans and start - spans[-1][1] <= _SPAN_GAP:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


# --- the job ---------------------------------------------------------------------------------
@dataclass
class BuildReport:
    platform_code: str
    kind: str
    changes: int = 0
    buckets: int = 0
    built_seq: int = -1


async def _lock_state(session: AsyncSession, kind: RollupKind, platform_code: str, tz: str) -> RollupState:
    insert: Any = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    await session.execute(
        insert(RollupState)
        .values(
            kind=kind.name, platform_code=platform_code, built_seq=-1, day_tz=tz, updated_at=datetime.now(UTC)
        )
        .on_conflict_do_nothing(index_elements=["kind", "platform_code"])
    )
    state = (
        await session.execute(
            select(RollupState)
            .where(RollupState.kind == kind.name, RollupState.platform_code == platform_code)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    return state


async def _read_samples(
    session: AsyncSession,
    kind: RollupKind,
    platform_code: str,
    keys: Sequence[Key],
    start: datetime,
    end: datetime,
) -> list[tuple[Key, datetime, float]]:
    table = kind.samples
    columns = kind.keys_of(table)
    out: list[tuple[Key, datetime, float]] = []
    for part in chunks(sorted(keys), _KEY_CHUNK):
        rows = await session.execute(
            select(*columns, table.c.ts, table.c.value).where(
                table.c.platform_code == platform_code,
                key_in(columns, list(part)),
                table.c.ts >= start,
                table.c.ts < end,
            )
        )
        n = len(columns)
        out.extend((tuple(row[:n]), row[n], row[n + 1]) for row in rows)
    return out


async def _read_rollups(
    session: AsyncSession,
    kind: RollupKind,
    resolution: str,
    platform_code: str,
    keys: Sequence[Key],
    start: datetime,
    end: datetime,
) -> list[tuple[Key, Bucket]]:
    table = kind.tables[resolution]
    columns = kind.keys_of(table)
    out: list[tuple[Key, Bucket]] = []
    for part in chunks(sorted(keys), _KEY_CHUNK):
        rows = await session.execute(
            select(table).where(
                table.c.platform_code == platform_code,
                key_in(columns, list(part)),
                table.c.bucket_start >= start,
                table.c.bucket_start < end,
            )
        )
        out.extend((tuple(getattr(row, n) for n in kind.key_names), _bucket_row(row)) for row in rows)
    return out


def _rollup_rows(
    kind: RollupKind, platform_code: str, buckets: dict[tuple[Key, datetime], Bucket]
) -> list[dict[str, Any]]:
    rows = []
    for (key, start), b in sorted(buckets.items(), key=lambda item: item[0]):
        row: dict[str, Any] = {"platform_code": platform_code}
        row.update(zip(kind.key_names, key, strict=True))
        row.update(
            bucket_start=start,
            count=b.count,
            total=b.total,
            minimum=b.minimum,
            maximum=b.maximum,
            last_ts=b.last_ts,
            last=b.last,
        )
        rows.append(row)
    return rows


async def _write_buckets(
    session: AsyncSession,
    kind: RollupKind,
    resolution: str,
    platform_code: str,
    buckets: dict[tuple[Key, datetime], Bucket],
) -> None:
    await upsert_rows(
        session,
        kind.tables[resolution],
        _rollup_rows(kind, platform_code, buckets),
        key=("platform_code", *kind.key_names, "bucket_start"),
    )


def _dirty_spans(dirty: set[tuple[Key, datetime]], step: Step) -> list[tuple[datetime, datetime, list[Key]]]:
    """Dirty buckets grouped into time spans, each with the keys dirty inside it (one read per span)."""
    by_start: dict[datetime, set[Key]] = defaultdict(set)
    for key, start in dirty:
        by_start[start].add(key)
    out = []
    for span_start, span_end in _spans(by_start, lambda s: step.bounds(s)[1]):
        keys: set[Key] = set().union(*(k for s, k in by_start.items() if span_start <= s < span_end))
        out.append((span_start, span_end, sorted(keys)))
    return out


async def _rebuild_5m(
    session: AsyncSession, kind: RollupKind, platform_code: str, dirty: set[tuple[Key, datetime]]
) -> dict[tuple[Key, datetime], Bucket]:
    """Recompute the dirty 5m buckets from raw samples."""
    step = Step("5m", ZoneInfo("UTC"))
    built: dict[tuple[Key, datetime], Bucket] = {}
    for span_start, span_end, keys in _dirty_spans(dirty, step):
        for key, ts, value in await _read_samples(session, kind, platform_code, keys, span_start, span_end):
            start = step.bounds(ts)[0]
            if (key, start) not in dirty:
                continue
            bucket = built.get((key, start))
            if bucket is None:
                built[(key, start)] = Bucket.of_sample(start, ts, value)
            else:
                bucket.add(ts, value)
    return built


def _on_hours(day: Step, start: datetime) -> bool:
    begin, end = day.bounds(start)
    return all((t - _EPOCH) % timedelta(hours=1) == timedelta(0) for t in (begin, end))


async def _rebuild_from(
    session: AsyncSession,
    kind: RollupKind,
    platform_code: str,
    step: Step,
    dirty: set[tuple[Key, datetime]],
    finer: str,
) -> dict[tuple[Key, datetime], Bucket]:
    """Recompute dirty 1h / 1d buckets by merging the ``finer`` buckets they hold."""
    built: dict[tuple[Key, datetime], Bucket] = {}
    for span_start, span_end, keys in _dirty_spans(dirty, step):
        parts = await _read_rollups(session, kind, finer, platform_code, keys, span_start, span_end)
        for key, part in parts:
            start = step.bounds(part.start)[0]
            if (key, start) in dirty:
                built[(key, start)] = _merge(built.get((key, start)), part)
    return built


async def _changed_keys(
    session: AsyncSession, kind: RollupKind, platform_code: str, after: int, upto: int
) -> list[tuple[Key, datetime]]:
    table = kind.samples
    columns = kind.keys_of(table)
    rows = await session.execute(
        select(*columns, table.c.ts).where(
            table.c.platform_code == platform_code, table.c.change_seq > after, table.c.change_seq <= upto
        )
    )
    n = len(columns)
    return [(tuple(row[:n]), row[n]) for row in rows]


async def _bounded_upto(
    session: AsyncSession, kind: RollupKind, platform_code: str, after: int, counter: int, max_changes: int
) -> int:
    """The highest sequence ≤ ``counter`` whose changes after ``after`` stay within ``max_changes`` rows."""
    table = kind.samples
    beyond = (
        await session.execute(
            select(table.c.change_seq)
            .where(table.c.platform_code == platform_code, table.c.change_seq > after)
            .order_by(table.c.change_seq)
            .offset(max_changes)
            .limit(1)
        )
    ).scalar_one_or_none()
    if beyond is None:
        return counter
    # one sequence is one batch (≤ SUPHUB_MAX_RECORDS_PER_BATCH rows): always make progress
    return min(counter, max(int(beyond) - 1, after + 1))


async def build_platform(
    session: AsyncSession,
    kind: RollupKind,
    platform_code: str,
    settings: Settings,
    *,
    max_changes: int = 200_000,
) -> BuildReport:
    """Bring one platform's rollups of ``kind`` up to date (up to ``max_changes`` changed samples)."""
    report = BuildReport(platform_code, kind.name)
    tz_name = settings.reporting_tz
    state = await _lock_state(session, kind, platform_code, tz_name)
    counter = (
        await session.execute(
            select(ChangeCounter.value).where(ChangeCounter.name == sample_counter(kind.name, platform_code))
        )
    ).scalar_one_or_none()
    counter = -1 if counter is None else int(counter)
    after = state.built_seq
    rebuild_days = state.day_tz != tz_name
    report.built_seq = after
    if counter <= after and not rebuild_days:
        return report
    upto = await _bounded_upto(session, kind, platform_code, after, counter, max_changes)
    changed = await _changed_keys(session, kind, platform_code, after, upto)
    five = Step("5m", ZoneInfo("UTC"))
    hour = Step("1h", ZoneInfo("UTC"))
    day = Step("1d", ZoneInfo(tz_name))
    dirty_5m = {(key, five.bounds(ts)[0]) for key, ts in changed}
    built = await _rebuild_5m(session, kind, platform_code, dirty_5m)
    await _write_buckets(session, kind, "5m", platform_code, built)
    dirty_1h = {(key, hour.bounds(start)[0]) for key, start in dirty_5m}
    dirty_1d = {(key, day.bounds(start)[0]) for key, start in dirty_5m}
    if rebuild_days:
        # days cut in another time zone: every day is rebuilt from the 5m buckets kept
        five_table = kind.tables["5m"]
        starts = await session.execute(
            select(*kind.keys_of(five_table), five_table.c.bucket_start).where(
                five_table.c.platform_code == platform_code
            )
        )
        n = len(kind.key_names)
        dirty_1d |= {(tuple(row[:n]), day.bounds(row[n])[0]) for row in starts}
        days = kind.tables["1d"]
        await session.execute(delete(days).where(days.c.platform_code == platform_code))
    hours = await _rebuild_from(session, kind, platform_code, hour, dirty_1h, "5m")
    await _write_buckets(session, kind, "1h", platform_code, hours)
    # days whose bounds fall on whole hours (every zone with a whole-hour offset, e.g. +08:00)
    # merge 24 hourly buckets; others merge 5m buckets
    hourly = {(key, start) for key, start in dirty_1d if _on_hours(day, start)}
    days_built = await _rebuild_from(session, kind, platform_code, day, hourly, "1h")
    days_built |= await _rebuild_from(session, kind, platform_code, day, dirty_1d - hourly, "5m")
    await _write_buckets(session, kind, "1d", platform_code, days_built)
    new_seq = max(upto, after)
    await session.execute(
        update(RollupState)
        .where(RollupState.kind == kind.name, RollupState.platform_code == platform_code)
        .values(built_seq=new_seq, day_tz=tz_name, updated_at=datetime.now(UTC))
    )
    report.changes = len(changed)
    report.buckets = len(built) + len(hours) + len(days_built)
    report.built_seq = new_seq
    return report


async def build_rollups(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, max_changes: int = 200_000
) -> list[BuildReport]:
    """The scheduled job: every platform and kind, one transaction each, until caught up."""
    async with sessionmaker() as session:
        platforms = list(
            (await session.execute(select(Platform.platform_code).order_by(Platform.platform_code))).scalars()
        )
    reports: list[BuildReport] = []
    for platform_code in platforms:
        for kind in KINDS:
            while True:
                async with write_session(sessionmaker) as session:
                    report = await build_platform(
                        session, kind, platform_code, settings, max_changes=max_changes
                    )
                reports.append(report)
                if report.changes < max_changes:
                    break
    built = [r for r in reports if r.changes]
    if built:
        log.info(
            "rollups built: %s", ", ".join(f"{r.kind}/{r.platform_code}: {r.changes} changes" for r in built)
        )
    return reports


# --- reading ---------------------------------------------------------------------------------
def rollup_source(
    kind: RollupKind,
    raw: BucketSource[Any],
    *,
    wrap: Callable[[Key], Any],
    unwrap: Callable[[Any], Key],
    raw_retention_days: int,
    now: datetime | None = None,
) -> BucketSource[Any]:
    """A :class:`BucketSource` answering 5m / 1h / 1d from rollups where they are built, else from ``raw``.

    ``wrap`` / ``unwrap`` convert between the caller's key (a series id, a ``(room, point)``) and
    the key tuple of the tables.
    """

    async def source(
        session: AsyncSession,
        platform_code: str,
        keys: Sequence[Any],
        step: Step,
        start: datetime,
        end: datetime,
    ) -> AsyncGenerator[tuple[Any, Bucket], None]:
        async def from_raw(lo: datetime, hi: datetime) -> AsyncGenerator[tuple[Any, Bucket], None]:
            stream = raw(session, platform_code, keys, step, lo, hi)
            try:
                async for item in stream:
                    yield item
            finally:
                await stream.aclose()

        plan = await _plan(
            session,
            kind,
            platform_code,
            [unwrap(k) for k in keys],
            step,
            start,
            end,
            raw_retention_days=raw_retention_days,
            now=now,
        )
        if plan is None:
            async for item in from_raw(start, end):
                yield item
            return
        raw_buckets: dict[Any, dict[datetime, Bucket]] = defaultdict(dict)
        for lo, hi in plan.raw_ranges:
            async for key, bucket in from_raw(lo, hi):
                raw_buckets[key][bucket.start] = bucket
        rows = await _read_rollups(
            session,
            kind,
            step.name,
            platform_code,
            [unwrap(k) for k in keys],
            plan.built_start,
            plan.built_end,
        )
        merged: dict[Any, dict[datetime, Bucket]] = defaultdict(dict)
        for key, bucket in rows:
            if bucket.start not in plan.raw_starts:
                merged[wrap(key)][bucket.start] = bucket
        for key, found in raw_buckets.items():
            merged[key].update(found)
        for key in keys:
            for bucket_start in sorted(merged.get(key, {})):
                yield key, merged[key][bucket_start]

    return source


@dataclass(frozen=True)
class _Plan:
    #: buckets read from rollups: those starting in ``[built_start, built_end)`` …
    built_start: datetime
    built_end: datetime
    #: … except these, computed from raw with the edges
    raw_starts: frozenset[datetime]
    raw_ranges: list[tuple[datetime, datetime]]


async def _plan(
    session: AsyncSession,
    kind: RollupKind,
    platform_code: str,
    keys: list[Key],
    step: Step,
    start: datetime,
    end: datetime,
    *,
    raw_retention_days: int,
    now: datetime | None,
) -> _Plan | None:
    """Which buckets of the window come from rollups and which from raw; ``None``: all raw."""
    if step.name == "raw" or not keys:
        return None
    state = (
        await session.execute(
            select(RollupState.built_seq, RollupState.day_tz).where(
                RollupState.kind == kind.name, RollupState.platform_code == platform_code
            )
        )
    ).one_or_none()
    if state is None or state.built_seq < 0 or (step.name == "1d" and state.day_tz != step.tz.key):
        return None
    built_seq = state.built_seq
    raw_horizon = (now or datetime.now(UTC)) - timedelta(days=raw_retention_days)
    first, first_end = step.bounds(start)
    # a partial edge bucket is cut from raw samples, unless those are gone: then it is answered whole
    built_start = first if first == start or first < raw_horizon else first_end
    last, last_end = step.bounds(end)
    built_end = last if last == end or last >= raw_horizon else last_end
    if built_start >= built_end:
        return None
    ranges: list[tuple[datetime, datetime]] = []
    if start < built_start:
        ranges.append((start, built_start))
    if built_end < end:
        ranges.append((built_end, end))
    # samples changed after the built sequence inside the rolled-up part: their buckets are not built
    table = kind.samples
    columns = kind.keys_of(table)
    pending = await session.execute(
        select(table.c.ts)
        .where(
            table.c.platform_code == platform_code,
            table.c.change_seq > built_seq,
            key_in(columns, keys),
            table.c.ts >= built_start,
            table.c.ts < built_end,
        )
        .limit(_MAX_PENDING + 1)
    )
    times = list(pending.scalars())
    if len(times) > _MAX_PENDING:
        return None
    raw_starts = {step.bounds(ts)[0] for ts in times}
    if len(raw_starts) > _MAX_DIRTY_BUCKETS:
        return None
    ranges.extend(_spans(raw_starts, lambda s: step.bounds(s)[1]))
    if len(ranges) > _MAX_RAW_RANGES:  # one raw read of the window beats many small ones
        return None
    return _Plan(built_start, built_end, frozenset(raw_starts), ranges)
