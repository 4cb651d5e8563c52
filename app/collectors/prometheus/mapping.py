"""From Prometheus range answers to §4.4 metric records, and the windows a run asks for.

Pure functions (no I/O), so the arithmetic that decides "no gap, no duplicate" is tested alone.
Times are whole milliseconds since the epoch: Prometheus resolves ``start``/``end``/``step`` to the
millisecond, and integers keep the evaluation grid exact where floats would drift.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: Prometheus refuses a range query that would return more points than this per series
#: ("exceeded maximum resolution of 11,000 points per timeseries")
MAX_POINTS_PER_SERIES = 11_000
#: labels a §4.4 record may carry (``MetricRecord.labels``); longer keys / values are refused there too
MAX_LABELS = 8
MAX_LABEL_KEY = 64
MAX_LABEL_VALUE = 256
MAX_ASSET_ID = 128


def first_point_after(boundary_ms: int, step_ms: int) -> int:
    """The first evaluation time on the step grid strictly after ``boundary_ms``.

    Every run evaluates on the same grid (multiples of the step since the epoch), so the next run
    starting at the first point after the last window's end neither repeats nor skips a point.
    """
    return (boundary_ms // step_ms + 1) * step_ms


def last_point_at_or_before(moment_ms: int, step_ms: int) -> int:
    return (moment_ms // step_ms) * step_ms


@dataclass(frozen=True)
class Window:
    """Evaluation times ``start, start + step, …, end`` (both ends included, as Prometheus counts)."""

    start_ms: int
    end_ms: int
    step_ms: int

    @property
    def points(self) -> int:
        return 0 if self.end_ms < self.start_ms else (self.end_ms - self.start_ms) // self.step_ms + 1


def run_window(
    *,
    now_ms: int,
    step_ms: int,
    interval_ms: int,
    previous_end_ms: int | None,
    max_window_ms: int | None = None,
) -> Window:
    """The window of one run: after the previous run's end (first run: the last interval) up to now.

    ``max_window_ms`` bounds a catch-up after a long outage: the run stops that far after its start
    and the next runs continue from there, so no single run grows past its timeout (the state that
    records progress is only kept when a run succeeds).
    """
    end = last_point_at_or_before(now_ms, step_ms)
    boundary = end - interval_ms if previous_end_ms is None else previous_end_ms
    start = first_point_after(boundary, step_ms)
    if max_window_ms is not None:
        limit = max(max_window_ms, step_ms)  # at least one point, or a run would never move on
        if end - start >= limit:
            end = last_point_at_or_before(start + limit - 1, step_ms)
    return Window(start, end, step_ms)


def split_range(window: Window, max_points: int = MAX_POINTS_PER_SERIES) -> Iterator[Window]:
    """``window`` in consecutive pieces of at most ``max_points`` evaluation times each."""
    if max_points < 1:
        raise ValueError("max_points must be at least 1")
    start = window.start_ms
    span = (max_points - 1) * window.step_ms
    while start <= window.end_ms:
        end = min(window.end_ms, start + span)
        yield Window(start, end, window.step_ms)
        start = end + window.step_ms


def prometheus_time(ms: int) -> str:
    """A time as the API takes it: unix seconds with the milliseconds (``1795273004.123``)."""
    seconds, millis = divmod(ms, 1000)
    return f"{seconds}.{millis:03d}"


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


@dataclass(frozen=True)
class SeriesMapping:
    """How a series' labels become a record's ``asset_id`` and ``labels`` (from the source options)."""

    asset_label: str | None = None
    asset_map: Mapping[str, str] | None = None
    drop_labels: frozenset[str] = frozenset()


class Unmappable(ValueError):
    """A whole series that cannot become records (the reason is kept for the run)."""


def series_identity(labels: Mapping[str, str], mapping: SeriesMapping) -> tuple[str | None, dict[str, str]]:
    """``(asset_id, labels)`` of one series: the asset label (mapped) and the rest but ``__name__``.

    A series without the asset label is platform level. Labels beyond what §4.4 allows make the
    series unmappable rather than being cut: cutting could fold two series into one key, where the
    later would silently overwrite the earlier.
    """
    asset_id: str | None = None
    rest: dict[str, str] = {}
    for key, value in labels.items():
        if key == "__name__" or key in mapping.drop_labels:
            continue
        if key == mapping.asset_label:
            asset_id = (mapping.asset_map or {}).get(value, value)
            continue
        rest[key] = value
    if asset_id is not None and not 1 <= len(asset_id) <= MAX_ASSET_ID:
        raise Unmappable(f"asset_id 长度须为 1–{MAX_ASSET_ID} (asset id length)")
    if len(rest) > MAX_LABELS:
        raise Unmappable(
            f"标签 {len(rest)} 个，超过 {MAX_LABELS} 个，请在查询中聚合或用 drop_labels 去掉 "
            f"({len(rest)} labels, at most {MAX_LABELS})"
        )
    for key, value in rest.items():
        if len(key) > MAX_LABEL_KEY or len(value) > MAX_LABEL_VALUE:
            raise Unmappable(f"标签 {key[:64]} 过长 (label too long)")
    return asset_id, dict(sorted(rest.items()))


def parse_value(raw: Any) -> float:
    """A sample value as Prometheus sends it (a string); ``ValueError`` unless finite."""
    if not isinstance(raw, str):
        raise ValueError(f"数值应为字符串 (value is not a string): {str(raw)[:40]}")
    try:
        value = float(raw)  # Go's strconv forms: "1e3", "NaN", "+Inf", "-Inf"
    except ValueError:
        raise ValueError(f"数值无法解析 (value not a number): {raw[:40]}") from None
    if not math.isfinite(value):
        raise ValueError(f"数值非有限数 (value not finite): {raw[:40]}")
    return value


def parse_time_ms(raw: Any) -> int:
    """An evaluation time (unix seconds, a number) in milliseconds; ``ValueError`` otherwise."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError(f"时间应为数字 (time is not a number): {str(raw)[:40]}")
    if not math.isfinite(raw):
        raise ValueError("时间非有限数 (time not finite)")
    return round(raw * 1000)


@dataclass(frozen=True)
class Series:
    """One series of a ``matrix`` answer: its labels and the raw ``[time, "value"]`` pairs."""

    labels: dict[str, str]
    values: list[tuple[Any, Any]]


def describe(metric: str, labels: Mapping[str, str]) -> str:
    """A series as a skip reason names it (short: reasons are kept on the run)."""
    inner = ",".join(f"{k}={v[:40]}" for k, v in sorted(labels.items()) if k != "__name__")
    return f"{metric}{{{inner[:160]}}}"


def series_records(
    metric: str, series: Series, mapping: SeriesMapping
) -> tuple[list[dict[str, Any]], list[str]]:
    """The §4.4 records of one series, and one reason per point that could not become a record."""
    where = describe(metric, series.labels)
    try:
        asset_id, labels = series_identity(series.labels, mapping)
    except Unmappable as exc:
        return [], [f"{where}: {exc}"] * len(series.values)
    records: list[dict[str, Any]] = []
    skipped: list[str] = []
    for raw_time, raw_value in series.values:
        try:
            ts_ms = parse_time_ms(raw_time)
            value = parse_value(raw_value)
        except ValueError as exc:
            skipped.append(f"{where} @ {str(raw_time)[:20]}: {exc}")
            continue
        record: dict[str, Any] = {"metric": metric, "ts": rfc3339(ts_ms), "value": value}
        if asset_id is not None:
            record["asset_id"] = asset_id
        if labels:
            record["labels"] = labels
        records.append(record)
    return records, skipped
