"""The ``hub`` source (§8 item 1) against a second, real hub instance: a city hub with its own
database, reached through its ASGI app, mirrored by the hub under test (the provincial hub).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command

from app.cli import alembic_config
from app.config import Settings
from app.db import create_sessionmaker
from app.main import create_app
from app.schemas.common import ClientCreate
from app.security.keys import load_server_key
from app.services.clients import create_client
from tests.api.test_query_lists import room, sample
from tests.helpers import Hub, batch, now_utc, rfc3339, vm

GZ, SZ = "GD-GZ-CITY-01", "GD-SZ-CITY-01"
SOURCES = "/api/v1/admin/sources"


@pytest.fixture(scope="session")
def city_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied for each city hub (migrating each time would be slow)."""
    path = tmp_path_factory.mktemp("city") / "template.db"
    command.upgrade(alembic_config(f"sqlite+aiosqlite:///{path}"), "head")
    return path


@pytest.fixture
async def city(city_template: Path, tmp_path: Path, settings: Settings) -> AsyncIterator[Hub]:
    """A city hub: its own database and server key, its own admin."""
    shutil.copy(city_template, tmp_path / "city.db")
    city_settings = settings.model_copy(
        update={"database_url": f"sqlite+aiosqlite:///{tmp_path / 'city.db'}", "data_dir": tmp_path}
    )
    application = create_app(city_settings)
    async with create_sessionmaker(application.state.engine)() as session:
        created = await create_client(
            session, load_server_key(city_settings), ClientCreate(name="city root", role="admin")
        )
        await session.commit()
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://city-hub") as client:
        city_hub = Hub(client, created["bearer"], city_settings)
        city_hub.app = application  # type: ignore[attr-defined]
        yield city_hub
    await application.state.audit_writer.close()
    await application.state.rate_limiter.close()
    await application.state.engine.dispose()


