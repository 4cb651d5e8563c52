"""Collector sources through the admin API (§8, §10), and one run per source across processes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.collectors.runner import CollectorRunner
from app.config import Settings
from app.main import create_app
from app.models import Source
from app.security.keys import load_server_key
from tests.helpers import Hub

GZ = "GD-GZ-01"
SOURCES = "/api/v1/admin/sources"


def _data(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    return str(response.json()["message"])


def _hub_source(**fields: Any) -> dict[str, Any]:
    return {
        "source_id": "city",
        "type": "hub",
        "base_url": "http://city-hub.example",
        "credentials": {"token": "ak_0123456789abcdef0123.secret-value"},
        "kinds": ["assets"],
        "options": {"region": "4401"},
        **fields,
    }


async def _create(hub: Hub, body: dict[str, Any]) -> httpx.Response:
    return await hub.http.post(SOURCES, json=body, headers=hub.auth(hub.admin))


async def test_sources_are_created_read_changed_and_deleted_without_ever_showing_credentials(
    hub: Hub,
) -> None:
    await hub.create_platform(GZ, "440100")
    created = _data(await _create(hub, _hub_source()), 201)
    assert created["credentials"] == {"token": "***"}
    assert created["stale"] is True and created["running_run_id"] is None
    prom = {
        "source_id": "gz-prom",
        "platform_code": GZ,
        "type": "prometheus",
        "base_url": "http://127.0.0.1:9090",
        "credentials": {"token": {"env": "SUPHUB_SOURCE_GZ_PROM_TOKEN"}},
        "interval_s": 60,
        "kinds": ["metrics"],
        "options": {"asset_label": "instance", "queries": {"cpu.util": "up"}},
    }
    assert _data(await _create(hub, prom), 201)["credentials"] == {"token": "***"}

    listed = _data(await hub.get(SOURCES))
    assert [s["source_id"] for s in listed] == ["city", "gz-prom"]
    assert "secret-value" not in str(listed) and "SUPHUB_SOURCE_GZ_PROM_TOKEN" not in str(listed)
    changed = _data(
        await hub.http.patch(
            f"{SOURCES}/city", json={"interval_s": 120, "enabled": False}, headers=hub.auth(hub.admin)
        )
    )
    assert (changed["interval_s"], changed["enabled"], changed["credentials"]) == (
        120,
        False,
        {"token": "***"},
    )
    assert _data(await hub.http.delete(f"{SOURCES}/city", headers=hub.auth(hub.admin)))["source_id"] == "city"
    _error(await hub.get(f"{SOURCES}/city"), 404, "3002")


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"type": "nosuch"}, 400, "1001"),
        ({"kinds": ["indicators"]}, 422, "1002"),
        ({"type": "hub", "options": {}, "base_url": "ftp://x"}, 422, "1002"),
        ({"credentials": {"token": {"env": "HOME"}}}, 422, "1002"),
        ({"platform_code": "NO-SUCH-01"}, 404, "3002"),
        # options a type cannot use are refused when the source is saved, not at its first run
        (
            {"type": "prometheus", "platform_code": GZ, "kinds": ["metrics"], "options": {"queries": "up"}},
            422,
            "1002",
        ),
        (
            {"type": "prometheus", "kinds": ["metrics"], "options": {"queries": {"cpu.util": "up"}}},
            400,
            "1001",
        ),
    ],
)
async def test_a_bad_source_is_refused_with_a_clear_error(
    hub: Hub, change: dict[str, Any], status: int, code: str
) -> None:
    await hub.create_platform(GZ, "440100")
    message = _error(await _create(hub, _hub_source(**change)), status, code)
    assert message


@pytest.mark.parametrize(
    "base_url",
    [
        "http://monitor:pw-in-url@10.0.0.5",
        "https://monitor@bmc.example/redfish/v1",
        "http://:pw-in-url@10.0.0.5",
    ],
)
async def test_a_base_url_with_a_user_or_password_is_refused_naming_the_field(
    hub: Hub, base_url: str
) -> None:
    """§8: credentials go in ``credentials`` (sealed, and sent only to this origin), never in the URL."""
    await hub.create_platform(GZ, "440100")
    refused = await _create(hub, _hub_source(base_url=base_url))
    _error(refused, 422, "1002")
    assert [e["loc"] for e in refused.json()["errors"]] == ["base_url"]
    assert "pw-in-url" not in refused.text and "monitor" not in refused.text

    _data(await _create(hub, _hub_source()), 201)
    changed = await hub.http.patch(
        f"{SOURCES}/city", json={"base_url": base_url}, headers=hub.auth(hub.admin)
    )
    _error(changed, 422, "1002")
    assert [e["loc"] for e in changed.json()["errors"]] == ["base_url"]
    assert _data(await hub.get(f"{SOURCES}/city"))["base_url"] == "http://city-hub.example"


async def test_a_duplicate_source_id_is_a_conflict_and_only_admins_manage_sources(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    _data(await _create(hub, _hub_source()), 201)
    _error(await _create(hub, _hub_source()), 409, "1001")
    regulator = await hub.create_client("regulator", regions=["44"])
    _error(await hub.get(SOURCES, regulator), 403, "2006")
    _error(await hub.http.post(f"{SOURCES}/city/run", headers=hub.auth(regulator)), 403, "2006")


async def test_a_credential_from_the_environment_is_read_at_run_time(
    hub: Hub, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", ""))
        return httpx.Response(200, json={"code": "0", "data": {"items": [], "next_cursor": None}})

    app.state.collector_transport = httpx.MockTransport(handler)
    body = _hub_source(credentials={"token": {"env": "SUPHUB_SOURCE_CITY_TOKEN"}})
    _data(await _create(hub, body), 201)
    run_id = _data(await hub.http.post(f"{SOURCES}/city/run", headers=hub.auth(hub.admin)), 202)["run_id"]
    await app.state.collector_runner.wait_idle()
    run = _data(await hub.get(f"{SOURCES}/city/runs/{run_id}"))
    assert run["status"] == "failed" and "SUPHUB_SOURCE_CITY_TOKEN" in run["error"] and seen == []

    monkeypatch.setenv("SUPHUB_SOURCE_CITY_TOKEN", "ak_0123456789abcdef0123.from-env")
    _data(await hub.http.post(f"{SOURCES}/city/run", headers=hub.auth(hub.admin)), 202)
    await app.state.collector_runner.wait_idle()
    runs = _data(await hub.get(f"{SOURCES}/city/runs"))
    assert [r["status"] for r in runs] == ["success", "failed"]  # newest first
    assert seen == ["Bearer ak_0123456789abcdef0123.from-env"]


async def test_one_run_per_source_across_processes(hub: Hub, app: Any, settings: Settings) -> None:
    """Two runners on two engines (two scheduler processes) on one database never run a source twice."""
    await hub.create_platform(GZ, "440100")
    _data(await _create(hub, _hub_source()), 201)
    other_app = create_app(settings)
    key = load_server_key(settings)
    first = CollectorRunner(app.state.sessionmaker, settings, key, owner="scheduler-1")
    second = CollectorRunner(other_app.state.sessionmaker, settings, key, owner="scheduler-2")
    try:
        results = await asyncio.gather(
            *(r.start("city", trigger="schedule") for r in (first, second, first, second))
        )
        started = [run_id for run_id, fresh in results if fresh]
        assert len(started) == 1 and {run_id for run_id, _ in results} == set(started)
        # "run now" while it runs answers the run in progress
        answer = _data(await hub.http.post(f"{SOURCES}/city/run", headers=hub.auth(hub.admin)), 202)
        assert answer == {"run_id": started[0], "started": False}
        assert _data(await hub.get(f"{SOURCES}/city"))["running_run_id"] == started[0]

        # a holder that died: its lease lapses and another process takes the source over
        async with app.state.sessionmaker() as session:
            await session.execute(
                update(Source).values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
            await session.commit()
        taken_over, fresh = await second.start("city", trigger="schedule")
        assert fresh and taken_over != started[0]
    finally:
        await other_app.state.engine.dispose()


async def test_due_sources_start_once_when_two_schedulers_tick_together(
    hub: Hub, app: Any, settings: Settings
) -> None:
    await hub.create_platform(GZ, "440100")
    for n in range(3):
        _data(await _create(hub, _hub_source(source_id=f"city-{n}")), 201)
    refused = httpx.MockTransport(lambda request: httpx.Response(401, json={"code": "2002"}))
    other_app = create_app(settings)
    key = load_server_key(settings)
    first = CollectorRunner(app.state.sessionmaker, settings, key, owner="a", transport=refused)
    second = CollectorRunner(other_app.state.sessionmaker, settings, key, owner="b", transport=refused)
    try:
        ticks = await asyncio.gather(first.tick(), second.tick())
        assert sum(len(t) for t in ticks) == 3
        await asyncio.gather(first.wait_idle(), second.wait_idle())
        runs = [_data(await hub.get(f"{SOURCES}/city-{n}/runs")) for n in range(3)]
        assert [len(r) for r in runs] == [1, 1, 1]
        assert all(r[0]["status"] == "failed" and "401" in r[0]["error"] for r in runs)
        # failed sources are backed off: the next ticks start nothing
        assert await first.tick() == [] and await second.tick() == []
    finally:
        await other_app.state.engine.dispose()
