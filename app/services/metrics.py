"""Reading monitoring data back (§4.4, §5): series in buckets, the latest value per series, raw samples."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadParameter, NotFound
from app.models import Asset, MetricDefinition, MetricSample, MetricSeries
from app.security.keys import ServerKey
from app.security.principal import Principal
from app.services.assets import get_asset
from app.services.buckets import (
    Bucket,
    BucketSource,
    Step,
    bucketize,
    collect_points,
    resolve_step,
    resolved_window,
)
from app.services.ingest.kinds import asset_uid, labels_key
from app.services.query import Keyset, decode_times, echo_time, scope_condition
from app.services.rollups import METRICS, rollup_source
from app.services.sample_sync import SampleList, sample_page

#: the window of a series or a sample list when ``from`` / ``to`` are not given
DEFAULT_SPAN = timedelta(hours=24)
_MAX_LABELS = 8


async def raw_metric_buckets(
    session: AsyncSession,
    platform_code: str,
    keys: Sequence[int],
    step: Step,
    start: datetime,
    end: datetime,
) -> AsyncGenerator[tuple[int, Bucket], None]:
    """Buckets computed from raw samples, streamed in ``(series_id, ts)`` order (the primary key)."""
    stmt = (
        select(MetricSample.series_id, MetricSample.ts, MetricSample.value)
        .where(
            MetricSample.platform_code == platform_code,
            MetricSample.series_id.in_(list(keys)),
            MetricSample.ts >= start,
            MetricSample.ts < end,
        )
        .order_by(MetricSample.series_id, MetricSample.ts)
    )
    result = await session.stream(stmt)
    try:
        async for series_id, bucket in bucketize(result, step):
            yield series_id, bucket
    finally:
        await result.close()


async def metric_unit(session: AsyncSession, metric: str) -> str:
    """The catalogue unit of ``metric``; a code not in the catalogue is 400 ``1001``."""
    definition = await session.get(MetricDefinition, metric)
    if definition is None:
        raise BadParameter(
            f"未知的指标编码 {metric!r}，见 GET /api/v1/catalog (unknown metric code; see the catalogue)"
        )
    return definition.unit


def parse_labels(value: str | None) -> dict[str, str] | None:
    """``k:v,k2:v2`` → a labels set (an empty string is the empty set); 400 ``1001`` when malformed."""
    if value is None:
        return None
    labels: dict[str, str] = {}
    if value.strip() == "":
        return labels
    for pair in value.split(","):
        name, sep, label = pair.partition(":")
        if not sep or not name or name in labels:
            raise BadParameter(
                f"labels 格式应为 k:v,k2:v2（键不可重复），收到 {value!r} (labels must be k:v,k2:v2)"
            )
        labels[name] = label
    if len(labels) > _MAX_LABELS:
        raise BadParameter(f"labels 最多 {_MAX_LABELS} 对 (at most {_MAX_LABELS} labels)")
    return labels


@dataclass(frozen=True)
class SeriesQuery:
    metric: str
    platform_code: str | None = None
    asset_uid: str | None = None
    asset_id: str | None = None
    labels: str | None = None
    from_: str | None = None
    to: str | None = None
    step: str = "auto"
    agg: str = "avg"


async def metric_series(
    session: AsyncSession,
    principal: Principal,
    query: SeriesQuery,
    *,
    tz_name: str,
    now: datetime | None = None,
    raw_retention_days: int = 30,
    source: BucketSource[int] | None = None,
) -> dict[str, Any]:
    """One metric of one asset (or the platform itself) in buckets, one series per labels set.

    Buckets come from the rollups where built, else from raw samples (``source`` replaces that).
    """
    unit = await metric_unit(session, query.metric)
    labels = parse_labels(query.labels)
    start, end = resolved_window(
        query.from_, query.to, now=now or datetime.now(UTC), default_span=DEFAULT_SPAN
    )
    if query.asset_uid is not None and query.asset_id is not None:
        raise BadParameter("asset_uid 与 asset_id 只能给出其一 (give asset_uid or asset_id, not both)")
    if query.platform_code is None and query.asset_uid is None:
        raise BadParameter("缺少 platform_code（或 asset_uid）(platform_code or asset_uid is required)")
    scope = await scope_condition(
        session, principal, MetricSeries.platform_code, platform_code=query.platform_code
    )
    platform_code, asset_id = query.platform_code, query.asset_id or ""
    if query.asset_uid is not None:
        asset = await get_asset(session, principal, query.asset_uid)
        if platform_code is not None and asset.platform_code != platform_code:
            raise NotFound(f"资产 {query.asset_uid} 不存在 (no such asset)")
        platform_code, asset_id = asset.platform_code, asset.asset_id
    assert platform_code is not None
    stmt = select(MetricSeries.series_id, MetricSeries.labels).where(
        scope,
        MetricSeries.platform_code == platform_code,
        MetricSeries.metric == query.metric,
        MetricSeries.asset_id == asset_id,
    )
    if labels is not None:
        stmt = stmt.where(MetricSeries.labels_key == labels_key(labels))
    # ordered here, not in SQL: text order follows the database's collation
    matched = sorted((await session.execute(stmt)).all(), key=lambda row: sorted((row.labels or {}).items()))
    tz = ZoneInfo(tz_name)
    step = resolve_step(query.step, start, end, tz)
    points: dict[int, list[dict[str, Any]]] = {}
    if matched:
        if source is None:
            source = rollup_source(
                METRICS,
                raw_metric_buckets,
                wrap=lambda key: key[0],
                unwrap=lambda series: (series,),
                raw_retention_days=raw_retention_days,
                now=now,
            )
        buckets = source(session, platform_code, [row.series_id for row in matched], step, start, end)
        points = await collect_points(buckets, step, query.agg)
    series = [
        {"labels": row.labels or {}, "points": points[row.series_id]}
        for row in matched
        if row.series_id in points
    ]
    return {
        "platform_code": platform_code,
        "metric": query.metric,
        "unit": unit,
        "asset_id": asset_id or None,
        "asset_uid": str(asset_uid(platform_code, asset_id)) if asset_id else None,
        "labels": labels,
        "from": echo_time(start, tz_name),
        "to": echo_time(end, tz_name),
        "step": step.name,
        "agg": query.agg,
        "series": series,
        # the one series' points when the answer is unambiguous (§5 names ``data.points``)
        "points": series[0]["points"] if len(series) == 1 else ([] if not series else None),
    }


async def latest_values(
    session: AsyncSession,
    principal: Principal,
    metric: str,
    *,
    platform_code: str | None,
    region_code: str | None,
    order: str,
    limit: int,
    tz_name: str,
) -> dict[str, Any]:
    """The latest sample of every series of ``metric`` in scope, sorted by value (top-N)."""
    unit = await metric_unit(session, metric)
    scope = await scope_condition(
        session, principal, MetricSeries.platform_code, platform_code=platform_code, region_code=region_code
    )
    # each series keeps its newest sample (see the ingest of metrics): no probe of the samples
    value = MetricSeries.last_value.desc() if order == "desc" else MetricSeries.last_value.asc()
    stmt = (
        select(
            MetricSeries.platform_code,
            MetricSeries.asset_id,
            MetricSeries.labels,
            MetricSeries.last_ts.label("ts"),
            MetricSeries.last_value.label("value"),
            Asset.asset_id.label("known_asset_id"),
        )
        .select_from(MetricSeries)
        .outerjoin(
            Asset,
            and_(Asset.platform_code == MetricSeries.platform_code, Asset.asset_id == MetricSeries.asset_id),
        )
        .where(scope, MetricSeries.metric == metric, MetricSeries.last_ts.is_not(None))
        .order_by(value, MetricSeries.platform_code, MetricSeries.asset_id, MetricSeries.series_id)
        .limit(limit)
    )
    items = []
    for row in await session.execute(stmt):
        asset = row.asset_id or None
        items.append(
            {
                "platform_code": row.platform_code,
                "asset_id": asset,
                "asset_uid": str(asset_uid(row.platform_code, asset)) if asset else None,
                "asset_known": (row.known_asset_id is not None) if asset else None,
                "labels": row.labels or {},
                "ts": echo_time(row.ts, tz_name),
                "value": row.value,
            }
        )
    return {"metric": metric, "unit": unit, "order": order, "limit": limit, "items": items}


@dataclass(frozen=True)
class SampleFilters:
    metric: str | None = None
    platform_code: str | None = None
    region_code: str | None = None
    asset_id: str | None = None
    from_: str | None = None
    to: str | None = None
    #: an RFC 3339 time (samples received since) or a ``sync_token``: change order (§2.2)
    updated_since: str | None = None


SAMPLE_KEYSET = Keyset(
    "metric_samples",
    (MetricSample.platform_code, MetricSample.series_id, MetricSample.ts),
    lambda r: [r.platform_code, r.series_id, r.ts],
    decode=decode_times(2),
)


async def samples_statement(
    session: AsyncSession,
    principal: Principal,
    filters: SampleFilters,
    start: datetime | None,
    end: datetime | None,
) -> Select[Any]:
    """The raw samples a list (or an export) with ``filters`` over ``[start, end)`` holds."""
    if filters.metric is not None:
        await metric_unit(session, filters.metric)
    scope = await scope_condition(
        session,
        principal,
        MetricSample.platform_code,
        platform_code=filters.platform_code,
        region_code=filters.region_code,
    )
    stmt = (
        select(
            MetricSample.platform_code,
            MetricSample.series_id,
            MetricSample.ts,
            MetricSample.value,
            MetricSample.received_at,
            MetricSample.change_seq,
            MetricSeries.metric,
            MetricSeries.asset_id,
            MetricSeries.labels,
        )
        .join(
            MetricSeries,
            and_(
                MetricSeries.platform_code == MetricSample.platform_code,
                MetricSeries.series_id == MetricSample.series_id,
            ),
        )
        .where(scope)
    )
    if start is not None:
        stmt = stmt.where(MetricSample.ts >= start)
    if end is not None:
        stmt = stmt.where(MetricSample.ts < end)
    if filters.metric is not None:
        stmt = stmt.where(MetricSeries.metric == filters.metric)
    if filters.asset_id is not None:
        stmt = stmt.where(MetricSeries.asset_id == filters.asset_id)
    return stmt


def sample_out(row: Any, tz_name: str) -> dict[str, Any]:
    """One row of :func:`samples_statement` as the list answers it."""
    asset = row.asset_id or None
    return {
        "platform_code": row.platform_code,
        "metric": row.metric,
        "asset_id": asset,
        "asset_uid": str(asset_uid(row.platform_code, asset)) if asset else None,
        "labels": row.labels or {},
        "ts": echo_time(row.ts, tz_name),
        "value": row.value,
        "received_at": row.received_at,
    }


SAMPLE_LIST = SampleList(
    SAMPLE_KEYSET,
    MetricSample.__table__,  # type: ignore[arg-type]
    (MetricSample.__table__.c.series_id,),
    samples_statement,
    sample_out,
    DEFAULT_SPAN,
)


async def list_samples(
    session: AsyncSession,
    key: ServerKey,
    principal: Principal,
    filters: SampleFilters,
    *,
    limit: int,
    cursor: str | None,
    with_total: bool,
    tz_name: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Raw samples in scope, ordered by ``(platform_code, series_id, ts)``, keyset-paged.

    Without ``from`` / ``to`` the window is the last 24 h, resolved on the first page and kept
    by the cursor. With ``updated_since``: change order and a ``sync_token``
    (:mod:`app.services.sample_sync`).
    """
    return await sample_page(
        SAMPLE_LIST,
        session,
        key,
        principal,
        filters,
        limit=limit,
        cursor=cursor,
        with_total=with_total,
        tz_name=tz_name,
        now=now,
    )
