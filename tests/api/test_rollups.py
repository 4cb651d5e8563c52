"""Rollups (§5): a series answer equals one computed here from the raw samples pushed, before the
rollup job runs, after it, after late and corrected samples arrive, and once raw samples are gone.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.models import EnvironmentRollup1h, MetricRollup1d, MetricRollup1h, MetricRollup5m, MetricSample
from app.services.retention import apply_retention
from app.services.rollups import build_rollups
from tests.api.test_query_lists import room, sample
from tests.api.test_query_metrics import (
    CST,
    ENV_SERIES,
    GZ,
    aggregate,
    assert_points,
    expected_points,
    hour_floor,
    label,
    metric,
    pushed,
    series,
)
from tests.helpers import Hub, now_utc, rfc3339

AGGS = ("avg", "min", "max", "last", "sum")


def expected_days(samples: list[tuple[datetime, float]], agg: str) -> list[dict[str, Any]]:
    """1d buckets: days in Asia/Shanghai (+08:00 all year), labelled by local midnight."""
    groups: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for t, v in samples:
        groups[t.astimezone(CST).date().isoformat()].append((t, v))
    return [{"ts": f"{day}T00:00:00+08:00", "value": aggregate(groups[day], agg)} for day in sorted(groups)]


def expected(samples: dict[datetime, float], start: datetime, end: datetime, step: str, agg: str) -> Any:
    inside = [(t, v) for t, v in samples.items() if start <= t < end]
    if step == "1d":
        return expected_days(inside, agg)
    return expected_points(inside, {"5m": 300, "1h": 3600}[step], agg)


async def check_all(hub: Hub, samples: dict[datetime, float], start: datetime, end: datetime) -> None:
    window = {"metric": "cpu.util", "platform_code": GZ, "asset_id": "vm-1"}
    window |= {"from": rfc3339(start), "to": rfc3339(end)}
    for step in ("5m", "1h", "1d"):
        for agg in AGGS:
            data = await series(hub, step=step, agg=agg, **window)
            assert data["step"] == step
            assert_points(data["points"], expected(samples, start, end, step, agg))


async def test_series_equal_raw_before_and_after_the_job_with_late_and_corrected_samples(
    hub: Hub, app: Any
) -> None:
    await hub.create_platform(GZ, "440100")
    # two days around a Shanghai midnight (16:00 UTC), a sample every 97 s with noise
    midnight = hour_floor(now_utc() - timedelta(days=2)).replace(hour=16)
    base = midnight - timedelta(hours=20)
    rng = random.Random(11)
    samples = {base + timedelta(seconds=s): round(rng.uniform(0, 100), 2) for s in range(0, 40 * 3600, 97)}
    records = [metric("cpu.util", t, v) for t, v in samples.items()]
    for n in range(0, len(records), 500):
        await pushed(hub, "metrics", GZ, f"m-{n}", records[n : n + 500])
    # edges inside buckets: the partial buckets count only the samples inside the window
    start, end = base + timedelta(minutes=67, seconds=13), base + timedelta(hours=39, minutes=21)

    await check_all(hub, samples, start, end)  # nothing rolled up yet: all from raw
    reports = await build_rollups(app.state.sessionmaker, hub.settings)
    assert sum(r.changes for r in reports) == len(samples)
    await check_all(hub, samples, start, end)

    async with app.state.sessionmaker() as session:
        five = (await session.execute(select(func.count()).select_from(MetricRollup5m))).scalar_one()
        hours = (await session.execute(select(func.count()).select_from(MetricRollup1h))).scalar_one()
        days = (await session.execute(select(func.count()).select_from(MetricRollup1d))).scalar_one()
    assert (five, hours, days) == (40 * 12, 40, 2)  # 40 h across one Shanghai midnight

    # a correction of a sample from yesterday, and a late sample into an old bucket: seen at once
    corrected_at = sorted(samples)[500]
    late_at = base + timedelta(hours=5, minutes=1, seconds=1)
    assert late_at not in samples
    samples[corrected_at] += 1000
    samples[late_at] = -50.0
    await pushed(
        hub,
        "metrics",
        GZ,
        "late",
        [metric("cpu.util", corrected_at, samples[corrected_at]), metric("cpu.util", late_at, -50.0)],
    )
    await check_all(hub, samples, start, end)
    reports = await build_rollups(app.state.sessionmaker, hub.settings)
    assert sum(r.changes for r in reports) == 2
    await check_all(hub, samples, start, end)
    again = await build_rollups(app.state.sessionmaker, hub.settings)
    assert sum(r.changes for r in again) == 0

    # the retention job a month later: every raw sample is gone, whole buckets answer from rollups
    await apply_retention(app.state.sessionmaker, hub.settings, now=datetime.now(UTC) + timedelta(days=31))
    async with app.state.sessionmaker() as session:
        assert (await session.execute(select(func.count()).select_from(MetricSample))).scalar_one() == 0
    aligned_start, aligned_end = base, midnight + timedelta(hours=20)
    window = {"metric": "cpu.util", "platform_code": GZ, "asset_id": "vm-1"}
    window |= {"from": rfc3339(aligned_start), "to": rfc3339(aligned_end)}
    for step in ("5m", "1h"):
        for agg in ("avg", "max", "last"):
            data = await series(hub, step=step, agg=agg, **window)
            assert_points(data["points"], expected(samples, aligned_start, aligned_end, step, agg))


async def test_a_day_boundary_in_shanghai_splits_the_rolled_up_days(hub: Hub, app: Any) -> None:
    await hub.create_platform(GZ, "440100")
    day = (now_utc() - timedelta(days=3)).date()
    before = datetime(day.year, day.month, day.day, 15, 59, 59, tzinfo=UTC)  # 23:59:59 in Shanghai
    after = before + timedelta(seconds=1)  # 00:00:00 the next day
    await pushed(hub, "metrics", GZ, "d", [metric("cpu.util", before, 10.0), metric("cpu.util", after, 30.0)])
    await build_rollups(app.state.sessionmaker, hub.settings)
    params = {
        "metric": "cpu.util",
        "platform_code": GZ,
        "asset_id": "vm-1",
        "step": "1d",
        "agg": "sum",
        "from": f"{day - timedelta(days=1)}T00:00:00+08:00",
        "to": f"{day + timedelta(days=3)}T00:00:00+08:00",
    }
    data = await series(hub, **params)
    assert data["points"] == [
        {"ts": f"{day}T00:00:00+08:00", "value": 10.0},
        {"ts": f"{day + timedelta(days=1)}T00:00:00+08:00", "value": 30.0},
    ]
    hourly = await series(hub, **(params | {"step": "1h"}))
    assert [p["ts"] for p in hourly["points"]] == [label(hour_floor(before)), label(after)]


async def test_environment_series_from_rollups_follow_corrections(hub: Hub, app: Any) -> None:
    await hub.create_platform(GZ, "440100")
    await pushed(hub, "rooms", GZ, "r", [room("R1")])
    base = hour_floor(now_utc()) - timedelta(hours=6)
    readings = {base + timedelta(minutes=m): 20 + (m % 7) * 0.5 for m in range(0, 300, 2)}

    await pushed(
        hub,
        "environment",
        GZ,
        "e-1",
        [sample("R1", "T1", "cold_aisle_temp", t, v) for t, v in readings.items()],
    )
    params = {"platform_code": GZ, "room_code": "R1", "point_code": "T1", "step": "1h", "agg": "max"}
    params |= {"from": rfc3339(base), "to": rfc3339(base + timedelta(hours=5))}

    async def answer() -> list[dict[str, Any]]:
        response = await hub.get(ENV_SERIES, **params)
        assert response.status_code == 200, response.text
        return response.json()["data"]["points"]  # type: ignore[no-any-return]

    want = expected_points(list(readings.items()), 3600, "max")
    assert_points(await answer(), want)
    await build_rollups(app.state.sessionmaker, hub.settings)
    async with app.state.sessionmaker() as session:
        assert (
            await session.execute(select(func.count()).select_from(EnvironmentRollup1h))
        ).scalar_one() == 5
    assert_points(await answer(), want)
    hot = base + timedelta(hours=2, minutes=10)
    readings[hot] = 45.0
    await pushed(hub, "environment", GZ, "e-2", [sample("R1", "T1", "cold_aisle_temp", hot, 45.0)])
    want = expected_points(list(readings.items()), 3600, "max")
    assert want[2]["value"] == pytest.approx(45.0)
    assert_points(await answer(), want)
    await build_rollups(app.state.sessionmaker, hub.settings)
    assert_points(await answer(), want)
