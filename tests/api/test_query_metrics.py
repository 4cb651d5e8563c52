"""Monitoring and environment data read back (§5): series in buckets, latest values, raw samples.

Every expected series is computed here, independently, from the raw samples the test pushed.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.errors import BadParameter
from app.services.buckets import Step, bucketize, collect_points
from tests.api.test_query_lists import room, sample
from tests.helpers import Hub, batch, now_utc, rfc3339, vm

GZ, SZ = "GD-GZ-01", "GD-SZ-01"
CST = timezone(timedelta(hours=8))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SERIES, LATEST, SAMPLES = "/api/v1/metrics/series", "/api/v1/metrics/latest", "/api/v1/metrics/samples"
ENV_SERIES, ENV_LATEST, ENV_SAMPLES = (
    "/api/v1/environment/series",
    "/api/v1/environment/latest",
    "/api/v1/environment/samples",
)


def hour_floor(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def label(value: datetime) -> str:
    """A bucket label as the hub writes it: RFC 3339 with the +08:00 offset of Asia/Shanghai."""
    return value.astimezone(CST).isoformat()


def metric(
    name: str, at: datetime, value: float, asset_id: str | None = "vm-1", **labels: str
) -> dict[str, Any]:
    record: dict[str, Any] = {"metric": name, "ts": rfc3339(at), "value": value}
    if asset_id is not None:
        record["asset_id"] = asset_id
    if labels:
        record["labels"] = labels
    return record


def expected_points(
    samples: list[tuple[datetime, float]], step_s: int | None, agg: str
) -> list[dict[str, Any]]:
    """Buckets computed the obvious way: group by epoch multiple, then aggregate."""
    if step_s is None:
        return [{"ts": label(t), "value": v} for t, v in sorted(samples)]
    groups: dict[int, list[tuple[datetime, float]]] = defaultdict(list)
    for t, v in samples:
        seconds = int((t - EPOCH).total_seconds())
        groups[seconds - seconds % step_s].append((t, v))
    return [
        {"ts": label(EPOCH + timedelta(seconds=start)), "value": aggregate(groups[start], agg)}
        for start in sorted(groups)
    ]


def aggregate(samples: list[tuple[datetime, float]], agg: str) -> float:
    """One bucket's value, the obvious way (``last`` is the value of the latest sample)."""
    values = [v for _, v in sorted(samples)]
    return {
        "avg": sum(values) / len(values),
        "min": min(values),
        "max": max(values),
        "sum": sum(values),
        "last": values[-1],
    }[agg]


def assert_points(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [p["ts"] for p in actual] == [p["ts"] for p in expected]
    assert [p["value"] for p in actual] == pytest.approx([p["value"] for p in expected])


async def series(hub: Hub, key: str | None = None, **params: Any) -> dict[str, Any]:
    answer = await hub.get(SERIES, key, **params)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]  # type: ignore[no-any-return]


