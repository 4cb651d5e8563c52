"""The catalogue (§5, §6): what an integrator needs to read the hub's codes."""

from __future__ import annotations

import uuid
from typing import get_args

from app.schemas.enums import AssetType, CpuArch, PointType
from tests.helpers import Hub


async def test_the_catalogue_lists_every_code_with_its_label_unit_and_threshold(hub: Hub) -> None:
    integrator_platform = await hub.create_platform("GD-GZ-01")
    integrator = await hub.create_client(
        "integrator", platforms=[integrator_platform["platform_code"]], kinds=["logs"]
    )
    answer = await hub.get("/api/v1/catalog", integrator)  # open to every authenticated client
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    enums = {name: {e["code"]: e["label_zh"] for e in items} for name, items in data["enumerations"].items()}
    assert set(enums["asset_type"]) == set(get_args(AssetType)) and enums["asset_type"]["vm"] == "云主机"
    assert set(enums["cpu_arch"]) == set(get_args(CpuArch))
    assert enums["log_category"]["operation"] == "操作日志"
    metrics = {m["code"]: m for m in data["metrics"]}
    assert metrics["cpu.util"]["unit"] == "%" and metrics["net.rx.bits_per_s"]["unit"] == "bit/s"
    assert metrics["storage.bw.tested_gbps"]["unit"] == "Gbit/s" and len(metrics) == 24
    points = {p["point_type"]: p for p in data["point_types"]}
    assert set(points) == set(get_args(PointType))
    cold = points["cold_aisle_temp"]
    assert cold["unit"] == "℃" and "GB 50174" in cold["source"]
    assert cold["thresholds"] == {
        "lower_critical": 18,
        "lower_caution": 19,
        "upper_caution": 26,
        "upper_critical": 27,
        "dwell_s": 300,
    }
    assert points["water_leak"]["thresholds"]["dwell_s"] == 0
    assert points["mains_voltage"]["thresholds"]["dwell_s"] == 60
    assert "海光 Hygon" in [e["entry"] for e in data["domestic_lists"]["cpu_vendor"]]
    namespace = uuid.UUID(data["asset_uid"]["namespace"])
    assert uuid.uuid5(namespace, "GD-GZ-01|vm-1") == uuid.uuid5(
        uuid.UUID("014f5156-d3bb-4a1f-b52d-ec5938c65eae"), "GD-GZ-01|vm-1"
    )
    assert (await hub.http.get("/api/v1/catalog")).json()["code"] == "2001"