def _data(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


async def _all(hub: Hub, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        data = _data(await hub.get(path, limit="1000", **params, **({"cursor": cursor} if cursor else {})))
        items += data["items"]
        cursor = data["next_cursor"]
        if not cursor:
            return items


async def _push(hub: Hub, kind: str, platform: str, batch_id: str, records: list[Any], **extra: Any) -> None:
    response = await hub.push(kind, batch(platform, batch_id, records, **extra))
    assert response.status_code == 200, response.text


async def _fill_city(city: Hub) -> None:
    await city.create_platform(GZ, "440100")
    await city.create_platform(SZ, "440300")  # another region: not mirrored
    t = now_utc() - timedelta(hours=1)
    await _push(city, "assets", GZ, "a1", [vm(f"vm-{i}", vcpus=4) for i in range(5)])
    await _push(city, "assets", SZ, "s1", [vm("sz-vm")])
    logs = [
        {
            "log_id": f"L{i}",
            "category": "operation",
            "type": "login",
            "event_time": rfc3339(t + timedelta(seconds=i)),
            "severity": 6,
            "actor": "admin",
            "action": "login",
            "outcome": "success",
            "message": f"登录 {i}",
        }
        for i in range(3)
    ]
    await _push(city, "logs", GZ, "l1", logs)
    metrics = [
        {"metric": "cpu.util", "asset_id": "vm-1", "ts": rfc3339(t + timedelta(minutes=m)), "value": float(m)}
        for m in range(10)
    ]
    await _push(city, "metrics", GZ, "m1", metrics)
    await _push(city, "rooms", GZ, "r1", [room("R1")])
    await _push(
        city,
        "environment",
        GZ,
        "e1",
        [sample("R1", "T1", "cold_aisle_temp", t, 23.5), sample("R1", "H1", "cold_aisle_rh", t, 50.0)],
    )
    alarm = {"alarm_id": "A1", "level": 2, "status": "active", "title": "CPU 高", "first_at": rfc3339(t)}
    await _push(city, "alarms", GZ, "al1", [alarm])


async def _source(hub: Hub, city: Hub, app: Any, **fields: Any) -> dict[str, Any]:
    token = await city.create_client("regulator", regions=["4401"])
    app.state.collector_transport = httpx.ASGITransport(app=city.app)  # type: ignore[attr-defined]
    body = {
        "source_id": "gz-city",
        "type": "hub",
        "base_url": "http://city-hub",
        "credentials": {"token": token},
        "interval_s": 60,
        "kinds": ["assets", "logs", "metrics", "environment", "alarms"],
        "options": {"region": "4401"},
        **fields,
    }
    return _data(await hub.http.post(SOURCES, json=body, headers=hub.auth(hub.admin)), 201)  # type: ignore[no-any-return]


async def _run(hub: Hub, app: Any, source_id: str = "gz-city") -> dict[str, Any]:
    started = _data(await hub.http.post(f"{SOURCES}/{source_id}/run", headers=hub.auth(hub.admin)), 202)
    await app.state.collector_runner.wait_idle()
    runs = _data(await hub.get(f"{SOURCES}/{source_id}/runs"))["items"]
    assert runs[0]["run_id"] == started["run_id"]
    return runs[0]  # type: ignore[no-any-return]


async def test_a_hub_source_mirrors_a_city_hub_and_then_only_its_changes(
    hub: Hub, app: Any, city: Hub
) -> None:
    await _fill_city(city)
    source = await _source(hub, city, app)
    assert source["credentials"] == {"token": "***"} and source["platform_code"] is None

    run = await _run(hub, app)
    assert run["status"] == "success", run
    platforms = {p["platform_code"] for p in await hub.items("/api/v1/admin/platforms")}
    assert platforms == {GZ}  # registered here; the other region's platform is not mirrored
    mine = {a["asset_id"]: a for a in await _all(hub, "/api/v1/assets", platform_code=GZ)}
    theirs = {a["asset_id"]: a for a in await _all(city, "/api/v1/assets", platform_code=GZ)}
    assert set(mine) == set(theirs) == {f"vm-{i}" for i in range(5)}
    assert mine["vm-2"]["asset_uid"] == theirs["vm-2"]["asset_uid"] and mine["vm-2"]["vcpus"] == 4

    their_logs = {log["log_id"]: log for log in await _all(city, "/api/v1/logs", platform_code=GZ)}
    my_logs = await _all(hub, "/api/v1/logs", platform_code=GZ)
    assert {log["log_id"]: log["origin_hash"] for log in my_logs} == {
        k: v["hash"] for k, v in their_logs.items()
    }
    verified = _data(await hub.get("/api/v1/logs/verify", platform_code=GZ))
    assert verified["ok"] is True

    window = {"from": rfc3339(now_utc() - timedelta(hours=3)), "to": rfc3339(now_utc())}
    samples = await _all(hub, "/api/v1/metrics/samples", platform_code=GZ, **window)
    assert sorted(s["value"] for s in samples) == [float(m) for m in range(10)]
    env = await _all(hub, "/api/v1/environment/samples", platform_code=GZ, **window)
    their_env = await _all(city, "/api/v1/environment/samples", platform_code=GZ, **window)
    # the city's derived dew point is not copied (it would be refused): this hub derives the same
    assert run["rejected"] == 0, run
    assert sorted((e["point_code"], e["value"], e["derived_from"]) for e in env) == sorted(
        (e["point_code"], e["value"], e["derived_from"]) for e in their_env
    )
    assert {e["point_code"] for e in env} == {"T1", "H1", "dp~H1"}
    alarms = await _all(hub, "/api/v1/alarms", platform_code=GZ)
    assert [(a["alarm_id"], a["status"]) for a in alarms] == [("A1", "active")]

    # changes on the city hub: a new asset, a renamed one, a retirement, a cleared alarm, a correction
    snapshot = {"id": "s1", "seq": 1, "last": True}
    records = [vm(f"vm-{i}", vcpus=4) for i in range(1, 5)] + [vm("vm-new"), vm("vm-3", name="改名")]
    await _push(city, "assets", GZ, "a2", records[:4] + records[4:], snapshot=snapshot)
    cleared = {
        "alarm_id": "A1",
        "level": 2,
        "status": "cleared",
        "title": "CPU 高",
        "first_at": rfc3339(now_utc() - timedelta(hours=1)),
        "cleared_at": rfc3339(now_utc()),
    }
    await _push(city, "alarms", GZ, "al2", [cleared])
    first_metric = samples[0]
    await _push(
        city,
        "metrics",
        GZ,
        "m2",
        [{"metric": "cpu.util", "asset_id": "vm-1", "ts": first_metric["ts"], "value": 99.0}],
    )

    second = await _run(hub, app)
    assert second["status"] == "success", second
    assert second["records"] < run["records"]  # only what changed travels
    mine = {
        a["asset_id"]: a for a in await _all(hub, "/api/v1/assets", platform_code=GZ, include_retired="true")
    }
    assert mine["vm-0"]["lifecycle"] == "retired" and mine["vm-3"]["name"] == "改名" and "vm-new" in mine
    alarms = await _all(hub, "/api/v1/alarms", platform_code=GZ)
    assert [(a["alarm_id"], a["status"]) for a in alarms] == [("A1", "cleared")]
    corrected = await _all(hub, "/api/v1/metrics/samples", platform_code=GZ, **window)
    assert sorted(s["value"] for s in corrected)[-1] == 99.0 and len(corrected) == 10


async def test_a_failing_source_backs_off_shows_stale_and_recovers(hub: Hub, app: Any, city: Hub) -> None:
    await _fill_city(city)
    await _source(hub, city, app, credentials={"token": "ak_00000000000000000000.wrong-secret"})
    failed = await _run(hub, app)
    assert failed["status"] == "failed" and "401" in failed["error"]
    assert "wrong-secret" not in failed["error"]
    source = _data(await hub.get(f"{SOURCES}/gz-city"))
    assert source["consecutive_failures"] == 1 and source["stale"] is True
    assert source["next_run_at"] > rfc3339(now_utc(), 0)  # backed off: not due at once
    assert await app.state.collector_runner.tick() == []  # the scheduler leaves it alone for now

    token = await city.create_client("regulator", regions=["4401"])
    patched = await hub.http.patch(
        f"{SOURCES}/gz-city", json={"credentials": {"token": token}}, headers=hub.auth(hub.admin)
    )
    assert _data(patched)["credentials"] == {"token": "***"}
    recovered = await _run(hub, app)
    assert recovered["status"] == "success", recovered
    source = _data(await hub.get(f"{SOURCES}/gz-city"))
    assert source["consecutive_failures"] == 0 and source["stale"] is False


# --- sources are untrusted peers (§8): a hub source writes only into its own platforms -------------


class _IgnoresTheRegion(httpx.AsyncBaseTransport):
    """A hostile peer in front of the city hub: it lists every platform its key sees, whatever
    ``region_code`` was asked for."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/platforms":
            request.url = request.url.copy_remove_param("region_code")
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("local_region", ["440300", "440100"])
async def test_a_hub_source_writes_nothing_into_a_local_platform_it_did_not_register(
    hub: Hub, app: Any, city: Hub, local_region: str
) -> None:
    """The remote announces GZ, which exists here already — in another region, or in the source's
    region but registered by someone else: nothing is written into it and the run says why."""
    await hub.create_platform(GZ, local_region)
    provider = await hub.create_client("provider", platforms=[GZ])
    pushed = await hub.push("assets", batch(GZ, "own", [vm("local-vm")]), provider)
    assert pushed.status_code == 200, pushed.text
    await _fill_city(city)
    await _source(hub, city, app)

    run = await _run(hub, app)
    assert run["status"] == "success", run  # the refusal does not fail the source
    assert run["accepted"] == 0, run  # refused when announced: nothing of it is fetched
    assert GZ in run["error"] and "options.platforms" in run["error"], run
    assert (local_region in run["error"]) == (local_region == "440300"), run  # the region, when it is that
    assets = await _all(hub, "/api/v1/assets", platform_code=GZ, include_retired="true")
    assert [(a["asset_id"], a["lifecycle"]) for a in assets] == [("local-vm", "in_use")]
    for path in ("/api/v1/logs", "/api/v1/alarms", "/api/v1/rooms"):
        assert await _all(hub, path, platform_code=GZ) == [], path
    platform = _data(await hub.get(f"/api/v1/admin/platforms/{GZ}"))
    assert platform["region_code"] == local_region  # not re-registered from the remote's view

    # an operator who means it names the platform; its local region must still be the source's
    patched = await hub.http.patch(
        f"{SOURCES}/gz-city",
        json={"options": {"region": "4401", "platforms": [GZ]}},
        headers=hub.auth(hub.admin),
    )
    assert patched.status_code == 200, patched.text
    again = await _run(hub, app)
    mirrored = {a["asset_id"] for a in await _all(hub, "/api/v1/assets", platform_code=GZ)}
    if local_region == "440100":
        assert again["status"] == "success" and again["rejected"] == 0, again
        assert mirrored == {"local-vm"} | {f"vm-{i}" for i in range(5)}
    else:
        assert again["accepted"] == 0 and "440300" in again["error"], again
        assert mirrored == {"local-vm"}


async def test_a_remote_platform_outside_the_source_s_region_is_not_registered(
    hub: Hub, app: Any, city: Hub
) -> None:
    await _fill_city(city)
    token = await city.create_client("regulator", regions=["44"])  # the key sees Shenzhen too
    await _source(hub, city, app, credentials={"token": token})
    app.state.collector_transport = _IgnoresTheRegion(city.app)  # type: ignore[attr-defined]

    run = await _run(hub, app)
    assert run["status"] == "success", run
    platforms = {p["platform_code"] for p in await hub.items("/api/v1/admin/platforms")}
    assert platforms == {GZ}  # Shenzhen (440300) announced, not registered
    assert SZ in run["error"] and "440300" in run["error"] and GZ not in run["error"], run
    assert {a["asset_id"] for a in await _all(hub, "/api/v1/assets", platform_code=GZ)} == {
        f"vm-{i}" for i in range(5)
    }
