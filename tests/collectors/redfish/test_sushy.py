"""The redfish source against real Redfish servers (sushy-tools), read back through the hub's API."""

from __future__ import annotations

from typing import Any

import pytest

from app.collectors.http import SourceHTTP
from app.collectors.redfish.client import RedfishClient
from app.config import Settings
from tests.collectors.redfish.conftest import (
    CHASSIS,
    EMULATOR_PASSWORD,
    EMULATOR_USER,
    FAKE_SYSTEMS,
    Server,
)
from tests.collectors.redfish.flow import (
    PLATFORM,
    ROOM,
    by_sensor,
    create_source,
    data,
    environment,
    latest,
    platform_with_room,
    run,
)
from tests.helpers import Hub

SERIAL = "437XR1138R2"  # the mockup's ComputerSystem
LOOPBACK = frozenset({"127.0.0.1"})


@pytest.fixture(scope="session")
def settings(settings: Settings) -> Settings:
    """The sushy servers listen on loopback, which §8 refuses unless the host is listed."""
    return settings.model_copy(update={"source_allowed_hosts": sorted(LOOPBACK)})


async def test_the_public_mockup_becomes_a_server_with_its_sensors_and_room_samples(
    hub: Hub, app: Any, sushy_static: Server
) -> None:
    await platform_with_room(hub)
    # sushy-static accepts the session POST but gives no token: the run falls back to Basic
    await create_source(hub, sushy_static.base_url, credentials={"username": "root", "password": "pw"})

    done = await run(hub, app)
    assert done["status"] == "success", done["error"]
    assert (done["mode"], done["pages"], done["records"]) == ("full", 3, 9)
    assert (done["accepted"], done["rejected"]) == (9, 0)

    [server] = await hub.assets(platform_code=PLATFORM)
    expected = {
        "asset_id": SERIAL,
        "asset_type": "server",
        "name": "web483",  # HostName wins over Name ("WebFrontEnd483")
        "status": "running",
        "manufacturer": "Contoso",
        "model": "3500",
        "serial_number": SERIAL,
        "asset_tag": "Chicago-45Z-2381",
        "cpu_arch": "x86_64",
        "cpu_vendor": "Intel(R) Corporation",
        "cpu_model": "Multi-Core Intel(R) Xeon(R) processor 7xxx Series",
        "cpu_cores": 8,
        "vcpus": 16,
        "memory_mib": 96 * 1024,
        "room_code": ROOM,
        "rack_code": "WEB43",
        "u_position": 12,
        "u_height": 1,
        "lifecycle": "in_use",
    }
    assert {k: server[k] for k in expected} == expected
    assert server["ip_addresses"] == [{"ip": "127.0.0.1", "kind": "mgmt"}]
    assert server["is_domestic"] is False  # an Intel CPU

    # the newer resources win over the deprecated Thermal / Power (41 ℃, 344 W there)
    assert by_sensor(await latest(hub, "hw.power.watts")) == {(SERIAL, ""): 374.0}
    assert by_sensor(await latest(hub, "hw.temp.inlet")) == {(SERIAL, ""): 24.8}
    assert by_sensor(await latest(hub, "hw.temp.cpu")) == {(SERIAL, "CPU1"): 44.0}
    # ThermalSubsystem fans with an RPM reading (the CPU1 fan gives only a percentage)
    assert by_sensor(await latest(hub, "hw.fan.rpm")) == {
        (SERIAL, "Bay1"): 2200.0,
        (SERIAL, "Bay2"): 2400.0,
        (SERIAL, "CPU2"): 1490.0,
    }
    [power] = await latest(hub, "hw.power.watts")
    assert power["asset_known"] is True

    points = await environment(hub)
    assert set(points) == {f"{SERIAL}:inlet", f"{SERIAL}:it_power"}
    inlet, it_power = points[f"{SERIAL}:inlet"], points[f"{SERIAL}:it_power"]
    assert (inlet["point_type"], inlet["value"], inlet["rack_code"], inlet["position"]) == (
        "rack_inlet_temp",
        24.8,
        "WEB43",
        "rack_inlet",
    )
    assert (it_power["point_type"], it_power["value"]) == ("it_power_kw", 0.374)