async def pages(hub: Hub, path: str, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paged list, following cursors (with the same filters each time)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        answer = await hub.get(path, key, **params, **({"cursor": cursor} if cursor else {}))
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        items.extend(data["items"])
        cursor = data["next_cursor"]
        if not cursor:
            return items


async def pushed(hub: Hub, kind: str, platform: str, batch_id: str, records: list[Any]) -> None:
    answer = await hub.push(kind, batch(platform, batch_id, records))
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["status"] == "accepted", answer.text


# --- series ---------------------------------------------------------------------------------------


async def test_series_equal_the_raw_samples_aggregated_for_every_agg_and_step(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    base = hour_floor(now_utc()) - timedelta(hours=3)
    rng = random.Random(7)
    samples = [
        (base + timedelta(seconds=s), round(rng.uniform(0, 100), 3))
        for s in range(0, 7200, 37)
        if not 2400 <= s < 3300  # a gap of 15 minutes: those 5m buckets are omitted
    ]
    outside = [(base - timedelta(seconds=1), 1000.0), (base + timedelta(hours=2), 2000.0)]  # [from, to)
    records = [metric("cpu.util", t, v) for t, v in samples + outside]
    await pushed(hub, "metrics", GZ, "m-1", records)
    window = {"metric": "cpu.util", "platform_code": GZ, "asset_id": "vm-1"}
    window |= {"from": rfc3339(base), "to": rfc3339(base + timedelta(hours=2), 0).replace("+00:00", "Z")}

    for step, step_s in (("raw", None), ("5m", 300), ("1h", 3600)):
        for agg in ("avg", "min", "max", "last", "sum"):
            data = await series(hub, step=step, agg=agg, **window)
            assert (data["step"], data["agg"], data["unit"]) == (step, agg, "%")
            assert_points(data["points"], expected_points(samples, step_s, agg))
            assert [s["labels"] for s in data["series"]] == [{}]
            assert data["series"][0]["points"] == data["points"]
    five = await series(hub, step="5m", **window)
    assert len(five["points"]) == 24 - 3  # 2 h of 5-minute buckets, the gap's three omitted
    assert five["from"] == label(base) and five["to"] == label(base + timedelta(hours=2))
    assert five["asset_uid"] and five["asset_id"] == "vm-1" and five["platform_code"] == GZ

    # a correction (same key, another value) changes the answer at once
    first_t, first_v = samples[0]
    await pushed(hub, "metrics", GZ, "m-2", [metric("cpu.util", first_t, first_v + 50)])
    corrected = [(first_t, first_v + 50), *samples[1:]]
    for agg in ("avg", "max", "sum"):
        assert_points(
            (await series(hub, step="1h", agg=agg, **window))["points"], expected_points(corrected, 3600, agg)
        )
    assert (await series(hub, step="raw", **window))["points"][0]["value"] == pytest.approx(first_v + 50)


async def test_days_are_taken_in_the_reporting_time_zone(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    day = (now_utc() - timedelta(days=3)).date()
    late = datetime(day.year, day.month, day.day, 15, 59, tzinfo=UTC)  # 23:59 in Shanghai
    early = late + timedelta(minutes=2)  # 00:01 the next day in Shanghai
    await pushed(hub, "metrics", GZ, "d-1", [metric("cpu.util", late, 10.0), metric("cpu.util", early, 30.0)])
    data = await series(
        hub,
        metric="cpu.util",
        platform_code=GZ,
        asset_id="vm-1",
        step="1d",
        agg="sum",
        **{
            "from": f"{day - timedelta(days=1)}T00:00:00+08:00",
            "to": f"{day + timedelta(days=3)}T00:00:00+08:00",
        },
    )
    assert data["points"] == [
        {"ts": f"{day}T00:00:00+08:00", "value": 10.0},
        {"ts": f"{day + timedelta(days=1)}T00:00:00+08:00", "value": 30.0},
    ]
    assert data["from"] == f"{day - timedelta(days=1)}T00:00:00+08:00"


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (timedelta(hours=10), "raw"),  # 5m would give 120 < 200 points
        (timedelta(days=1), "5m"),  # 288 ≥ 200; 1h gives 24
        (timedelta(days=30), "1h"),  # 720 ≥ 200; 1d gives 30
        (timedelta(days=250), "1d"),
    ],
)
async def test_auto_picks_the_coarsest_step_giving_200_points(
    hub: Hub, span: timedelta, expected: str
) -> None:
    await hub.create_platform(GZ, "440100")
    end = hour_floor(now_utc())
    data = await series(
        hub, metric="cpu.util", platform_code=GZ, **{"from": rfc3339(end - span), "to": rfc3339(end)}
    )
    assert data["step"] == expected and data["points"] == [] and data["series"] == []


async def test_auto_answers_like_the_step_it_picked(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    at = now_utc() - timedelta(hours=2)
    await pushed(
        hub, "metrics", GZ, "a-1", [metric("mem.util", at + timedelta(seconds=i * 50), i) for i in range(20)]
    )
    common = {"metric": "mem.util", "platform_code": GZ, "asset_id": "vm-1"}  # default window: the last 24 h
    auto = await series(hub, **common)
    assert auto["step"] == "5m" and auto["points"] == (await series(hub, step="5m", **common))["points"]
    assert auto["points"]


async def test_labels_select_one_series_and_without_them_each_labels_set_is_a_series(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    await pushed(hub, "assets", GZ, "as-1", [vm("vm-1")])
    at = hour_floor(now_utc()) - timedelta(hours=2)
    records = [
        metric("net.rx.bits_per_s", at, 100.0, device="eth0"),
        metric("net.rx.bits_per_s", at + timedelta(minutes=1), 300.0, device="eth0"),
        metric("net.rx.bits_per_s", at, 7.0, device="eth1"),
        metric("net.rx.bits_per_s", at, 5.0, device="eth0", direction="in"),
        metric("net.rx.bits_per_s", at, 42.0, asset_id=None),  # platform-level
        metric("net.rx.bits_per_s", at, 9.0, asset_id="vm-2", device="eth0"),
    ]
    await pushed(hub, "metrics", GZ, "l-1", records)
    common = {"metric": "net.rx.bits_per_s", "platform_code": GZ, "step": "1h"}

    every = await series(hub, asset_id="vm-1", **common)
    assert [(s["labels"], s["points"][0]["value"]) for s in every["series"]] == [
        ({"device": "eth0"}, 200.0),
        ({"device": "eth0", "direction": "in"}, 5.0),
        ({"device": "eth1"}, 7.0),
    ]
    assert every["points"] is None  # several series: no single answer

    one = await series(hub, asset_id="vm-1", labels="device:eth0", **common)
    assert [s["labels"] for s in one["series"]] == [{"device": "eth0"}]
    assert one["points"] == [{"ts": label(at), "value": 200.0}] and one["labels"] == {"device": "eth0"}
    both = await series(hub, asset_id="vm-1", labels="direction:in,device:eth0", **common)
    assert [p["value"] for p in both["points"]] == [5.0]
    none = await series(hub, asset_id="vm-1", labels="device:eth9", **common)
    assert (none["series"], none["points"]) == ([], [])

    platform = await series(hub, **common)
    assert platform["asset_id"] is None and platform["points"] == [{"ts": label(at), "value": 42.0}]

    uid = (await hub.assets())[0]["asset_uid"]
    by_uid = await series(
        hub, asset_uid=uid, labels="device:eth0", **{k: v for k, v in common.items() if k != "platform_code"}
    )
    assert by_uid["points"] == one["points"] and by_uid["platform_code"] == GZ


# --- latest ---------------------------------------------------------------------------------------


async def test_latest_is_a_top_n_of_each_series_latest_value(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    await hub.create_platform(SZ, "440300")
    await pushed(hub, "assets", GZ, "as-1", [vm("vm-1")])
    old, new = now_utc() - timedelta(hours=2), now_utc() - timedelta(hours=1)
    values = {"vm-1": 55.0, "vm-2": 10.0, "vm-3": 90.0, "vm-4": 30.0}
    records = [metric("cpu.util", old, 99.9, asset_id=a) for a in values]  # older samples never win
    records += [metric("cpu.util", new, v, asset_id=a) for a, v in values.items()]
    records.append(metric("mem.util", new, 100.0, asset_id="vm-5"))  # another metric
    await pushed(hub, "metrics", GZ, "t-1", records)
    await pushed(hub, "metrics", SZ, "t-2", [metric("cpu.util", new, 70.0, asset_id="sz-1")])

    top = (await hub.get(LATEST, metric="cpu.util", limit=3)).json()["data"]
    assert [(i["asset_id"], i["value"]) for i in top["items"]] == [
        ("vm-3", 90.0),
        ("sz-1", 70.0),
        ("vm-1", 55.0),
    ]
    first = top["items"][0]
    assert first["platform_code"] == GZ and first["ts"] == label(new) and first["labels"] == {}
    assert first["asset_known"] is False and top["items"][2]["asset_known"] is True
    assert top["unit"] == "%" and first["asset_uid"]

    bottom = (await hub.get(LATEST, metric="cpu.util", order="asc", platform_code=GZ)).json()["data"]
    assert [i["value"] for i in bottom["items"]] == [10.0, 30.0, 55.0, 90.0]
    region = (await hub.get(LATEST, metric="cpu.util", region_code="440300")).json()["data"]
    assert [i["asset_id"] for i in region["items"]] == ["sz-1"]
    regulator = await hub.create_client("regulator", regions=["4403"])
    scoped = (await hub.get(LATEST, regulator, metric="cpu.util")).json()["data"]
    assert [i["platform_code"] for i in scoped["items"]] == [SZ]  # silently filtered


# --- raw samples ----------------------------------------------------------------------------------


async def test_samples_pages_hold_every_sample_exactly_once(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    await hub.create_platform(SZ, "440300")
    start = now_utc() - timedelta(hours=5)
    records = [
        metric(name, start + timedelta(minutes=i), float(i), asset_id=asset, **labels)
        for i in range(8)
        for name, asset, labels in (
            ("cpu.util", "vm-1", {}),
            ("cpu.util", "vm-2", {}),
            ("disk.util", "vm-1", {"device": "vda"}),
        )
    ]
    records.append(metric("cpu.util", now_utc() - timedelta(days=2), 1.0))  # outside the default 24 h
    await pushed(hub, "metrics", GZ, "s-1", records)
    await pushed(hub, "metrics", SZ, "s-2", [metric("cpu.util", start, 1.0, asset_id="sz-1")])

    items = await pages(hub, SAMPLES, platform_code=GZ, limit=7)
    keys = [(i["metric"], i["asset_id"], i["ts"]) for i in items]
    assert len(keys) == len(set(keys)) == 24
    assert {i["platform_code"] for i in items} == {GZ}
    disk = next(i for i in items if i["metric"] == "disk.util")
    assert disk["labels"] == {"device": "vda"} and disk["asset_uid"] and disk["received_at"]
    assert disk["ts"].endswith("+08:00")

    assert len(await pages(hub, SAMPLES, limit=7)) == 25  # both platforms
    narrowed = await pages(hub, SAMPLES, metric="cpu.util", asset_id="vm-2", limit=3)
    assert [i["value"] for i in narrowed] == [float(i) for i in range(8)]
    window = {"from": rfc3339(start + timedelta(minutes=2)), "to": rfc3339(start + timedelta(minutes=4))}
    assert len(await pages(hub, SAMPLES, platform_code=GZ, limit=2, **window)) == 6

    first = (await hub.get(SAMPLES, platform_code=GZ, limit=7, with_total="true")).json()["data"]
    assert first["total"] == 24
    other = await hub.get(SAMPLES, platform_code=SZ, limit=7, cursor=first["next_cursor"])
    assert (other.status_code, other.json()["code"]) == (400, "1001")  # a cursor binds its filters


# --- environment ----------------------------------------------------------------------------------


ROOM = {
    "room_code": "R1",
    "name": "一号机房",
    "datacenter_code": "DC1",
    "datacenter_name": "南沙数据中心",
    "region_code": "440115",
    "gb50174_class": "A",
    "aisle_containment": True,
}


def env(point: str, point_type: str, at: datetime, value: float, **fields: Any) -> dict[str, Any]:
    return {
        "room_code": "R1",
        "point_code": point,
        "point_type": point_type,
        "ts": rfc3339(at),
        "value": value,
        **fields,
    }


async def _environment(hub: Hub) -> tuple[datetime, list[tuple[datetime, float]]]:
    await hub.create_platform(GZ, "440100")
    await pushed(hub, "rooms", GZ, "r-1", [ROOM])
    base = hour_floor(now_utc()) - timedelta(hours=2)
    temps = [(base + timedelta(minutes=2 * i), 20.0 + i / 2) for i in range(30)]
    records = [env("T1", "cold_aisle_temp", t, v, rack_code="A01", position="cold_aisle") for t, v in temps]
    records += [env("H1", "cold_aisle_rh", base + timedelta(minutes=i), 40.0 + i) for i in range(5)]
    await pushed(hub, "environment", GZ, "e-1", records)
    return base, temps


async def test_environment_latest_series_and_samples(hub: Hub) -> None:
    base, temps = await _environment(hub)

    latest = (await hub.get(ENV_LATEST)).json()["data"]
    assert [(i["point_code"], i["value"], i["ts"]) for i in latest["items"]] == [
        ("H1", 44.0, label(base + timedelta(minutes=4))),
        ("T1", temps[-1][1], label(temps[-1][0])),
    ]
    t1 = latest["items"][1]
    assert (t1["point_type"], t1["rack_code"], t1["position"], t1["room_code"]) == (
        "cold_aisle_temp",
        "A01",
        "cold_aisle",
        "R1",
    )
    assert "state" in t1 and "evaluated_at" in t1
    only_rh = (await hub.get(ENV_LATEST, point_type="cold_aisle_rh")).json()["data"]["items"]
    assert [i["point_code"] for i in only_rh] == ["H1"]
    assert len(await pages(hub, ENV_LATEST, limit=1)) == 2

    point = {"platform_code": GZ, "room_code": "R1", "point_code": "T1"}
    window = {"from": rfc3339(base), "to": rfc3339(base + timedelta(hours=1))}
    raw = (await hub.get(ENV_SERIES, step="raw", **point, **window)).json()["data"]
    assert raw["point_type"] == "cold_aisle_temp" and raw["step"] == "raw"
    assert_points(raw["points"], expected_points(temps, None, "avg"))
    assert all("state" in p for p in raw["points"])
    for agg in ("avg", "max", "last"):
        bucketed = (await hub.get(ENV_SERIES, step="5m", agg=agg, **point, **window)).json()["data"]
        assert_points(bucketed["points"], expected_points(temps, 300, agg))
        assert all("state" not in p for p in bucketed["points"])

    samples = await pages(hub, ENV_SAMPLES, limit=4)
    keys = [(s["point_code"], s["ts"]) for s in samples]
    assert len(keys) == len(set(keys)) == 35
    assert [s["point_code"] for s in samples] == ["H1"] * 5 + ["T1"] * 30  # (room, point, ts) order
    first = samples[5]
    assert (first["point_type"], first["rack_code"], first["position"], first["value"]) == (
        "cold_aisle_temp",
        "A01",
        "cold_aisle",
        20.0,
    )
    assert {"state", "evaluated_at", "received_at"} <= set(first)
    assert len(await pages(hub, ENV_SAMPLES, point_type="cold_aisle_rh", limit=2)) == 5
    assert len(await pages(hub, ENV_SAMPLES, point_code="T1", limit=50, **window)) == 30

    missing = await hub.get(ENV_SERIES, platform_code=GZ, room_code="R1", point_code="nope")
    assert (missing.status_code, missing.json()["code"]) == (404, "3002")


# --- scope and parameters -------------------------------------------------------------------------


async def test_scope_refuses_platforms_assets_and_kinds_outside_the_key(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    await hub.create_platform(SZ, "440300")
    await pushed(hub, "rooms", GZ, "r-1", [ROOM])
    await pushed(hub, "assets", GZ, "as-1", [vm("vm-1")])
    uid = (await hub.assets())[0]["asset_uid"]
    at = now_utc() - timedelta(hours=1)
    await pushed(hub, "metrics", GZ, "m-1", [metric("cpu.util", at, 5.0)])
    await pushed(hub, "environment", GZ, "e-1", [env("T1", "cold_aisle_temp", at, 22.0)])

    regulator = await hub.create_client("regulator", regions=["4403"])
    for path, params, status, code in [
        (SERIES, {"metric": "cpu.util", "platform_code": GZ}, 403, "2006"),
        (SERIES, {"metric": "cpu.util", "asset_uid": uid}, 404, "3002"),
        (SERIES, {"metric": "cpu.util", "asset_uid": "6b1c1d1e-0000-5000-8000-000000000000"}, 404, "3002"),
        (SAMPLES, {"platform_code": GZ}, 403, "2006"),
        (LATEST, {"metric": "cpu.util", "region_code": "440100"}, 403, "2006"),
        (ENV_SERIES, {"platform_code": GZ, "room_code": "R1", "point_code": "T1"}, 403, "2006"),
        (ENV_LATEST, {"platform_code": GZ}, 403, "2006"),
    ]:
        answer = await hub.get(path, regulator, **params)
        assert (answer.status_code, answer.json()["code"]) == (status, code), (path, params)
    assert await pages(hub, SAMPLES, regulator) == []
    assert await pages(hub, ENV_SAMPLES, regulator) == []

    for params in ({"asset_uid": uid, "platform_code": SZ}, {"asset_uid": "not-a-uuid"}):
        answer = await hub.get(SERIES, metric="cpu.util", **params)
        assert (answer.status_code, answer.json()["code"]) == (404, "3002"), params

    assets_only = await hub.create_client("integrator", platforms=[GZ], kinds=["assets"])
    for path, params in [
        (SERIES, {"metric": "cpu.util", "platform_code": GZ}),
        (LATEST, {"metric": "cpu.util"}),
        (SAMPLES, {}),
        (ENV_SERIES, {"platform_code": GZ, "room_code": "R1", "point_code": "T1"}),
        (ENV_LATEST, {}),
        (ENV_SAMPLES, {}),
    ]:
        answer = await hub.get(path, assets_only, **params)
        assert (answer.status_code, answer.json()["code"]) == (403, "2006"), path

    integrator = await hub.create_client("integrator", platforms=[GZ], kinds=["metrics", "environment"])
    granted = await series(hub, integrator, metric="cpu.util", platform_code=GZ, asset_id="vm-1", step="raw")
    assert [p["value"] for p in granted["points"]] == [5.0]
    assert len(await pages(hub, ENV_SAMPLES, integrator)) == 1


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (SERIES, {"metric": "cpu.nope", "platform_code": GZ}),
        (SERIES, {"metric": "cpu.util", "platform_code": GZ, "from": "2026-11-21T08:00:00"}),
        (SERIES, {"metric": "cpu.util", "platform_code": GZ, "step": "2m"}),
        (SERIES, {"metric": "cpu.util", "platform_code": GZ, "agg": "median"}),
        (SERIES, {"metric": "cpu.util", "platform_code": GZ, "labels": "device"}),
        (SERIES, {"metric": "cpu.util", "platform_code": GZ, "labels": "a:1,a:2"}),
        (SERIES, {"metric": "cpu.util"}),
        (SERIES, {"platform_code": GZ}),
        (SERIES, {"metric": "cpu.util", "platform_code": GZ, "asset_id": "vm-1", "asset_uid": "x"}),
        (
            SERIES,
            {
                "metric": "cpu.util",
                "platform_code": GZ,
                "from": "2026-11-21T08:00:00Z",
                "to": "2026-11-21T07:00:00Z",
            },
        ),
        (LATEST, {"metric": "cpu.nope"}),
        (LATEST, {"metric": "cpu.util", "order": "up"}),
        (LATEST, {"metric": "cpu.util", "limit": "1001"}),
        (SAMPLES, {"metric": "cpu.nope"}),
        (SAMPLES, {"to": "yesterday"}),
        (SAMPLES, {"cursor": "forged"}),
        (ENV_SERIES, {"platform_code": GZ, "room_code": "R1", "point_code": "T1", "step": "2m"}),
        (ENV_SAMPLES, {"point_type": "lava_temp"}),
        (ENV_LATEST, {"cursor": "forged"}),
        (
            SERIES,
            {
                "metric": "cpu.util",
                "platform_code": GZ,
                "from": "0001-01-01T00:00:00Z",
                "to": "9999-12-31T23:59:59Z",
            },
        ),
        (SAMPLES, {"from": "1969-12-31T23:59:59Z"}),
        (SAMPLES, {"asset_id": "vm\x00"}),  # PostgreSQL text cannot hold NUL: a 400, not a 500
        (ENV_LATEST, {"room_code": "\x00"}),
        (ENV_SAMPLES, {"to": "9999-12-31T23:59:59+08:00"}),
    ],
)
async def test_bad_parameters_are_400_1001(hub: Hub, path: str, params: dict[str, str]) -> None:
    await hub.create_platform(GZ, "440100")
    answer = await hub.get(path, **params)
    assert (answer.status_code, answer.json()["code"]) == (400, "1001"), answer.text


async def test_an_answer_past_the_point_cap_is_a_400_not_a_500() -> None:
    async def rows() -> Any:
        for i in range(10):
            yield 1, EPOCH + timedelta(seconds=i), float(i)

    step = Step("raw", ZoneInfo("Asia/Shanghai"))
    with pytest.raises(BadParameter):
        await collect_points(bucketize(rows(), step), step, "avg", max_points=5)
    assert len((await collect_points(bucketize(rows(), step), step, "avg", max_points=10))[1]) == 10


async def test_the_latest_value_ignores_late_samples_and_follows_corrections(hub: Hub) -> None:
    """Latest values come from what ingest keeps per series / point: a late (older) sample does not
    replace the newest, a correction of the newest does."""
    await hub.create_platform(GZ, "440100")
    newest, older = now_utc() - timedelta(minutes=5), now_utc() - timedelta(hours=2)
    await pushed(hub, "metrics", GZ, "m-1", [metric("cpu.util", newest, 40.0)])
    await pushed(hub, "metrics", GZ, "m-2", [metric("cpu.util", older, 99.0)])  # late
    await pushed(hub, "rooms", GZ, "r-1", [room("R1")])
    await pushed(hub, "environment", GZ, "e-1", [sample("R1", "T1", "cold_aisle_temp", newest, 22.0)])
    await pushed(hub, "environment", GZ, "e-2", [sample("R1", "T1", "cold_aisle_temp", older, 35.0)])

    async def latest() -> tuple[Any, Any]:
        metric_items = (await hub.get(LATEST, metric="cpu.util")).json()["data"]["items"]
        points = (await hub.get(ENV_LATEST, platform_code=GZ)).json()["data"]["items"]
        return [(i["ts"], i["value"]) for i in metric_items], [(p["ts"], p["value"]) for p in points]

    assert await latest() == ([(label(newest), 40.0)], [(label(newest), 22.0)])
    await pushed(hub, "metrics", GZ, "m-3", [metric("cpu.util", newest, 41.5)])  # a correction
    await pushed(hub, "environment", GZ, "e-3", [sample("R1", "T1", "cold_aisle_temp", newest, 23.5)])
    assert await latest() == ([(label(newest), 41.5)], [(label(newest), 23.5)])
    rooms = (await hub.get("/api/v1/rooms", platform_code=GZ)).json()["data"]["items"]
    assert [(p["point_code"], p["value"]) for p in rooms[0]["points"]] == [("T1", 23.5)]
