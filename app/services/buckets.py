"""Time buckets shared by the series endpoints (§5): step resolution, alignment and aggregation.

A series answer is a stream of :class:`Bucket` per key (a metric series, an environment point),
ordered by key, then bucket start. Where the buckets come from is a :class:`BucketSource`: today
:func:`bucketize` over raw samples read in ``(key, ts)`` order; later the 5m / 1h / 1d rollups,
which keep exactly what a bucket holds here (count, sum, min, max, last).

Alignment: ``5m`` and ``1h`` buckets start at multiples of their length since the UTC epoch (for
whole-hour offsets such as +08:00 that is also the local alignment); ``1d`` buckets are days in
the reporting time zone (§2), starting at local midnight. Every bucket is labelled by its start
and echoed with the reporting time zone's offset. Windows are half-open, ``[from, to)``; empty
buckets are omitted.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal, Protocol, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadParameter
from app.security.keys import ServerKey
from app.security.principal import Principal
from app.services.cursor import decode_cursor, encode_cursor
from app.services.query import Keyset, echo_time, keyset_page, time_window

StepName = Literal["auto", "raw", "5m", "1h", "1d"]
Aggregate = Literal["avg", "min", "max", "last", "sum"]

#: ``auto`` picks the coarsest step giving at least this many buckets over the window (§5)
AUTO_MIN_POINTS = 200
#: an answer never holds more points than this (a year of raw samples would not fit a response)
MAX_POINTS = 100_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIXED = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1)}
_TICK = timedelta(microseconds=1)
_EARLIEST, _LATEST = _EPOCH, datetime(9000, 1, 1, tzinfo=UTC)
_COARSEST_FIRST = ("1d", "1h", "5m")

K = TypeVar("K")


@dataclass(frozen=True)
class Step:
    """A resolved step (``raw``, ``5m``, ``1h`` or ``1d``) and the time zone its days are taken in."""

    name: str
    tz: ZoneInfo

    def bounds(self, ts: datetime) -> tuple[datetime, datetime]:
        """``[start, end)`` of the bucket holding ``ts`` (UTC); a raw "bucket" is the sample itself."""
        if self.name == "raw":
            return ts, ts + _TICK
        fixed = _FIXED.get(self.name)
        if fixed is not None:
            start = _EPOCH + ((ts - _EPOCH) // fixed) * fixed
            return start, start + fixed
        day = ts.astimezone(self.tz).date()
        return self._midnight(day), self._midnight(day + timedelta(days=1))

    def span(self, start: datetime, end: datetime) -> int:
        """How many buckets ``[start, end)`` touches (the most points this step can give)."""
        last = end - _TICK
        if self.name == "1d":
            return (last.astimezone(self.tz).date() - start.astimezone(self.tz).date()).days + 1
        fixed = _FIXED[self.name]
        return (last - _EPOCH) // fixed - (start - _EPOCH) // fixed + 1

    def label(self, start: datetime) -> str:
        """A bucket's start as RFC 3339 with the reporting time zone's offset."""
        return start.astimezone(self.tz).isoformat()

    def _midnight(self, day: Any) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.tz).astimezone(UTC)


def resolve_step(name: str, start: datetime, end: datetime, tz: ZoneInfo) -> Step:
    """``auto`` → the coarsest of 1d, 1h, 5m giving ≥ 200 buckets over the window, else ``raw``."""
    if name != "auto":
        return Step(name, tz)
    for candidate in _COARSEST_FIRST:
        step = Step(candidate, tz)
        if step.span(start, end) >= AUTO_MIN_POINTS:
            return step
    return Step("raw", tz)


@dataclass(slots=True)
class Bucket:
    """What a bucket keeps — the same as a rollup row: count, sum, min, max and the last sample."""

    start: datetime
    count: int
    total: float
    minimum: float
    maximum: float
    last_ts: datetime
    last: float
    #: raw step only: the sample's evaluated state (environment samples)
    state: str | None = None

    @classmethod
    def of_sample(cls, start: datetime, ts: datetime, value: float, state: str | None = None) -> Bucket:
        return cls(start, 1, value, value, value, ts, value, state)

    def add(self, ts: datetime, value: float) -> None:
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        if ts >= self.last_ts:
            self.last_ts, self.last = ts, value

    def value(self, agg: str) -> float:
        if agg == "avg":
            return self.total / self.count
        if agg == "min":
            return self.minimum
        if agg == "max":
            return self.maximum
        if agg == "sum":
            return self.total
        return self.last


class BucketSource(Protocol[K]):
    """Where the buckets of a series answer come from (raw samples today; rollups later).

    Yields ``(key, bucket)`` for the given keys of one platform, ordered by key then bucket start,
    each bucket aggregating exactly the samples with ``start <= ts < end`` (partial buckets at the
    window's edges included), never an empty bucket. For ``raw`` every sample is its own bucket.
    """

    def __call__(
        self,
        session: AsyncSession,
        platform_code: str,
        keys: Sequence[K],
        step: Step,
        start: datetime,
        end: datetime,
    ) -> AsyncGenerator[tuple[K, Bucket], None]: ...


async def bucketize(rows: AsyncIterable[Sequence[Any]], step: Step) -> AsyncIterator[tuple[Any, Bucket]]:
    """Rows ``(key, ts, value[, state])`` ordered by ``(key, ts)`` → buckets, in one pass.

    Only one bucket is open at a time, so memory does not grow with the window.
    """
    key: Any = None
    bucket: Bucket | None = None
    end = _EPOCH
    async for row in rows:
        row_key, ts, value = row[0], row[1], row[2]
        if step.name == "raw":
            yield row_key, Bucket.of_sample(ts, ts, value, row[3] if len(row) > 3 else None)
            continue
        if bucket is not None and row_key == key and ts < end:
            bucket.add(ts, value)
            continue
        start, next_end = step.bounds(ts)
        if bucket is not None and row_key == key and start == bucket.start:
            # a day whose local midnight repeats (a DST fold at 00:00): still the same day
            end = next_end
            bucket.add(ts, value)
            continue
        if bucket is not None:
            yield key, bucket
        key, end = row_key, next_end
        bucket = Bucket.of_sample(start, ts, value)
    if bucket is not None:
        yield key, bucket


async def collect_points(
    buckets: AsyncGenerator[tuple[K, Bucket], None],
    step: Step,
    agg: str,
    *,
    with_state: bool = False,
    max_points: int = MAX_POINTS,
) -> dict[K, list[dict[str, Any]]]:
    """Points ``{ts, value}`` per key (``state`` too for raw environment samples)."""
    out: dict[K, list[dict[str, Any]]] = {}
    produced = 0
    async with aclosing(buckets) as stream:
        async for key, bucket in stream:
            produced += 1
            if produced > max_points:
                raise BadParameter(
                    f"结果超过 {max_points} 个点，请缩小时间范围或使用更粗的 step "
                    f"(more than {max_points} points; narrow the window or use a coarser step)"
                )
            point: dict[str, Any] = {"ts": step.label(bucket.start), "value": bucket.value(agg)}
            if with_state and step.name == "raw":
                point["state"] = bucket.state
            out.setdefault(key, []).append(point)
    return out


def resolved_window(
    from_: str | None, to: str | None, *, now: datetime, default_span: timedelta
) -> tuple[datetime, datetime]:
    """``[from, to)`` as given, a missing bound filled in from ``default_span`` ending now."""
    start, end = time_window(from_, to, now=now, default_span=default_span)
    if start is None or end is None:  # pragma: no cover - a default span always resolves both
        raise BadParameter("缺少时间范围 (time window missing)")
    if start < _EARLIEST or end > _LATEST:
        # also keeps day arithmetic and offsets of the reporting time zone clear of year 1 / 9999
        raise BadParameter(
            f"时间范围应在 {_EARLIEST:%Y-%m-%d} 至 {_LATEST:%Y-%m-%d} 之间 (time outside the supported range)"
        )
    return start, end


# --- windows of paged lists ------------------------------------------------------------------
# A paged list whose window defaults to "the last 24 h" must keep the window it resolved on its
# first page (§2.2: a cursor binds the resolved defaults). The shared keyset cursor carries only
# the last row's key, so the window travels in an outer cursor around it.


@dataclass(frozen=True)
class PagedWindow:
    start: datetime
    end: datetime
    #: the keyset cursor inside the caller's cursor (None on the first page)
    inner: str | None


def open_window(
    key: ServerKey,
    resource: str,
    from_: str | None,
    to: str | None,
    cursor: str | None,
    *,
    now: datetime,
    default_span: timedelta,
) -> PagedWindow:
    """The list's ``[from, to)``: as given or defaulted on the first page, from the cursor after."""
    start, end = resolved_window(from_, to, now=now, default_span=default_span)
    if not cursor:
        return PagedWindow(start, end, None)
    raw = decode_cursor(key, f"{resource}:window", {"from": from_, "to": to}, cursor)
    try:
        first, last, inner = raw
        window = PagedWindow(datetime.fromisoformat(first), datetime.fromisoformat(last), str(inner))
    except (TypeError, ValueError):
        raise BadParameter("游标无效 (invalid cursor)") from None
    if window.start.tzinfo is None or window.end.tzinfo is None:
        raise BadParameter("游标无效 (invalid cursor)")
    return window


def wrap_cursor(
    key: ServerKey, resource: str, from_: str | None, to: str | None, window: PagedWindow, inner: str | None
) -> str | None:
    """The cursor handed to the caller: the resolved window around the keyset cursor."""
    if inner is None:
        return None
    last = [window.start.isoformat(), window.end.isoformat(), inner]
    return encode_cursor(key, f"{resource}:window", {"from": from_, "to": to}, last)


async def windowed_page(
    session: AsyncSession,
    key: ServerKey,
    principal: Principal,
    filters: Any,
    *,
    keyset: Keyset,
    statement: Callable[[AsyncSession, Principal, Any, datetime, datetime], Awaitable[Select[Any]]],
    out: Callable[[Any, str], dict[str, Any]],
    default_span: timedelta,
    limit: int,
    cursor: str | None,
    with_total: bool,
    tz_name: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One page of a raw-samples list whose window defaults to the last ``default_span``.

    The window is resolved on the first page and carried by the cursor; ``filters`` is the list's
    filter dataclass (with ``from_`` / ``to``) and ``statement`` builds its scoped query.
    """
    window = open_window(
        key,
        keyset.resource,
        filters.from_,
        filters.to,
        cursor,
        now=now or datetime.now(UTC),
        default_span=default_span,
    )
    stmt = await statement(session, principal, filters, window.start, window.end)
    bound = asdict(filters) | {"from_": window.start.isoformat(), "to": window.end.isoformat()}
    rows, inner, total = await keyset_page(
        session,
        stmt,
        keyset,
        server_key=key,
        filters=bound,
        limit=limit,
        cursor=window.inner,
        with_total=with_total,
        scalars=False,
    )
    page: dict[str, Any] = {
        "items": [out(row, tz_name) for row in rows],
        "next_cursor": wrap_cursor(key, keyset.resource, filters.from_, filters.to, window, inner),
        "from": echo_time(window.start, tz_name),
        "to": echo_time(window.end, tz_name),
    }
    if with_total:
        page["total"] = total
    return page
