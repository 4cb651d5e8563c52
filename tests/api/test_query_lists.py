"""The northbound lists of §5 besides assets: platforms (with freshness), rooms, alarms and logs.

Each list: its filters, its fixed order, keyset pages that return every row exactly once, cursors
bound to their filters, ``with_total``, scope (§1) and a fixed number of SQL statements per page.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from app.security import ratelimit
from tests.helpers import Hub, batch, now_utc, rfc3339, vm

GZ, SZ, BJ = "GD-GZ-01", "GD-SZ-01", "BJ-01"
UID_NAMESPACE = uuid.UUID("014f5156-d3bb-4a1f-b52d-ec5938c65eae")


def uid(platform: str, asset_id: str) -> str:
    return str(uuid.uuid5(UID_NAMESPACE, f"{platform}|{asset_id}"))


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert (response.status_code, response.json()["code"]) == (status, code), response.text


def data_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == "0"
    return body["data"]  # type: ignore[no-any-return]


async def collect(hub: Hub, path: str, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, following cursors page by page."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = data_of(await hub.get(path, key, **query))
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return items


async def push_ok(hub: Hub, kind: str, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    response = await hub.push(kind, body, key)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["rejected"] == 0, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def ago(**delta: float) -> datetime:
    return now_utc() - timedelta(**delta)


def room(code: str, **fields: Any) -> dict[str, Any]:
    return {
        "room_code": code,
        "name": f"机房 {code}",
        "datacenter_code": "DC1",
        "datacenter_name": "南沙数据中心",
        "region_code": "440115",
        "gb50174_class": "A",
        "aisle_containment": True,
        **fields,
    }


def sample(
    room_code: str, point: str, point_type: str, at: datetime, value: float, **fields: Any
) -> dict[str, Any]:
    return {
        "room_code": room_code,
        "point_code": point,
        "point_type": point_type,
        "ts": rfc3339(at),
        "value": value,
        **fields,
    }


def alarm(alarm_id: str, level: int, status: str, first_at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "alarm_id": alarm_id,
        "level": level,
        "status": status,
        "title": f"告警 {alarm_id}",
        "first_at": rfc3339(first_at),
        **fields,
    }


def log(log_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "log_id": log_id,
        "category": "operation",
        "type": "login",
        "event_time": rfc3339(at),
        "severity": 6,
        "actor": "alice",
        "action": "login",
        "outcome": "success",
        "message": "登录成功",
        **fields,
    }


async def three_platforms(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    await hub.create_platform(SZ, "440300")
    await hub.create_platform(BJ, "110000")


# --- platforms --------------------------------------------------------------------------------


async def test_platforms_are_listed_by_code_within_each_callers_scope(hub: Hub) -> None:
    await three_platforms(hub)
    codes = [p["platform_code"] for p in await collect(hub, "/api/v1/platforms")]
    assert codes == [BJ, GZ, SZ]
    assert [p["platform_code"] for p in await collect(hub, "/api/v1/platforms", region_code="44")] == [GZ, SZ]
    assert [p["platform_code"] for p in await collect(hub, "/api/v1/platforms", region_code="440300")] == [SZ]

    regulator = await hub.create_client("regulator", regions=["440100"])
    provider = await hub.create_client("provider", platforms=[SZ])
    # an integrator reads the registry whatever its kinds
    integrator = await hub.create_client("integrator", platforms=[BJ], regions=["440300"], kinds=["logs"])
    assert [p["platform_code"] for p in await collect(hub, "/api/v1/platforms", regulator)] == [GZ]
    assert [p["platform_code"] for p in await collect(hub, "/api/v1/platforms", provider)] == [SZ]
    assert [p["platform_code"] for p in await collect(hub, "/api/v1/platforms", integrator)] == [BJ, SZ]
    assert_error(await hub.get("/api/v1/platforms", regulator, region_code="4403"), 403, "2006")
    assert_error(await hub.get("/api/v1/platforms", regulator, region_code="44x"), 400, "1001")


async def test_platform_pages_with_total_and_cursors_bound_to_their_filters(hub: Hub) -> None:
    await three_platforms(hub)
    first = data_of(await hub.get("/api/v1/platforms", limit=2, with_total="true"))
    assert first["total"] == 3 and len(first["items"]) == 2 and first["next_cursor"]
    assert [p["platform_code"] for p in await collect(hub, "/api/v1/platforms", limit=1)] == [BJ, GZ, SZ]
    reused = await hub.get("/api/v1/platforms", limit=2, cursor=first["next_cursor"], region_code="44")
    assert_error(reused, 400, "1001")
    assert_error(await hub.get("/api/v1/platforms", cursor="forged"), 400, "1001")
    assert_error(await hub.get("/api/v1/platforms", limit=1001), 400, "1001")


async def test_one_platform_outside_scope_is_not_found(hub: Hub) -> None:
    await three_platforms(hub)
    regulator = await hub.create_client("regulator", regions=["440100"])
    one = data_of(await hub.get(f"/api/v1/platforms/{GZ}", regulator))
    assert one["platform_code"] == GZ and one["region_code"] == "440100"
    assert set(one["freshness"]) == {"assets", "logs", "metrics", "environment", "alarms"}
    assert_error(await hub.get(f"/api/v1/platforms/{SZ}", regulator), 404, "3002")
    assert_error(await hub.get("/api/v1/platforms/NOPE-01"), 404, "3002")


async def test_freshness_per_kind_from_the_newest_stored_batch(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    await hub.create_platform(SZ, "440300", expected_intervals={"logs": 60, "metrics": 1})
    metric = {"metric": "cpu.util", "ts": rfc3339(ago(minutes=1)), "value": 12.5}
    receipt = await push_ok(hub, "metrics", batch(GZ, "m-1", [metric]))
    # a rejected batch brought no data: it does not count
    rejected = await hub.push("logs", batch(GZ, "l-bad", [{"log_id": "L1", "category": "nonsense"}]))
    assert rejected.status_code == 422

    gz = data_of(await hub.get(f"/api/v1/platforms/{GZ}"))["freshness"]
    assert gz["metrics"]["stale"] is False
    assert datetime.fromisoformat(gz["metrics"]["latest_received_at"]) == datetime.fromisoformat(
        receipt["received_at"]
    )
    assert gz["logs"] == {"latest_received_at": None, "expected_interval_s": 3600, "stale": True}
    assert {k: v["expected_interval_s"] for k, v in gz.items()} == {
        "assets": 86400,
        "logs": 3600,
        "metrics": 300,
        "environment": 300,
        "alarms": 300,
    }

    # a platform's own expected intervals win; older than two intervals is stale
    await push_ok(hub, "metrics", batch(SZ, "m-1", [metric]))
    listed = {p["platform_code"]: p["freshness"] for p in await collect(hub, "/api/v1/platforms")}
    assert listed[GZ] == gz
    assert listed[SZ]["logs"]["expected_interval_s"] == 60
    assert listed[SZ]["metrics"]["expected_interval_s"] == 1
    await asyncio.sleep(2.2)
    sz = data_of(await hub.get(f"/api/v1/platforms/{SZ}"))["freshness"]
    assert sz["metrics"]["stale"] is True and sz["metrics"]["latest_received_at"] is not None


# --- rooms ------------------------------------------------------------------------------------


async def rooms_world(hub: Hub) -> datetime:
    await three_platforms(hub)
    await push_ok(hub, "rooms", batch(GZ, "r-1", [room("R2"), room("R1", address="广州市南沙区")]))
    await push_ok(hub, "rooms", batch(SZ, "r-1", [room("S1", region_code="440305")]))
    t = ago(minutes=10)
    await push_ok(
        hub,
        "environment",
        batch(
            GZ,
            "e-1",
            [
                sample("R1", "T1", "cold_aisle_temp", t, 22.0, rack_code="A01", position="cold_aisle"),
                sample("R1", "T1", "cold_aisle_temp", t + timedelta(minutes=5), 24.5),
                sample("R1", "H1", "cold_aisle_rh", t + timedelta(minutes=1), 45.0),
            ],
        ),
    )
    # a late sample (older ts) arriving afterwards does not replace the latest one
    await push_ok(hub, "environment", batch(GZ, "e-2", [sample("R1", "H1", "cold_aisle_rh", t, 50.0)]))
    await push_ok(hub, "environment", batch(SZ, "e-1", [sample("S1", "W1", "water_leak", t, 0.0)]))
    return t


async def test_rooms_carry_the_latest_sample_of_each_point(hub: Hub) -> None:
    t = await rooms_world(hub)
    rooms = await collect(hub, "/api/v1/rooms")
    assert [(r["platform_code"], r["room_code"]) for r in rooms] == [(GZ, "R1"), (GZ, "R2"), (SZ, "S1")]
    r1 = rooms[0]
    assert (r1["name"], r1["address"], r1["gb50174_class"], r1["aisle_containment"]) == (
        "机房 R1",
        "广州市南沙区",
        "A",
        True,
    )
    assert {"datacenter_code", "region_code", "area_m2", "rack_count", "design_pue", "created_at"} <= set(r1)
    points = {p["point_code"]: p for p in r1["points"]}
    assert list(points) == ["H1", "T1"]
    assert points["T1"] == {
        "point_code": "T1",
        "point_type": "cold_aisle_temp",
        "rack_code": "A01",
        "position": "cold_aisle",
        "derived_from": None,
        "ts": points["T1"]["ts"],
        "value": 24.5,
        "state": "normal",  # 24.5 ℃ is inside 19–26 (§6.6)
    }
    assert datetime.fromisoformat(points["T1"]["ts"]) == t + timedelta(minutes=5)
    assert points["H1"]["value"] == 45.0
    assert datetime.fromisoformat(points["H1"]["ts"]) == t + timedelta(minutes=1)
    assert rooms[1]["points"] == []
    assert [p["point_code"] for p in rooms[2]["points"]] == ["W1"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"platform_code": GZ}, ["R1", "R2"]),
        ({"region_code": "440300"}, ["S1"]),
        ({"region_code": "44"}, ["R1", "R2", "S1"]),
        ({"region_code": "110000"}, []),
        ({"limit": "1"}, ["R1", "R2", "S1"]),
    ],
)
async def test_room_filters_and_pages(hub: Hub, params: dict[str, str], expected: list[str]) -> None:
    await rooms_world(hub)
    assert [r["room_code"] for r in await collect(hub, "/api/v1/rooms", **params)] == expected


async def test_room_scope_totals_and_cursors(hub: Hub) -> None:
    await rooms_world(hub)
    first = data_of(await hub.get("/api/v1/rooms", limit=1, with_total="true"))
    assert first["total"] == 3 and [r["room_code"] for r in first["items"]] == ["R1"]
    assert_error(
        await hub.get("/api/v1/rooms", limit=1, cursor=first["next_cursor"], platform_code=GZ), 400, "1001"
    )

    regulator = await hub.create_client("regulator", regions=["440300"])
    assert [r["room_code"] for r in await collect(hub, "/api/v1/rooms", regulator)] == ["S1"]
    assert_error(await hub.get("/api/v1/rooms", regulator, platform_code=GZ), 403, "2006")
    assert_error(await hub.get("/api/v1/rooms", regulator, region_code="4401"), 403, "2006")
    outsider = await hub.create_client("regulator", regions=["110000"])
    assert await collect(hub, "/api/v1/rooms", outsider) == []

    no_kind = await hub.create_client("integrator", platforms=[GZ], kinds=["assets"])
    assert_error(await hub.get("/api/v1/rooms", no_kind), 403, "2006")
    granted = await hub.create_client("integrator", platforms=[GZ], kinds=["environment"])
    assert [r["room_code"] for r in await collect(hub, "/api/v1/rooms", granted)] == ["R1", "R2"]


# --- alarms -----------------------------------------------------------------------------------


async def alarms_world(hub: Hub) -> datetime:
    """GZ: A1 (1, active, -3 h, vm-1), A2 (3, cleared, -2 h), A3 (4, active, -1 h); SZ: B1 (2, -90 min)."""
    await three_platforms(hub)
    t = now_utc()
    gz = [
        alarm("A1", 1, "active", t - timedelta(hours=3), asset_id="vm-1"),
        alarm("A2", 3, "cleared", t - timedelta(hours=2), cleared_at=rfc3339(t - timedelta(minutes=100))),
        alarm("A3", 4, "active", t - timedelta(hours=1), room_code="R1"),
    ]
    await push_ok(hub, "alarms", batch(GZ, "a-1", gz))
    await push_ok(hub, "alarms", batch(SZ, "a-1", [alarm("B1", 2, "active", t - timedelta(minutes=90))]))
    return t


def alarm_ids(items: list[dict[str, Any]]) -> list[str]:
    return [i["alarm_id"] for i in items]


async def test_alarms_newest_first_with_their_fields(hub: Hub) -> None:
    t = await alarms_world(hub)
    items = await collect(hub, "/api/v1/alarms")
    assert alarm_ids(items) == ["A3", "B1", "A2", "A1"]
    a1 = items[-1]
    assert (a1["platform_code"], a1["level"], a1["status"], a1["title"]) == (GZ, 1, "active", "告警 A1")
    assert datetime.fromisoformat(a1["first_at"]) == t - timedelta(hours=3)
    assert (a1["asset_id"], a1["asset_uid"], a1["asset_known"]) == ("vm-1", uid(GZ, "vm-1"), False)
    assert {"message", "room_code", "last_at", "cleared_at", "created_at", "updated_at"} <= set(a1)
    assert (items[0]["asset_uid"], items[0]["asset_known"], items[0]["room_code"]) == (None, False, "R1")


async def test_alarms_with_the_same_first_at_are_ordered_by_platform_then_id_descending(hub: Hub) -> None:
    await three_platforms(hub)
    t = ago(hours=1)
    await push_ok(hub, "alarms", batch(GZ, "a-1", [alarm("X1", 2, "active", t), alarm("X2", 2, "active", t)]))
    await push_ok(hub, "alarms", batch(SZ, "a-1", [alarm("X1", 2, "active", t)]))
    items = await collect(hub, "/api/v1/alarms", limit=1)
    assert [(i["platform_code"], i["alarm_id"]) for i in items] == [(SZ, "X1"), (GZ, "X2"), (GZ, "X1")]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "active"}, ["A3", "B1", "A1"]),
        ({"status": "cleared"}, ["A2"]),
        ({"status": "active,cleared"}, ["A3", "B1", "A2", "A1"]),
        ({"level_max": "1"}, ["A1"]),
        ({"level_max": "3"}, ["B1", "A2", "A1"]),
        ({"platform_code": SZ}, ["B1"]),
        ({"region_code": "4401"}, ["A3", "A2", "A1"]),
        ({"status": "active", "level_max": "2", "platform_code": GZ}, ["A1"]),
        ({"limit": "1"}, ["A3", "B1", "A2", "A1"]),
    ],
)
async def test_each_alarm_filter_narrows_the_list(
    hub: Hub, params: dict[str, str], expected: list[str]
) -> None:
    await alarms_world(hub)
    assert alarm_ids(await collect(hub, "/api/v1/alarms", **params)) == expected


async def test_alarm_time_range_is_half_open_on_first_at_and_echoed_in_the_reporting_zone(hub: Hub) -> None:
    t = await alarms_world(hub)
    start, end = t - timedelta(hours=2), t - timedelta(hours=1)  # A2 exactly at from, A3 exactly at to
    page = data_of(await hub.get("/api/v1/alarms", **{"from": rfc3339(start, 0), "to": rfc3339(end, 0)}))
    assert alarm_ids(page["items"]) == ["B1", "A2"]
    assert page["from"] == rfc3339(start, 8) and page["to"] == rfc3339(end, 8)
    assert page["from"].endswith("+08:00")
    unbounded = data_of(await hub.get("/api/v1/alarms"))
    assert (unbounded["from"], unbounded["to"]) == (None, None)
    only_from = await collect(hub, "/api/v1/alarms", **{"from": rfc3339(t - timedelta(minutes=90))})
    assert alarm_ids(only_from) == ["A3", "B1"]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "open"},
        {"status": "active,bogus"},
        {"level_max": "0"},
        {"level_max": "5"},
        {"level_max": "one"},
        {"from": "2026-11-21T08:00:00"},
        {"to": "yesterday"},
        {"from": "2026-11-21T08:00:00+08:00", "to": "2026-11-21T08:00:00+08:00"},
        {"region_code": "4"},
        {"limit": "0"},
        {"limit": "1001"},
    ],
)
async def test_bad_alarm_parameters_are_400_1001(hub: Hub, params: dict[str, str]) -> None:
    await alarms_world(hub)
    assert_error(await hub.get("/api/v1/alarms", **params), 400, "1001")


async def test_alarm_totals_cursors_and_scope(hub: Hub) -> None:
    await alarms_world(hub)
    first = data_of(await hub.get("/api/v1/alarms", limit=2, with_total="true", status="active"))
    assert first["total"] == 3 and alarm_ids(first["items"]) == ["A3", "B1"]
    rest = data_of(await hub.get("/api/v1/alarms", limit=2, status="active", cursor=first["next_cursor"]))
    assert alarm_ids(rest["items"]) == ["A1"] and rest["next_cursor"] is None
    assert_error(await hub.get("/api/v1/alarms", limit=2, cursor=first["next_cursor"]), 400, "1001")

    regulator = await hub.create_client("regulator", regions=["440300"])
    assert alarm_ids(await collect(hub, "/api/v1/alarms", regulator)) == ["B1"]
    assert_error(await hub.get("/api/v1/alarms", regulator, platform_code=GZ), 403, "2006")
    outsider = await hub.create_client("regulator", regions=["110000"])
    assert await collect(hub, "/api/v1/alarms", outsider) == []
    assert_error(await hub.get("/api/v1/alarms", outsider, region_code="44"), 403, "2006")
    no_kind = await hub.create_client("integrator", platforms=[GZ], kinds=["logs"])
    assert_error(await hub.get("/api/v1/alarms", no_kind), 403, "2006")
    granted = await hub.create_client("integrator", platforms=[GZ], kinds=["alarms"])
    assert alarm_ids(await collect(hub, "/api/v1/alarms", granted)) == ["A3", "A2", "A1"]


async def test_alarm_asset_known_flips_once_the_asset_arrives(hub: Hub) -> None:
    await alarms_world(hub)
    before = {i["alarm_id"]: i for i in await collect(hub, "/api/v1/alarms", platform_code=GZ)}
    assert before["A1"]["asset_known"] is False
    await push_ok(hub, "assets", batch(GZ, "as-1", [vm("vm-1")]))
    await push_ok(hub, "assets", batch(SZ, "as-1", [vm("vm-1")]))
    after = {i["alarm_id"]: i for i in await collect(hub, "/api/v1/alarms")}
    assert after["A1"]["asset_known"] is True and after["A1"]["asset_uid"] == uid(GZ, "vm-1")
    assert after["B1"]["asset_known"] is False  # no asset named: nothing to know


# --- logs -------------------------------------------------------------------------------------


async def logs_world(hub: Hub) -> datetime:
    await three_platforms(hub)
    t = now_utc()
    gz = [
        log("L1", t - timedelta(hours=5)),
        log(
            "L2",
            t - timedelta(hours=4),
            category="security",
            type="waf_block",
            severity=2,
            outcome="failure",
            actor="bob",
            message="WAF 拦截 CPU 100% attack",
            asset_id="vm-1",
        ),
        log("L3", t - timedelta(hours=3), category="system", severity=4, actor=None, message="CPU 1000 busy"),
        log("L4", t - timedelta(hours=2), category="audit", outcome="unknown", actor="carol"),
        log("OLD", t - timedelta(days=2), message="两天前的日志"),
    ]
    await push_ok(hub, "logs", batch(GZ, "l-1", gz))
    await push_ok(hub, "logs", batch(SZ, "l-1", [log("S1", t - timedelta(hours=1), severity=3)]))
    return t


def log_ids(items: list[dict[str, Any]]) -> list[str]:
    return [i["log_id"] for i in items]


async def test_logs_default_to_the_last_24_hours_newest_first(hub: Hub) -> None:
    t = await logs_world(hub)
    page = data_of(await hub.get("/api/v1/logs"))
    assert log_ids(page["items"]) == ["S1", "L4", "L3", "L2", "L1"]
    start, end = datetime.fromisoformat(page["from"]), datetime.fromisoformat(page["to"])
    assert page["from"].endswith("+08:00") and page["to"].endswith("+08:00")
    assert end - start == timedelta(hours=24) and end >= t
    # the two-day-old log is there when the window says so
    old = await collect(hub, "/api/v1/logs", **{"from": rfc3339(t - timedelta(days=3))})
    assert log_ids(old) == ["S1", "L4", "L3", "L2", "L1", "OLD"]
    window = {"from": rfc3339(t - timedelta(days=3)), "to": rfc3339(t - timedelta(days=1))}
    assert log_ids(await collect(hub, "/api/v1/logs", **window)) == ["OLD"]
    only_to = data_of(await hub.get("/api/v1/logs", to=rfc3339(t - timedelta(hours=3))))
    assert log_ids(only_to["items"]) == ["L2", "L1"]
    assert only_to["from"] == rfc3339(t - timedelta(hours=27))


async def test_log_items_carry_the_record_the_chain_and_the_asset(hub: Hub) -> None:
    await logs_world(hub)
    items = {i["log_id"]: i for i in await collect(hub, "/api/v1/logs", platform_code=GZ)}
    l2 = items["L2"]
    assert (l2["platform_code"], l2["category"], l2["type"], l2["severity"], l2["outcome"]) == (
        GZ,
        "security",
        "waf_block",
        2,
        "failure",
    )
    assert (l2["actor"], l2["action"], l2["message"]) == ("bob", "login", "WAF 拦截 CPU 100% attack")
    assert isinstance(l2["seq"], int) and len(l2["hash"]) == 64
    assert {"event_time", "actor_type", "source_ip", "object_type", "object_id", "raw"} <= set(l2)
    assert (l2["asset_id"], l2["asset_uid"], l2["asset_known"]) == ("vm-1", uid(GZ, "vm-1"), False)
    assert items["L1"]["asset_uid"] is None
    await push_ok(hub, "assets", batch(GZ, "as-1", [vm("vm-1")]))
    again = {i["log_id"]: i for i in await collect(hub, "/api/v1/logs", platform_code=GZ)}
    assert again["L2"]["asset_known"] is True


async def test_logs_at_the_same_time_are_ordered_by_platform_then_seq_descending(hub: Hub) -> None:
    await three_platforms(hub)
    t = ago(minutes=30)
    await push_ok(hub, "logs", batch(GZ, "l-1", [log("G1", t), log("G2", t)]))
    await push_ok(hub, "logs", batch(SZ, "l-1", [log("S1", t)]))
    items = await collect(hub, "/api/v1/logs", limit=1)
    assert [i["platform_code"] for i in items] == [SZ, GZ, GZ]
    assert items[1]["seq"] > items[2]["seq"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"platform_code": SZ}, ["S1"]),
        ({"region_code": "440100"}, ["L4", "L3", "L2", "L1"]),
        ({"category": "security"}, ["L2"]),
        ({"category": "audit,system"}, ["L4", "L3"]),
        ({"type": "waf_block"}, ["L2"]),
        ({"severity_max": "3"}, ["S1", "L2"]),
        ({"severity_max": "0"}, []),
        ({"outcome": "failure,unknown"}, ["L4", "L2"]),
        ({"actor": "carol"}, ["L4"]),
        ({"q": "cpu 100%"}, ["L2"]),
        ({"q": "登录"}, ["S1", "L4", "L1"]),
        ({"limit": "2"}, ["S1", "L4", "L3", "L2", "L1"]),
    ],
)
async def test_each_log_filter_narrows_the_list(
    hub: Hub, params: dict[str, str], expected: list[str]
) -> None:
    await logs_world(hub)
    assert log_ids(await collect(hub, "/api/v1/logs", **params)) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"category": "debug"},
        {"outcome": "success,maybe"},
        {"severity_max": "8"},
        {"severity_max": "-1"},
        {"from": "2026-11-21 08:00:00"},
        {"to": "2026-11-21T08:00:00"},
        {"from": "2026-11-22T00:00:00Z", "to": "2026-11-21T00:00:00Z"},
        {"region_code": "44010x"},
        {"cursor": "not-a-cursor"},
    ],
)
async def test_bad_log_parameters_are_400_1001(hub: Hub, params: dict[str, str]) -> None:
    await logs_world(hub)
    assert_error(await hub.get("/api/v1/logs", **params), 400, "1001")


async def test_a_log_cursor_keeps_its_resolved_window_and_its_filters(hub: Hub) -> None:
    t = await logs_world(hub)
    first = data_of(await hub.get("/api/v1/logs", limit=2, with_total="true"))
    assert first["total"] == 5 and log_ids(first["items"]) == ["S1", "L4"]
    await asyncio.sleep(0.05)  # "now" moves on; the cursor's window does not
    second = data_of(await hub.get("/api/v1/logs", limit=2, cursor=first["next_cursor"]))
    assert (second["from"], second["to"]) == (first["from"], first["to"])
    assert log_ids(second["items"]) == ["L3", "L2"]
    # the same explicit window may be repeated with the cursor; another window or filter may not
    explicit = {"from": rfc3339(t - timedelta(days=3)), "to": rfc3339(t)}
    page = data_of(await hub.get("/api/v1/logs", limit=3, **explicit))
    repeated = data_of(await hub.get("/api/v1/logs", limit=3, cursor=page["next_cursor"], **explicit))
    assert log_ids(page["items"]) + log_ids(repeated["items"]) == ["S1", "L4", "L3", "L2", "L1", "OLD"]
    for other in ({"category": "security"}, {"from": rfc3339(t - timedelta(days=2))}, {"platform_code": GZ}):
        assert_error(
            await hub.get("/api/v1/logs", limit=2, cursor=first["next_cursor"], **other), 400, "1001"
        )
    assert_error(await hub.get("/api/v1/alarms", cursor=first["next_cursor"]), 400, "1001")


async def test_log_scope(hub: Hub) -> None:
    await logs_world(hub)
    regulator = await hub.create_client("regulator", regions=["440300"])
    assert log_ids(await collect(hub, "/api/v1/logs", regulator)) == ["S1"]
    assert_error(await hub.get("/api/v1/logs", regulator, platform_code=GZ), 403, "2006")
    outsider = await hub.create_client("regulator", regions=["110000"])
    assert await collect(hub, "/api/v1/logs", outsider) == []
    assert_error(await hub.get("/api/v1/logs", outsider, region_code="440100"), 403, "2006")
    no_kind = await hub.create_client("integrator", platforms=[GZ], kinds=["alarms"])
    assert_error(await hub.get("/api/v1/logs", no_kind), 403, "2006")
    granted = await hub.create_client("integrator", regions=["4401"], kinds=["logs"])
    assert log_ids(await collect(hub, "/api/v1/logs", granted)) == ["L4", "L3", "L2", "L1"]


# --- no N+1 -----------------------------------------------------------------------------------


async def test_every_list_runs_the_same_few_statements_for_any_page_size(
    hub: Hub, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # reads' audit events wait for an explicit flush, and no random sweep of idle rate buckets runs,
    # so only the statements of the request itself are counted
    app.state.audit_writer.max_delay_s = 3600
    monkeypatch.setattr(ratelimit, "_SWEEP_PROBABILITY", 0.0)
    n = 120
    await hub.create_platform(GZ, "440100")
    for i in range(n):
        await hub.create_platform(f"P-{i:03d}", "440300", expected_intervals={"logs": 60})
    t = ago(hours=1)
    await push_ok(hub, "metrics", batch(GZ, "m-1", [{"metric": "cpu.util", "ts": rfc3339(t), "value": 1.0}]))
    await push_ok(hub, "rooms", batch(GZ, "r-1", [room(f"R{i:03d}") for i in range(n)]))
    samples = [sample(f"R{i:03d}", p, "cold_aisle_temp", t, 23.0) for i in range(n) for p in ("T1", "T2")]
    await push_ok(hub, "environment", batch(GZ, "e-1", samples))
    await push_ok(hub, "assets", batch(GZ, "as-1", [vm("vm-1")]))
    alarms = [
        alarm(f"A{i:03d}", 2, "active", t + timedelta(seconds=i), asset_id=f"vm-{i % 3}") for i in range(n)
    ]
    await push_ok(hub, "alarms", batch(GZ, "a-1", alarms))
    logs = [log(f"L{i:03d}", t + timedelta(seconds=i), asset_id=f"vm-{i % 3}") for i in range(n)]
    await push_ok(hub, "logs", batch(GZ, "l-1", logs))

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    async def statements_for(path: str, limit: int) -> list[str]:
        await app.state.audit_writer.flush()
        statements.clear()
        event.listen(app.state.engine.sync_engine, "before_cursor_execute", count)
        try:
            page = data_of(await hub.get(path, limit=limit, with_total="true"))
        finally:
            event.remove(app.state.engine.sync_engine, "before_cursor_execute", count)
        assert len(page["items"]) == limit and page["next_cursor"]
        if path == "/api/v1/rooms":
            assert all(len(r["points"]) == 2 for r in page["items"])
        return list(statements)

    for path in ("/api/v1/platforms", "/api/v1/rooms", "/api/v1/alarms", "/api/v1/logs"):
        small, large = await statements_for(path, 5), await statements_for(path, 100)
        assert len(small) == len(large), (path, small, large)
        # authentication, two rate-limit buckets, the count, the page and at most one more query
        # (SQLite adds a BEGIN per transaction)
        assert len([s for s in large if s.strip().upper() != "BEGIN"]) <= 7, (path, large)
