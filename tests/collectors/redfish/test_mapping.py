"""Redfish → §4 mapping on plain dictionaries: CPU architecture from enums and vendor strings,
identities, status, and which sensor reading belongs to which server."""

from __future__ import annotations

from typing import Any

import pytest

from app.collectors.redfish.mapping import (
    ChassisData,
    SystemData,
    arch_from_strings,
    chassis_readings,
    infer_cpu_arch,
    server_status,
    server_telemetry,
    system_asset_id,
    usable_serial,
)


@pytest.mark.parametrize(
    ("instruction_set", "architecture", "strings", "expected"),
    [
        # 龙芯 Loongson: LoongArch from the 3A5000 / 3C5000 generation, MIPS64 before
        ("OEM", "OEM", ["Loongson Technology Corporation Limited", "Loongson-3C5000L"], "loongarch64"),
        (None, None, ["龙芯中科", "3A6000"], "loongarch64"),
        ("MIPS64", "MIPS", ["Loongson", "Loongson-3C5000"], "loongarch64"),  # the BMC's enum is wrong
        (None, "MIPS", ["Loongson", "Loongson-3A4000"], "mips64el"),
        ("OEM", None, ["Loongson", "3B4000"], "mips64el"),
        ("MIPS64", "MIPS", ["Loongson"], "mips64el"),  # no model number: the enum decides
        ("OEM", "OEM", ["Loongson"], "loongarch64"),  # nothing else: what is sold today
        (None, None, ["LoongArch64 processor"], "loongarch64"),
        # 申威 Sunway
        ("OEM", "OEM", ["Sunway", "SW3231"], "sw_64"),
        (None, None, ["申威"], "sw_64"),
        (None, "OEM", ["CHINA", "SW831"], "sw_64"),
        (None, None, ["Shenwei", None], "sw_64"),
        ("OEM", None, ["sw_64"], "sw_64"),
        # 飞腾 Phytium, 鲲鹏 Kunpeng / HiSilicon: ARM
        ("OEM", "OEM", ["Phytium", "FT-2000+/64"], "aarch64"),
        (None, None, ["Phytium Technology", "S2500"], "aarch64"),
        (None, None, ["飞腾", "D2000"], "aarch64"),
        ("ARM-A64", "ARM", ["HiSilicon", "Kunpeng 920"], "aarch64"),
        (None, None, ["HUAWEI", "Kunpeng 920 5250"], "aarch64"),
        (None, "OEM", ["HiSilicon", "Hi1620"], "aarch64"),
        (None, None, ["Ampere(R)", "Ampere(R) Altra(R) Processor"], "aarch64"),
        # 海光 Hygon, 兆芯 Zhaoxin, Intel, AMD: x86-64
        ("x86-64", "x86", ["Hygon", "Hygon C86 7285 32-core Processor"], "x86_64"),
        (None, None, ["HygonGenuine"], "x86_64"),
        (None, "OEM", ["Zhaoxin", "ZHAOXIN KaiSheng KH-40000@2.2GHz"], "x86_64"),
        (None, None, ["兆芯", "开先 KX-U6780A"], "x86_64"),
        (None, None, ["  Shanghai  "], "x86_64"),  # Zhaoxin's CPUID vendor string
        ("x86", "x86", ["Intel(R) Corporation", "Intel(R) Xeon(R) Gold 6348"], "x86_64"),
        (None, None, ["AuthenticAMD", "AMD EPYC 7763 64-Core Processor"], "x86_64"),
        (None, None, ["Advanced Micro Devices, Inc."], "x86_64"),
        # the enums decide when they say something
        ("PowerISA", "Power", ["IBM", "POWER9"], "ppc64le"),
        ("RV64", None, [], "riscv64"),
        ("IA-64", "IA-64", ["Intel(R) Corporation", "Itanium"], "other"),
        (None, "x86", [], "x86_64"),
        (None, "ARM", ["Contoso"], "aarch64"),
        # nothing to go by
        ("OEM", "OEM", ["Contoso", "Model 7"], None),
        (None, None, [], None),
    ],
)
def test_cpu_architecture(
    instruction_set: str | None, architecture: str | None, strings: list[str | None], expected: str | None
) -> None:
    assert infer_cpu_arch(instruction_set, architecture, strings) == expected


@pytest.mark.parametrize(
    "strings",
    [
        ["Smart Array P408i-a SR Gen10"],
        ["Switch SW-Fabric"],
        ["ARMOR storage"],
        ["Broadcom", "BCM57414"],
        ["Sweden Co."],
    ],
)
def test_strings_that_name_no_cpu_give_no_architecture(strings: list[str | None]) -> None:
    assert arch_from_strings(strings) is None


def test_the_asset_id_is_the_serial_else_the_uuid_else_bmc_and_id() -> None:
    url = "http://bmc/redfish/v1/Systems/1"
    assert system_asset_id({"SerialNumber": " ABC123 ", "UUID": "U"}, url, "10.0.0.5") == "ABC123"
    placeholder = {"SerialNumber": "To Be Filled By O.E.M.", "UUID": "4C4C4544-0053-3310-8031-B2C04F4E3232"}
    assert system_asset_id(placeholder, url, "10.0.0.5") == "4c4c4544-0053-3310-8031-b2c04f4e3232"
    nothing = {"SerialNumber": "0000000", "UUID": "00000000-0000-0000-0000-000000000000", "Id": "1"}
    assert system_asset_id(nothing, url, "10.0.0.5") == "10.0.0.5:1"
    assert system_asset_id({}, "http://bmc/redfish/v1/Systems/System.Embedded.1", "bmc") == (
        "bmc:System.Embedded.1"
    )
    assert len(system_asset_id({"SerialNumber": "S" * 300}, url, "h")) == 128
    assert usable_serial("Default string") is None and usable_serial("N/A") is None