async def test_a_second_run_updates_values_and_keeps_one_asset(
    hub: Hub, app: Any, sushy_static: Server
) -> None:
    await platform_with_room(hub)
    await create_source(hub, sushy_static.base_url, kinds=["assets", "metrics"], options={})
    first, second = await run(hub, app), await run(hub, app, mode="full")
    assert first["status"] == second["status"] == "success"
    assert first["records"] == 7  # one server and six samples: no room, so no environment
    assets = await hub.assets(platform_code=PLATFORM)
    assert [(a["asset_id"], a["lifecycle"], a["room_code"]) for a in assets] == [(SERIAL, "in_use", None)]
    assert data(await hub.get("/api/v1/environment/latest"))["items"] == []


async def test_the_emulator_with_basic_auth_gives_two_servers_from_thermal_only(
    hub: Hub, app: Any, sushy_emulator: Server
) -> None:
    await platform_with_room(hub)
    credentials = {"username": EMULATOR_USER, "password": EMULATOR_PASSWORD}
    # one request at a time: the emulator's fake driver keeps its state in SQLite and answers 500
    # ("database is locked") to concurrent requests now and then — its flaw, not the collector's
    options = {"room_code": ROOM, "concurrency": 1}
    await create_source(hub, sushy_emulator.base_url, credentials=credentials, options=options)

    done = await run(hub, app)
    assert done["status"] == "success", done["error"]
    servers = {a["asset_id"]: a for a in await hub.assets(platform_code=PLATFORM)}
    # no serial number: the SMBIOS UUID is the asset id; no HostName: the name is Name
    assert {k: (a["name"], a["status"], a["manufacturer"]) for k, a in servers.items()} == {
        FAKE_SYSTEMS[0]["uuid"]: ("node-1", "running", "Sushy Emulator"),
        FAKE_SYSTEMS[1]["uuid"]: ("node-2", "stopped", "Sushy Emulator"),
    }
    # the one chassis holds both systems: it says nothing of either's serial or rack
    assert all(a["serial_number"] is None and a["rack_code"] is None for a in servers.values())

    # Thermal (deprecated) is all this service has: its sensors name the system they belong to
    cpu = by_sensor(await latest(hub, "hw.temp.cpu"))
    assert cpu == {(str(s["uuid"]), "CPU Temp"): 41.0 for s in FAKE_SYSTEMS}
    assert by_sensor(await latest(hub, "hw.temp.inlet")) == {(str(s["uuid"]), ""): 25.0 for s in FAKE_SYSTEMS}
    fans = by_sensor(await latest(hub, "hw.fan.rpm"))
    assert len(fans) == 4 and set(fans.values()) == {2100.0, 2050.0}
    assert await latest(hub, "hw.power.watts") == []  # no Power resource

    # one chassis, one inlet point (named by the chassis: it holds two servers), no power point
    points = await environment(hub)
    assert list(points) == ["437XR1138R2:inlet"]  # the emulator's chassis serial
    assert points["437XR1138R2:inlet"]["value"] == 25.0


async def test_wrong_credentials_fail_the_run_with_the_answer(
    hub: Hub, app: Any, sushy_emulator: Server
) -> None:
    await platform_with_room(hub)
    wrong = {"username": EMULATOR_USER, "password": "wrong-pw-123"}
    await create_source(hub, sushy_emulator.base_url, credentials=wrong)
    done = await run(hub, app)
    assert done["status"] == "failed"
    assert done["error"].startswith("认证失败")
    assert "HTTP 401" in done["error"] and "/redfish/v1/Systems" in done["error"]
    assert "wrong-pw-123" not in done["error"]
    assert await hub.assets(platform_code=PLATFORM) == []


async def test_the_client_follows_the_emulators_307_with_its_credentials(sushy_emulator: Server) -> None:
    async with SourceHTTP(sushy_emulator.base_url, allowed_hosts=LOOPBACK) as http:
        client = RedfishClient(http, (EMULATOR_USER, EMULATOR_PASSWORD))
        root = await client.open()
        assert "SessionService" not in root and client.token is None  # Basic only
        chassis = await client.get(f"/redfish/v1/Chassis/{CHASSIS['Id']}")  # asked by Id → 307 → UUID
        assert chassis["@odata.id"] == f"/redfish/v1/Chassis/{CHASSIS['UUID']}"
        system = await client.get("/redfish/v1/Systems/node-1")  # by name → 307 → UUID
        assert system["UUID"] == FAKE_SYSTEMS[0]["uuid"]
        await client.close()
