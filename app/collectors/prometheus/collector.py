"""Source type ``prometheus`` (§8 item 3): catalogue metrics from PromQL range queries.

Each run asks ``/api/v1/query_range`` once per catalogue code in ``options.queries`` (more often
when the window holds more than ``points_per_request`` steps) and ingests every answer as one page
of §4.4 records. Windows follow each other on one grid of ``step`` multiples: a run covers the
evaluation times after the previous successful run's end, up to now (the first run: the last
``interval_s``), so consecutive runs neither repeat nor miss a point; a failed run leaves the end
where it was and the next one fetches its window again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from app.collectors.base import Collector, RunContext, SourceConfig, SourceError
from app.collectors.prometheus.client import HttpMethod, PrometheusClient, auth_kwargs
from app.collectors.prometheus.mapping import (
    MAX_ASSET_ID,
    MAX_POINTS_PER_SERIES,
    SeriesMapping,
    run_window,
    series_records,
    split_range,
)

#: where the end of the last successful window is kept (ms since the epoch) in the source's state
STATE_KEY = "window_end_ms"
DEFAULT_MAX_WINDOW_S = 86_400


def _bad(name: str, why: str) -> SourceError:
    return SourceError(f"prometheus 选项 {name} 无效：{why} (invalid option {name})")


def _seconds_ms(options: Mapping[str, Any], name: str, default: float, *, minimum: float) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(name, "应为秒数")
    if value < minimum:
        raise _bad(name, f"应不小于 {minimum} 秒")
    return round(value * 1000)


def _string_map(options: Mapping[str, Any], name: str, *, required: bool) -> dict[str, str]:
    value = options.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict) or (required and not value):
        raise _bad(name, "应为非空对象 {名称: 字符串}")
    if not all(isinstance(k, str) and k and isinstance(v, str) and v.strip() for k, v in value.items()):
        raise _bad(name, "键和值都应为非空字符串")
    return dict(value)


@dataclass(frozen=True)
class PrometheusOptions:
    """``options`` of a prometheus source, checked when the collector is built (no I/O)."""

    queries: dict[str, str]
    step_ms: int
    points_per_request: int
    method: HttpMethod
    lag_ms: int
    max_window_ms: int
    mapping: SeriesMapping

    @classmethod
    def of(cls, config: SourceConfig) -> PrometheusOptions:
        options = config.options
        asset_label = options.get("asset_label")
        if asset_label is not None and not (isinstance(asset_label, str) and asset_label):
            raise _bad("asset_label", "应为标签名")
        drop = options.get("drop_labels", [])
        if not (isinstance(drop, list) and all(isinstance(d, str) for d in drop)):
            raise _bad("drop_labels", "应为标签名数组")
        asset_map = _string_map(options, "asset_map", required=False)
        if any(len(v) > MAX_ASSET_ID for v in asset_map.values()):
            raise _bad("asset_map", f"asset_id 最长 {MAX_ASSET_ID} 字符")
        points = options.get("points_per_request", MAX_POINTS_PER_SERIES)
        if (
            isinstance(points, bool)
            or not isinstance(points, int)
            or not 1 <= points <= MAX_POINTS_PER_SERIES
        ):
            raise _bad("points_per_request", f"应为 1–{MAX_POINTS_PER_SERIES} 的整数")
        method = str(options.get("method", "POST")).upper()
        if method not in ("GET", "POST"):
            raise _bad("method", "应为 GET 或 POST")
        return cls(
            queries=_string_map(options, "queries", required=True),
            step_ms=_seconds_ms(options, "step_s", config.interval_s, minimum=0.001),
            points_per_request=points,
            method="GET" if method == "GET" else "POST",
            lag_ms=_seconds_ms(options, "lag_s", 0, minimum=0),
            max_window_ms=_seconds_ms(options, "max_window_s", DEFAULT_MAX_WINDOW_S, minimum=1),
            mapping=SeriesMapping(asset_label=asset_label, asset_map=asset_map, drop_labels=frozenset(drop)),
        )


class PrometheusCollector(Collector):
    """Catalogue metrics (``cpu.util``, ``mem.util``…) from a Prometheus-compatible query API."""

    type: ClassVar[str] = "prometheus"
    produces: ClassVar[tuple[str, ...]] = ("metrics",)

    @classmethod
    def check_options(cls, options: dict[str, Any], interval_s: int) -> None:
        PrometheusOptions.of(cls._probe_config(options, interval_s))

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        # checked now so a misconfigured source fails its run before any request
        self.options = PrometheusOptions.of(config)
        auth_kwargs(config.credentials)

    async def run(self, ctx: RunContext) -> None:
        """Fetch the run's window for every query and emit one page per answer."""
        opts = self.options
        previous = ctx.state.get(STATE_KEY)
        window = run_window(
            now_ms=math.floor(ctx.started_at.timestamp() * 1000) - opts.lag_ms,
            step_ms=opts.step_ms,
            interval_ms=self.config.interval_s * 1000,
            previous_end_ms=previous if isinstance(previous, int) else None,
            max_window_ms=opts.max_window_ms,
        )
        if window.points == 0:  # run again within one step: nothing new yet
            return
        client = PrometheusClient(ctx.http, self.config.credentials, method=opts.method)
        for code, query in opts.queries.items():
            for piece in split_range(window, opts.points_per_request):
                records: list[dict[str, Any]] = []
                for series in await client.query_range(query, piece, name=code):
                    mapped, skipped = series_records(code, series, opts.mapping)
                    records += mapped
                    for reason in skipped:
                        ctx.skip(reason)
                await ctx.emit("metrics", records)
        ctx.state[STATE_KEY] = window.end_ms
