"""Collector sources through the admin API (§8, §10), and one run per source across processes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.collectors.runner import CollectorRunner
from app.config import Settings
from app.main import create_app
from app.models import Source
from app.security.keys import load_server_key
from tests.collectors.tlspeer import make_ca
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
        "base_url": "http://10.20.7.9:9090",
        "credentials": {"token": {"env": "SUPHUB_SOURCE_GZ_PROM_TOKEN"}},
        "interval_s": 60,
        "kinds": ["metrics"],
        "options": {"asset_label": "instance", "queries": {"cpu.util": "up"}},
    }
    assert _data(await _create(hub, prom), 201)["credentials"] == {"token": "***"}

    listed = _data(await hub.get(SOURCES))["items"]
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


@pytest.mark.parametrize(
    ("base_url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[fe80::1]:8443", "link-local"),
        ("http://[::ffff:169.254.169.254]", "link-local"),
        ("http://0.0.0.0:9090", "unspecified"),
        ("http://[::]:9090", "unspecified"),
        ("http://224.0.0.251", "multicast"),
        ("http://255.255.255.255", "broadcast"),
        ("http://127.0.0.1:9090", "loopback"),
        ("http://[::1]:9090", "loopback"),
        ("http://2130706433:9090", "loopback"),  # 127.0.0.1 as the resolver reads a bare number
    ],
)
async def test_a_base_url_at_an_address_section_8_refuses_is_refused_when_saved(
    hub: Hub, base_url: str, why: str
) -> None:
    """§8: an address the connection policy always refuses is refused at once, naming base_url."""
    await hub.create_platform(GZ, "440100")
    refused = await _create(hub, _hub_source(base_url=base_url))
    assert why in _error(refused, 422, "1002")
    assert [e["loc"] for e in refused.json()["errors"]] == ["base_url"]
    _error(await hub.get(f"{SOURCES}/city"), 404, "3002")

    _data(await _create(hub, _hub_source()), 201)
    changed = await hub.http.patch(
        f"{SOURCES}/city", json={"base_url": base_url}, headers=hub.auth(hub.admin)
    )
    assert why in _error(changed, 422, "1002")
    assert [e["loc"] for e in changed.json()["errors"]] == ["base_url"]
    assert _data(await hub.get(f"{SOURCES}/city"))["base_url"] == "http://city-hub.example"


async def test_loopback_is_saved_when_listed_and_names_wait_for_the_connection(
    hub: Hub, app: Any, settings: Settings
) -> None:
    """A listed loopback host passes (as it does when connecting); a name is only judged on the
    address it resolves to when the run connects; a private management address is fine."""
    await hub.create_platform(GZ, "440100")
    listed = ["127.0.0.1", "[::1]", "metadata.example", "10.20.7.9", "169.254.169.254"]
    app.state.settings = settings.model_copy(update={"source_allowed_hosts": listed})
    saved = ["http://127.0.0.1:9090", "http://[::1]:9090", "http://metadata.example", "https://10.20.7.9"]
    for n, base_url in enumerate(saved):
        _data(await _create(hub, _hub_source(source_id=f"s{n}", base_url=base_url)), 201)
    # listing a metadata address does not make it acceptable
    refused = await _create(hub, _hub_source(base_url="http://169.254.169.254"))
    assert "link-local" in _error(refused, 422, "1002")


def _ca_file_cases(folder: Path) -> dict[str, Any]:
    """``options.ca_file`` values a hub must refuse, each with a reason a user would see."""
    ca = make_ca(folder / "ca")
    (folder / "token.txt").write_text("SECRET-TOKEN-do-not-show\n")
    (folder / "bundle-with-key.pem").write_bytes(ca.server_cert.read_bytes() + ca.server_key.read_bytes())
    (folder / "empty.pem").write_bytes(b"")
    (folder / "huge.pem").write_bytes(ca.ca_file.read_bytes() + b"\n" * (5 * 1024 * 1024))
    (folder / "bad-base64.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nSECRET-TOKEN-do-not-show\n-----END CERTIFICATE-----\n"
    )
    return {
        "missing": str(folder / "no-such.pem"),
        "directory": str(folder),
        "relative": "ca/ca.pem",
        "device": "/dev/zero",
        "not a certificate": str(folder / "token.txt"),
        "broken certificate": str(folder / "bad-base64.pem"),
        "empty": str(folder / "empty.pem"),
        "a private key inside": str(folder / "bundle-with-key.pem"),
        "too large": str(folder / "huge.pem"),
        "not a string": 42,
        "blank": "",
    }


async def test_a_ca_file_that_is_not_a_readable_ca_bundle_is_refused_naming_the_option(
    hub: Hub, tmp_path: Path
) -> None:
    """§8 ``options.ca_file``: refused when saved (not at the first run), without showing the file."""
    await hub.create_platform(GZ, "440100")
    for case, value in _ca_file_cases(tmp_path).items():
        refused = await _create(hub, _hub_source(options={"region": "4401", "ca_file": value}))
        assert refused.status_code == 422, (case, refused.text)
        _error(refused, 422, "1002")
        assert [e["loc"] for e in refused.json()["errors"]] == ["options.ca_file"], case
        assert "SECRET-TOKEN" not in refused.text and "PRIVATE KEY" not in refused.text, case

    good = {"region": "4401", "ca_file": str(tmp_path / "ca" / "ca.pem")}
    assert _data(await _create(hub, _hub_source(options=good)), 201)["options"] == good
    bad = {"region": "4401", "ca_file": str(tmp_path / "token.txt")}
    changed = await hub.http.patch(f"{SOURCES}/city", json={"options": bad}, headers=hub.auth(hub.admin))
    _error(changed, 422, "1002")
    assert [e["loc"] for e in changed.json()["errors"]] == ["options.ca_file"]
    assert _data(await hub.get(f"{SOURCES}/city"))["options"] == good


async def test_tls_verify_false_is_refused_in_production_and_allowed_in_development(
    hub: Hub, app: Any, settings: Settings
) -> None:
    """§8: ``tls_verify: false`` is a development convenience only; it must be a boolean."""
    await hub.create_platform(GZ, "440100")
    unchecked = {"region": "4401", "tls_verify": False}
    _data(await _create(hub, _hub_source(options=unchecked)), 201)
    for value in ("false", 0, None):
        refused = await _create(
            hub, _hub_source(source_id="other", options={"region": "4401", "tls_verify": value})
        )
        _error(refused, 422, "1002")
        assert [e["loc"] for e in refused.json()["errors"]] == ["options.tls_verify"]

    app.state.settings = settings.model_copy(update={"env": "production"})
    refused = await _create(hub, _hub_source(source_id="prod", options=unchecked))
    assert "tls_verify" in _error(refused, 422, "1002")
    assert [e["loc"] for e in refused.json()["errors"]] == ["options.tls_verify"]
    changed = await hub.http.patch(
        f"{SOURCES}/city", json={"options": unchecked}, headers=hub.auth(hub.admin)
    )
    _error(changed, 422, "1002")
    # verifying is fine, and a stored source can still be switched off (its runs fail meanwhile)
    _data(
        await _create(hub, _hub_source(source_id="prod", options={"region": "4401", "tls_verify": True})), 201
    )
    off = await hub.http.patch(f"{SOURCES}/city", json={"enabled": False}, headers=hub.auth(hub.admin))
    assert _data(off)["enabled"] is False


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
    runs = _data(await hub.get(f"{SOURCES}/city/runs"))["items"]
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
        runs = [_data(await hub.get(f"{SOURCES}/city-{n}/runs"))["items"] for n in range(3)]
        assert [len(r) for r in runs] == [1, 1, 1]
        assert all(r[0]["status"] == "failed" and "401" in r[0]["error"] for r in runs)
        # failed sources are backed off: the next ticks start nothing
        assert await first.tick() == [] and await second.tick() == []
    finally:
        await other_app.state.engine.dispose()