@pytest.mark.parametrize(
    ("system", "chassis_state", "expected"),
    [
        ({"PowerState": "On"}, None, "running"),
        ({"PowerState": "Off"}, None, "stopped"),
        ({"PowerState": "PoweringOn"}, None, "stopped"),  # not on yet
        ({"PowerState": "PoweringOff"}, None, "running"),  # not off yet
        ({"PowerState": "Paused"}, None, "suspended"),
        ({}, "On", "running"),  # the chassis speaks when the system does not
        ({}, None, "unknown"),
        ({"PowerState": "On", "Status": {"Health": "Critical"}}, None, "error"),
    ],
)
def test_status_from_power_state_and_health(
    system: dict[str, Any], chassis_state: str | None, expected: str
) -> None:
    chassis = [ChassisData(url="/c", body={"PowerState": chassis_state} if chassis_state else {})]
    assert server_status(system, chassis) == expected


def _system(path: str) -> SystemData:
    return SystemData(url=f"http://bmc{path}", body={"Id": path.rsplit("/", 1)[-1]})


def test_readings_of_a_shared_chassis_go_to_the_systems_they_name() -> None:
    """Two blades in one enclosure: CPU sensors name their blade, the inlet is both blades' air,
    and the enclosure's power is neither blade's alone."""
    a, b = _system("/redfish/v1/Systems/A"), _system("/redfish/v1/Systems/B")
    enclosure = ChassisData(
        url="http://bmc/redfish/v1/Chassis/E",
        body={},
        systems=[a.path, b.path],
        thermal={
            "Temperatures": [
                {"Name": "Inlet", "ReadingCelsius": 21, "PhysicalContext": "Intake"},
                {
                    "Name": "CPU Temp",
                    "ReadingCelsius": 60,
                    "PhysicalContext": "CPU",
                    "RelatedItem": [{"@odata.id": "/redfish/v1/Systems/A/Processors/CPU0"}],
                },
                {"Name": "CPU Temp B", "ReadingCelsius": 55, "PhysicalContext": "CPU", "RelatedItem": []},
                {"Name": "Broken", "PhysicalContext": "CPU", "Status": {"State": "Enabled"}},
            ],
            "Fans": [
                {"Name": "Fan", "Reading": 3000, "ReadingUnits": "RPM"},
                {"Name": "Pct", "Reading": 40, "ReadingUnits": "Percent"},
                {"Name": "Gone", "Reading": 0, "ReadingUnits": "RPM", "Status": {"State": "Absent"}},
            ],
        },
        power={"PowerControl": [{"Name": "Enclosure", "PowerConsumedWatts": 900}]},
    )
    found = chassis_readings(enclosure)
    ta = server_telemetry(a, [(enclosure, found)]).values
    tb = server_telemetry(b, [(enclosure, found)]).values
    assert ta == {
        ("hw.temp.inlet", ()): 21.0,
        ("hw.temp.cpu", (("sensor", "CPU Temp"),)): 60.0,
        ("hw.temp.cpu", (("sensor", "CPU Temp B"),)): 55.0,
        ("hw.fan.rpm", (("sensor", "Fan"),)): 3000.0,
    }
    assert ("hw.temp.cpu", (("sensor", "CPU Temp"),)) not in tb  # A's CPU
    assert ("hw.power.watts", ()) not in ta and ("hw.power.watts", ()) not in tb

    # the same Power resource naming blade B: the reading is B's
    control = {
        "Name": "B",
        "PowerConsumedWatts": 450,
        "RelatedItem": [{"@odata.id": "/redfish/v1/Systems/B"}],
    }
    enclosure.power = {"PowerControl": [control]}
    found = chassis_readings(enclosure)
    assert server_telemetry(b, [(enclosure, found)]).values[("hw.power.watts", ())] == 450.0


def test_new_resources_win_and_the_deprecated_ones_fill_gaps() -> None:
    system = _system("/redfish/v1/Systems/1")
    chassis = ChassisData(
        url="http://bmc/redfish/v1/Chassis/1",
        body={},
        systems=[system.path],
        thermal_metrics={"TemperatureSummaryCelsius": {"Intake": {"Reading": 24.8}}},
        environment={"PowerWatts": {"Reading": 374}},
        thermal={
            "Temperatures": [{"Name": "Inlet", "ReadingCelsius": 25, "PhysicalContext": "Intake"}],
            "Fans": [{"FanName": "Fan1", "ReadingRPM": 5000}],  # ThermalSubsystem gave no fans
        },
        power={"PowerControl": [{"PowerConsumedWatts": 344}]},
    )
    found = chassis_readings(chassis)
    values = server_telemetry(system, [(chassis, found)]).values
    assert values == {
        ("hw.temp.inlet", ()): 24.8,
        ("hw.power.watts", ()): 374.0,
        ("hw.fan.rpm", (("sensor", "Fan1"),)): 5000.0,
    }


def test_power_supplies_add_up_when_nothing_else_gives_the_power() -> None:
    system = _system("/redfish/v1/Systems/1")
    chassis = ChassisData(
        url="http://bmc/redfish/v1/Chassis/1",
        body={},
        systems=[system.path],
        power_supply_metrics=[
            {"InputPowerWatts": {"Reading": 180.5}},
            {"InputPowerWatts": {"Reading": 170}},
            {"InputPowerWatts": {"Reading": None}},
        ],
    )
    values = server_telemetry(system, [(chassis, chassis_readings(chassis))]).values
    assert values == {("hw.power.watts", ()): 350.5}
