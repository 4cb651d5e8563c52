"""The asset list (§5): every filter, several codes per enum filter, totals, bad parameters."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Hub, batch, vm

GZ, SZ = "GD-GZ-01", "GD-SZ-01"


async def _world(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    await hub.create_platform(SZ, "440300", network_zone="internet")
    gz = [
        vm(
            "vm-1",
            cpu_arch="x86_64",
            cpu_vendor="Hygon",
            using_unit="省政务服务数据管理局",
            business_system="一网通办",
            ip_addresses=[{"ip": "10.1.0.5", "kind": "business"}],
        ),
        vm("vm-2", status="stopped", cpu_arch="x86_64", cpu_vendor="Intel"),
        {
            "asset_id": "srv-1",
            "asset_type": "server",
            "name": "鲲鹏服务器",
            "status": "running",
            "cpu_arch": "aarch64",
            "cpu_vendor": "HiSilicon Kunpeng",
            "manufacturer": "Huawei",
        },
        vm("vm-old", lifecycle="retired"),
    ]
    sz = [vm("vm-9", cpu_arch="loongarch64", business_system="一网通办")]
    assert (await hub.push("assets", batch(GZ, "gz", gz))).status_code == 200
    assert (await hub.push("assets", batch(SZ, "sz", sz))).status_code == 200


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [i["asset_id"] for i in items]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["srv-1", "vm-1", "vm-2", "vm-9"]),
        ({"platform_code": GZ}, ["srv-1", "vm-1", "vm-2"]),
        ({"region_code": "440300"}, ["vm-9"]),
        ({"region_code": "44"}, ["srv-1", "vm-1", "vm-2", "vm-9"]),
        ({"asset_type": "server"}, ["srv-1"]),
        ({"asset_type": "server,vm", "platform_code": GZ}, ["srv-1", "vm-1", "vm-2"]),
        ({"status": "stopped"}, ["vm-2"]),
        ({"cpu_arch": "aarch64,loongarch64"}, ["srv-1", "vm-9"]),
        ({"is_domestic": "true"}, ["srv-1", "vm-1", "vm-9"]),
        ({"is_domestic": "false"}, ["vm-2"]),
        ({"network_zone": "internet"}, ["vm-9"]),
        ({"using_unit": "省政务服务数据管理局"}, ["vm-1"]),
        ({"business_system": "一网通办"}, ["vm-1", "vm-9"]),
        ({"q": "10.1.0"}, ["vm-1"]),
        ({"q": "鲲鹏"}, ["srv-1"]),
        ({"lifecycle": "retired"}, ["vm-old"]),
        ({"include_retired": "true", "platform_code": GZ}, ["srv-1", "vm-1", "vm-2", "vm-old"]),
    ],
)
async def test_each_filter_narrows_the_list(hub: Hub, params: dict[str, str], expected: list[str]) -> None:
    await _world(hub)
    assert sorted(ids(await hub.assets(**params))) == expected


async def test_with_total_counts_every_page(hub: Hub) -> None:
    await _world(hub)
    page = (await hub.get("/api/v1/assets", limit=2, with_total="true")).json()["data"]
    assert page["total"] == 4 and len(page["items"]) == 2 and page["next_cursor"]
    assert "total" not in (await hub.get("/api/v1/assets", limit=2)).json()["data"]


@pytest.mark.parametrize(
    "params",
    [
        {"asset_type": "mainframe"},
        {"cpu_arch": "x86_64,vax"},
        {"region_code": "4401x"},
        {"region_code": "0"},
        {"is_domestic": "maybe"},
        {"limit": "0"},
    ],
)
async def test_bad_filters_are_400_1001(hub: Hub, params: dict[str, str]) -> None:
    await _world(hub)
    answer = await hub.get("/api/v1/assets", **params)
    assert (answer.status_code, answer.json()["code"]) == (400, "1001")


async def test_a_provider_may_narrow_to_its_own_region_but_not_another(hub: Hub) -> None:
    await _world(hub)
    provider = await hub.create_client("provider", platforms=[GZ])
    assert sorted(ids(await hub.assets(provider, region_code="4401"))) == ["srv-1", "vm-1", "vm-2"]
    refused = await hub.get("/api/v1/assets", provider, region_code="4403")
    assert (refused.status_code, refused.json()["code"]) == (403, "2006")
