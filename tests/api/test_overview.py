"""监管总览 (§5 ``/overview``): one call with what a regional dashboard shows, in the caller's scope."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from app.services.warnings import evaluate_warnings
from tests.helpers import Hub, batch, now_utc, rfc3339, vm

GZ1, GZ2, SZ, OLD = "GD-GZ-OV-01", "GD-GZ-OV-02", "GD-SZ-OV-01", "GD-GZ-OV-OLD"
INDICATORS = {
    "availability",
    "domestic_rate",
    "storage_bandwidth",
    "pue",
    "env_compliance",
    "utilisation",
    "freshness",
}


def data_of(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == "0"
    return body["data"]


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert (response.status_code, response.json()["code"]) == (status, code), response.text


async def push(hub: Hub, kind: str, platform: str, records: list[dict[str, Any]]) -> None:
    response = await hub.push(kind, batch(platform, f"{kind}-{platform}-{len(records)}", records))
    assert response.status_code == 200 and response.json()["data"]["rejected"] == 0, response.text


def server(asset_id: str, arch: str, vendor: str) -> dict[str, Any]:
    return {
        "asset_id": asset_id,
        "asset_type": "server",
        "name": f"服务器 {asset_id}",
        "status": "running",
        "cpu_arch": arch,
        "cpu_vendor": vendor,
        "cpu_cores": 64,
    }


def alarm(alarm_id: str, level: int, status: str) -> dict[str, Any]:
    first = now_utc() - timedelta(minutes=5)
    extra = {"cleared_at": rfc3339(now_utc())} if status == "cleared" else {}
    return {
        "alarm_id": alarm_id,
        "level": level,
        "status": status,
        "title": f"告警 {alarm_id}",
        "first_at": rfc3339(first),
        **extra,
    }


async def world(hub: Hub, app: FastAPI) -> None:
    await hub.create_platform(GZ1, "440106")
    await hub.create_platform(GZ2, "440111", expected_intervals={"alarms": 1})
    await hub.create_platform(SZ, "440300")
    await hub.create_platform(OLD, "440104")
    await push(
        hub,
        "assets",
        GZ1,
        [
            server("s-1", "x86_64", "Intel"),
            vm("v-1", cpu_arch="aarch64"),
            vm("v-old", cpu_arch="x86_64", lifecycle="retired"),
        ],
    )
    await push(hub, "assets", GZ2, [server("s-2", "loongarch64", "龙芯 Loongson"), vm("v-2")])
    await push(hub, "assets", SZ, [vm("v-3", cpu_arch="x86_64")])
    await push(hub, "assets", OLD, [server("s-9", "x86_64", "Intel")])
    await push(
        hub, "alarms", GZ1, [alarm("a-1", 1, "active"), alarm("a-2", 3, "active"), alarm("a-3", 2, "cleared")]
    )
    await push(hub, "alarms", GZ2, [alarm("a-4", 4, "cleared")])
    await push(hub, "alarms", SZ, [alarm("a-5", 2, "active")])
    await push(hub, "alarms", OLD, [alarm("a-6", 1, "active")])
    response = await hub.http.patch(
        f"/api/v1/admin/platforms/{OLD}", json={"status": "decommissioned"}, headers=hub.auth(hub.admin)
    )
    assert response.status_code == 200, response.text
    # a water leak in GZ2 raises a warning (level 1) at once
    room = {
        "room_code": "R1",
        "name": "机房",
        "datacenter_code": "DC1",
        "datacenter_name": "数据中心",
        "region_code": "440111",
        "gb50174_class": "A",
        "aisle_containment": True,
    }
    await push(hub, "rooms", GZ2, [room])
    leak = {
        "room_code": "R1",
        "point_code": "WL-1",
        "point_type": "water_leak",
        "ts": rfc3339(now_utc()),
        "value": 1.0,
    }
    await push(hub, "environment", GZ2, [leak])
    rule = {
        "rule_code": "leak",
        "name_zh": "漏水",
        "subject": "point_type",
        "target": "water_leak",
        "condition": {"state_in": ["critical"]},
        "level": 1,
        "hold_s": 0,
        "clear_s": 600,
    }
    existing = await hub.items("/api/v1/admin/warning-rules")
    fields = ("rule_code", "name_zh", "subject", "target", "condition", "level", "hold_s", "clear_s")
    others = [{k: r[k] for k in fields} | {"enabled": False} for r in existing if r["rule_code"] != "leak"]
    response = await hub.http.put(
        "/api/v1/admin/warning-rules", json={"rules": [rule, *others]}, headers=hub.auth(hub.admin)
    )
    assert response.status_code == 200, response.text
    report = await evaluate_warnings(app.state.sessionmaker, now=now_utc() + timedelta(seconds=1))
    assert len(report["opened"]) == 1, report


async def test_a_region_at_a_glance(hub: Hub, app: FastAPI) -> None:
    await world(hub, app)
    await asyncio.sleep(2.1)  # GZ2's alarms (expected every second) are stale after 2 s

    data = data_of(await hub.get("/api/v1/overview", region_code="440100"))
    assert data["region_code"] == "4401"
    assert data["period"] and data["from"] < data["to"]
    # active platforms of the region, each with every indicator's status this month
    assert [p["platform_code"] for p in data["platforms"]] == [GZ1, GZ2]
    gz1, gz2 = data["platforms"]
    assert (gz1["name"], gz1["region_code"]) == (f"平台 {GZ1}", "440106")
    assert set(gz1["statuses"]) == INDICATORS
    assert set(gz1["statuses"].values()) <= {"pass", "caution", "fail", "no_data"}
    assert gz1["stale_kinds"] == []
    assert gz2["stale_kinds"] == ["alarms"]
    # non-retired assets of those platforms, by type and architecture
    assert data["assets"] == {
        "total": 4,
        "by_type": {"server": 2, "vm": 2},
        "by_arch": {"aarch64": 1, "loongarch64": 1, "x86_64": 1},
    }
    # the region's pooled domestic rate: one server of two has a domestic CPU
    domestic = data["domestic_rate"]
    assert domestic["code"] == "domestic_rate"
    assert (domestic["numerator"], domestic["denominator"]) == (1, 2)
    assert domestic["value"] == 50.0
    assert data["alarms_active"] == {"total": 2, "by_level": {"1": 1, "2": 0, "3": 1, "4": 0}}
    assert data["warnings_active"] == {"total": 1, "by_level": {"1": 1, "2": 0, "3": 0, "4": 0}}
    [stale] = data["stale_feeds"]
    assert (stale["platform_code"], stale["kind"]) == (GZ2, "alarms")
    assert stale["age_s"] >= 2 and stale["newest_at"]

    # without a region: the whole scope (the admin: every active platform)
    everything = data_of(await hub.get("/api/v1/overview"))
    assert everything["region_code"] is None
    assert [p["platform_code"] for p in everything["platforms"]] == [GZ1, GZ2, SZ]
    assert everything["assets"]["total"] == 5
    assert everything["alarms_active"]["by_level"] == {"1": 1, "2": 1, "3": 1, "4": 0}
    assert_error(await hub.get("/api/v1/overview", region_code="4401001"), 400, "1001")


async def test_the_overview_is_scoped(hub: Hub, app: FastAPI) -> None:
    await world(hub, app)
    shenzhen = await hub.create_client("regulator", regions=["440300"])
    data = data_of(await hub.get("/api/v1/overview", shenzhen))
    assert [p["platform_code"] for p in data["platforms"]] == [SZ]
    assert data["assets"]["total"] == 1 and data["alarms_active"]["total"] == 1
    assert data["warnings_active"]["total"] == 0
    assert_error(await hub.get("/api/v1/overview", shenzhen, region_code="440100"), 403, "2006")

    reader = await hub.create_client("integrator", platforms=[GZ1], kinds=["indicators"])
    data = data_of(await hub.get("/api/v1/overview", reader))
    assert [p["platform_code"] for p in data["platforms"]] == [GZ1]
    narrowed = data_of(await hub.get("/api/v1/overview", reader, region_code="440100"))
    assert [p["platform_code"] for p in narrowed["platforms"]] == [GZ1]
    assert narrowed["warnings_active"]["total"] == 0  # GZ2's warning is not GZ1's
    no_kind = await hub.create_client("integrator", platforms=[GZ1], kinds=["assets", "alarms"])
    assert_error(await hub.get("/api/v1/overview", no_kind), 403, "2006")

    nowhere = await hub.create_client("regulator", regions=["110000"])
    empty = data_of(await hub.get("/api/v1/overview", nowhere))
    assert empty["platforms"] == [] and empty["stale_feeds"] == [] and empty["domestic_rate"] is None
    assert empty["assets"] == {"total": 0, "by_type": {}, "by_arch": {}}
    assert empty["alarms_active"] == {"total": 0, "by_level": {"1": 0, "2": 0, "3": 0, "4": 0}}
