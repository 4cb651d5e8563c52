"""Retention per resolution (§5) and, on PostgreSQL, daily time partitions of raw samples."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from app.collectors.scheduler import build_scheduler
from app.models import MetricRollup5m, RollupState
from app.services.partitions import existing_partitions, partition_name
from app.services.retention import apply_retention, maintain
from app.services.rollups import build_rollups
from tests.api.test_query_metrics import GZ, hour_floor, metric, pushed
from tests.helpers import Hub, now_utc, rfc3339

SAMPLES, SERIES = "/api/v1/metrics/samples", "/api/v1/metrics/series"


async def _push_hours(hub: Hub, start: datetime, hours: int, assets: int) -> None:
    records = [
        metric("cpu.util", start + timedelta(minutes=m), float(m % 60), asset_id=f"vm-{a}")
        for a in range(assets)
        for m in range(0, hours * 60, 5)
    ]
    await pushed(hub, "metrics", GZ, "m", records)


async def _count(app: Any, model: Any) -> int:
    async with app.state.sessionmaker() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_raw_samples_expire_first_then_5m_rollups_while_1h_answers_remain(hub: Hub, app: Any) -> None:
    await hub.create_platform(GZ, "440100")
    start = hour_floor(now_utc()) - timedelta(hours=4)
    await _push_hours(hub, start, 3, assets=5)
    await build_rollups(app.state.sessionmaker, hub.settings)
    window = {"from": rfc3339(start), "to": rfc3339(start + timedelta(hours=3))}
    hourly = {
        "metric": "cpu.util",
        "platform_code": GZ,
        "asset_id": "vm-3",
        "step": "1h",
        "agg": "max",
        **window,
    }
    before = (await hub.get(SERIES, **hourly)).json()["data"]["points"]
    assert [p["value"] for p in before] == [55.0, 55.0, 55.0]

    # 31 days later (chunks of two series, to walk several transactions): raw samples are gone
    report = await apply_retention(
        app.state.sessionmaker, hub.settings, now=datetime.now(UTC) + timedelta(days=31), chunk=2
    )
    assert report.deleted.get("metric_sample", 0) + len(report.dropped_partitions) > 0
    listed = (await hub.get(SAMPLES, platform_code=GZ, **window)).json()["data"]["items"]
    assert listed == []
    assert (await hub.get(SERIES, **hourly)).json()["data"]["points"] == before
    assert await _count(app, MetricRollup5m) == 5 * 36

    # 91 days later the 5m rollups are gone too; hourly (2 years) and daily (kept) answer on
    await apply_retention(
        app.state.sessionmaker, hub.settings, now=datetime.now(UTC) + timedelta(days=91), chunk=2
    )
    assert await _count(app, MetricRollup5m) == 0
    assert (await hub.get(SERIES, **(hourly | {"step": "5m"}))).json()["data"]["points"] == []
    assert (await hub.get(SERIES, **hourly)).json()["data"]["points"] == before


async def test_postgresql_samples_land_in_daily_partitions_and_expired_days_are_dropped(
    hub: Hub, app: Any, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("SQLite has no partitions; its chunked deletes are covered above")
    await hub.create_platform(GZ, "440100")
    today = datetime.now(UTC).date()
    report = await maintain(app.state.sessionmaker, hub.settings)
    assert report.dropped_partitions == []
    async with app.state.sessionmaker() as session:
        parts = await existing_partitions(session, "metric_sample")
    expected = {partition_name("metric_sample", today + timedelta(days=d)) for d in range(8)}
    assert expected <= set(parts) and "metric_sample_default" in parts
    # a second run creates nothing twice
    await maintain(app.state.sessionmaker, hub.settings)

    now = now_utc()
    await pushed(hub, "metrics", GZ, "p", [metric("cpu.util", now - timedelta(minutes=1), 1.0)])
    async with app.state.sessionmaker() as session:
        where = (await session.execute(text("SELECT tableoid::regclass::text FROM metric_sample"))).scalars()
        assert list(where) == [partition_name("metric_sample", (now - timedelta(minutes=1)).date())]

    later = datetime.now(UTC) + timedelta(days=40)
    dropped = (await apply_retention(app.state.sessionmaker, hub.settings, now=later)).dropped_partitions
    assert partition_name("metric_sample", today) in dropped
    assert partition_name("environment_sample", today) in dropped
    async with app.state.sessionmaker() as session:
        left = await existing_partitions(session, "metric_sample")
    assert partition_name("metric_sample", today) not in left and "metric_sample_default" in left
    assert (await hub.get(SAMPLES, platform_code=GZ)).json()["data"]["items"] == []


async def test_the_scheduler_builds_rollups_in_the_background(hub: Hub, app: Any) -> None:
    await hub.create_platform(GZ, "440100")
    await _push_hours(hub, hour_floor(now_utc()) - timedelta(hours=2), 1, assets=1)
    scheduler = build_scheduler(hub.settings, app.state.sessionmaker)
    scheduler.start()
    try:
        for _ in range(100):
            async with app.state.sessionmaker() as session:
                built = (await session.execute(select(RollupState.built_seq))).scalars().all()
            if built and max(built) > 0:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the rollup job did not run")
    finally:
        scheduler.shutdown(wait=False)
    assert await _count(app, MetricRollup5m) == 12
