"""The ``openstack`` source end to end: a recorded cloud polled through the admin API (§8 item 2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.collectors.openstack.conftest import (
    GZ,
    SECRET,
    USCC,
    assets_by_id,
    create_source,
    run_source,
)
from tests.collectors.openstack.fake import (
    HOSTS,
    PROJECT,
    SERVERS,
    VOLUMES,
    FakeOpenStack,
    is_servers_page,
    path_ends,
)
from tests.helpers import Hub

WEB, DB, OCR, BATCH, BUILDING = SERVERS
EVERYTHING = {*SERVERS, *HOSTS, *VOLUMES}


def _utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def _latest(hub: Hub, metric: str) -> dict[str, float]:
    response = await hub.get("/api/v1/metrics/latest", metric=metric, platform_code=GZ)
    assert response.status_code == 200, response.text
    return {item["asset_id"]: item["value"] for item in response.json()["data"]["items"]}


async def test_a_full_run_maps_servers_hypervisors_volumes_and_placement_capacity(
    hub: Hub, app: Any, cloud: FakeOpenStack
) -> None:
    await create_source(hub)
    run = await run_source(hub, app)
    assert run["status"] == "success", run["error"]
    assert run["mode"] == "full" and run["rejected"] == 0
    assets = await assets_by_id(hub)
    assert set(assets) == EVERYTHING
    assert {a["lifecycle"] for a in assets.values()} == {"in_use"}
    assert {(a["reporter"]["kind"], a["reporter"]["name"]) for a in assets.values()} == {("source", "gz-os")}

    web = assets[WEB]
    assert web["asset_type"] == "vm" and web["name"] == "gov-portal-web-01" and web["status"] == "running"
    assert (web["vcpus"], web["memory_mib"], web["disk_gib"]) == (2, 4096, 40.0)
    assert web["host_asset_id"] == HOSTS[0] and web["cpu_arch"] == "x86_64" and web["virtualization"] == "kvm"
    assert web["ip_addresses"] == [
        {"ip": "10.0.0.11", "kind": "business"},
        {"ip": "172.24.4.11", "kind": "floating"},
    ]
    assert web["business_system"] == "政务服务门户" and web["using_unit"] == "广州市政务服务数据管理局"
    assert web["using_unit_uscc"] is None  # the VM's own tag fails its check digit: left out, VM kept
    assert _utc(web["source_updated_at"]) == datetime(2026, 11, 20, 8, tzinfo=UTC)
    assert web["tags"]["project_id"] == PROJECT and web["tags"]["flavor"] == "m1.medium"
    statuses = {sid: assets[sid]["status"] for sid in SERVERS}
    assert statuses == {WEB: "running", DB: "stopped", OCR: "error", BATCH: "suspended", BUILDING: "building"}
    ocr = assets[OCR]
    assert ocr["cpu_arch"] == "aarch64" and ocr["host_asset_id"] == HOSTS[1]
    assert (ocr["using_unit"], ocr["using_unit_uscc"]) == ("广州市数据局", USCC)  # options.projects
    assert {"ip": "fd00:10::22", "kind": "business"} in assets[BATCH]["ip_addresses"]
    assert assets[BUILDING]["host_asset_id"] is None and assets[BUILDING]["cpu_arch"] is None

    kunpeng = assets[HOSTS[1]]
    assert kunpeng["asset_type"] == "hypervisor_host" and kunpeng["status"] == "running"
    assert (kunpeng["cpu_arch"], kunpeng["cpu_vendor"], kunpeng["cpu_model"]) == (
        "aarch64",
        "HiSilicon",
        "Kunpeng-920",
    )
    assert (kunpeng["cpu_cores"], kunpeng["memory_mib"], kunpeng["disk_gib"]) == (128, 524288, 3600.0)
    assert kunpeng["ip_addresses"] == [{"ip": "192.168.10.12", "kind": "mgmt"}]
    assert kunpeng["is_domestic"] is True and kunpeng["domestic"]["cpu"]["value"] is True  # 鲲鹏 / HiSilicon

    root, archive, broken = (assets[v] for v in VOLUMES)
    assert (root["asset_type"], root["status"], root["capacity_gib"]) == ("volume", "running", 40.0)
    assert root["tags"]["attached_to"] == WEB and root["tags"]["bootable"] == "true"
    assert (archive["status"], archive["capacity_gib"], archive["using_unit_uscc"]) == (
        "stopped",
        500.0,
        USCC,
    )
    assert (broken["status"], broken["name"]) == ("error", VOLUMES[2])  # a volume without a name

    # Placement: (total − reserved) × allocation_ratio; compute-02's NUMA child counts for its root
    assert await _latest(hub, "host.vcpu.total") == {HOSTS[0]: 240.0, HOSTS[1]: 256.0}
    assert await _latest(hub, "host.vcpu.used") == {HOSTS[0]: 6.0, HOSTS[1]: 12.0}
    assert await _latest(hub, "host.mem.total_mib") == {HOSTS[0]: 565248.0, HOSTS[1]: 507904.0}
    assert await _latest(hub, "host.mem.used_mib") == {HOSTS[0]: 12288.0, HOSTS[1]: 24576.0}

    # the servers pages were followed by marker, all tenants, with the page size of options.limit
    pages = cloud.service_requests("/servers/detail")
    assert [r.url.params.get("marker") for r in pages] == [None, DB, BATCH]
    assert {(r.url.params["all_tenants"], r.url.params["limit"]) for r in pages} == {("1", "2")}
    assert all("changes-since" not in r.url.params for r in pages)
    assert pages[0].headers["OpenStack-API-Version"] == "compute 2.53"
    # one token for the whole run, sent to every service; the public interface of the catalogue
    assert cloud.keystone_calls == 1
    assert cloud.auth_bodies[0]["auth"]["identity"]["application_credential"] == {
        "id": "423f19a4ac1e4f48bbb4180756e6eb6c",
        "secret": SECRET,
    }
    services = [r for r in cloud.requests if not r.url.path.endswith("/auth/tokens")]
    assert {r.headers["X-Auth-Token"] for r in services} == {cloud.issued[0]}
    assert {r.url.host for r in services} == {"openstack.test"}


async def test_a_password_source_scopes_its_token_and_can_use_the_internal_interface(
    hub: Hub, app: Any, cloud: FakeOpenStack
) -> None:
    await create_source(
        hub,
        credentials={"username": "hub-collector", "password": SECRET},
        options={
            "project_name": "admin",
            "user_domain_name": "gov",
            "endpoints": {"placement": "http://openstack.test:8778"},
        },
        kinds=["metrics"],
    )
    run = await run_source(hub, app)
    assert run["status"] == "success", run["error"]
    assert cloud.auth_bodies == [
        {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": "hub-collector", "domain": {"name": "gov"}, "password": SECRET}
                    },
                },
                "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}},
            }
        }
    ]
    # only what the kinds ask for is read: no Nova, no Cinder
    assert not cloud.service_requests("/servers/detail") and not cloud.service_requests("/volumes/detail")
    assert await _latest(hub, "host.vcpu.used") == {HOSTS[0]: 6.0, HOSTS[1]: 12.0}

    # the internal interface names hosts this fake does not serve: the run fails on them, not silently
    response = await hub.http.patch(
        "/api/v1/admin/sources/gz-os",
        json={"options": {"interface": "internal", "project_name": "admin"}},
        headers=hub.auth(hub.admin),
    )
    assert response.status_code == 200, response.text
    run = await run_source(hub, app)
    assert run["status"] == "failed"
    assert cloud.requests[-1].url.host == "placement.internal"


async def test_a_401_from_a_service_forces_one_new_token_and_the_run_succeeds(
    hub: Hub, app: Any, cloud: FakeOpenStack
) -> None:
    await create_source(hub)
    # Keystone forgets every token just before the second servers page (a restart, new fernet keys)
    revoke = cloud.fault(is_servers_page(2), status=401, body=b'{"error": {"code": 401}}')
    revoke.when = _revoking(cloud, revoke.when)
    run = await run_source(hub, app)
    assert run["status"] == "success", run["error"]
    assert cloud.keystone_calls == 2 and revoke.hits == 1
    assert set(await assets_by_id(hub)) == EVERYTHING
    second = cloud.service_requests("/servers/detail")[1:3]
    assert [r.headers["X-Auth-Token"] for r in second] == cloud.issued  # the retry carries the new token


async def test_concurrent_placement_reads_share_one_new_token_after_a_401(
    hub: Hub, app: Any, cloud: FakeOpenStack
) -> None:
    await create_source(hub, options={"concurrency": 6})
    revoke = cloud.fault(path_ends("/inventories"), status=401)
    revoke.when = _revoking(cloud, revoke.when)
    run = await run_source(hub, app)
    assert run["status"] == "success", run["error"]
    assert revoke.hits == 1 and cloud.keystone_calls == 2
    assert await _latest(hub, "host.vcpu.total") == {HOSTS[0]: 240.0, HOSTS[1]: 256.0}


def _revoking(cloud: FakeOpenStack, when: Any) -> Any:
    def revoke_then_match(request: httpx.Request) -> bool:
        if when(request):
            cloud.revoke_tokens()
            return True
        return False

    return revoke_then_match


async def test_a_second_401_fails_the_run_and_refused_credentials_never_show(
    hub: Hub, app: Any, cloud: FakeOpenStack
) -> None:
    await create_source(hub)
    cloud.fault(path_ends("/os-hypervisors/detail"), status=401, times=2)
    run = await run_source(hub, app)
    assert run["status"] == "failed" and "401" in run["error"]
    assert cloud.keystone_calls == 2

    cloud.fault(path_ends("/auth/tokens"), status=401, body=b'{"error": {"code": 401}}')
    run = await run_source(hub, app)
    assert run["status"] == "failed" and "Keystone" in run["error"] and SECRET not in run["error"]
    assert await hub.assets(platform_code=GZ) == []


async def test_a_503_with_retry_after_is_retried_and_the_run_succeeds(
    hub: Hub, app: Any, cloud: FakeOpenStack
) -> None:
    await create_source(hub)
    busy = cloud.fault(is_servers_page(2), status=503, headers={"Retry-After": "0"}, times=2)
    run = await run_source(hub, app)
    assert run["status"] == "success", run["error"]
    assert busy.hits == 2
    assert [r.url.params.get("marker") for r in cloud.service_requests("/servers/detail")] == [
        None,
        DB,
        DB,
        DB,
        BATCH,
    ]
    assert set(await assets_by_id(hub)) == EVERYTHING


async def test_a_429_waits_as_long_as_retry_after_says(hub: Hub, app: Any, cloud: FakeOpenStack) -> None:
    await create_source(hub)
    limited = cloud.fault(path_ends("/volumes/detail"), status=429, headers={"Retry-After": "1"})
    started = datetime.now(UTC)
    run = await run_source(hub, app)
    assert run["status"] == "success", run["error"]
    assert limited.hits == 1 and datetime.now(UTC) - started >= timedelta(seconds=1)

    # a source that keeps answering 429 fails the run once the attempts are used up
    cloud.fault(path_ends("/volumes/detail"), status=429, headers={"Retry-After": "0"}, times=10)
    run = await run_source(hub, app)
    assert run["status"] == "failed" and "429" in run["error"] and "4" in run["error"]


async def test_a_garbage_page_fails_the_full_run_and_retires_nothing(
    hub: Hub, app: Any, cloud: FakeOpenStack
) -> None:
    await create_source(hub, options={"batch_size": 2})  # every page its own ingest batch
    assert (await run_source(hub, app))["status"] == "success"

    # the next full run no longer sees the building VM, but a page in the middle is garbage
    cloud.removed.add(BUILDING)
    cloud.fault(is_servers_page(2), status=200, body=b"<html><body>502 Bad Gateway</body></html>")
    run = await run_source(hub, app, mode="full")
    assert run["status"] == "failed" and "JSON" in run["error"]
    assert run["pages"] >= 1  # the hypervisors and the first servers page were ingested
    assets = await assets_by_id(hub, include_retired="true")
    assert set(assets) == EVERYTHING
    assert {a["lifecycle"] for a in assets.values()} == {"in_use"}
    assert not cloud.service_requests("/volumes/detail")[1:]  # the run stopped at the bad page


async def test_a_second_full_run_without_a_vm_retires_it_and_nothing_else(
    hub: Hub, app: Any, cloud: FakeOpenStack
) -> None:
    await create_source(hub)
    assert (await run_source(hub, app))["status"] == "success"
    cloud.removed.add(OCR)
    run = await run_source(hub, app, mode="full")
    assert run["status"] == "success", run["error"]
    assets = await assets_by_id(hub, include_retired="true")
    assert assets[OCR]["lifecycle"] == "retired"
    assert {a["lifecycle"] for k, a in assets.items() if k != OCR} == {"in_use"}
    assert set(await assets_by_id(hub)) == EVERYTHING - {OCR}


async def test_an_incremental_run_asks_for_changes_since_the_last_run_and_retires_nothing(
    hub: Hub, app: Any, cloud: FakeOpenStack
) -> None:
    await create_source(hub)
    first = await run_source(hub, app)
    assert first["status"] == "success"
    cloud.removed.update(SERVERS)  # an incremental run never lists everything, so never retires

    run = await run_source(hub, app, mode="incremental")
    assert run["status"] == "success", run["error"]
    assert run["mode"] == "incremental"
    asked = cloud.service_requests("/servers/detail")[-1]
    since = _utc(asked.url.params["changes-since"])
    expected = _utc(first["started_at"]) - timedelta(seconds=60)
    assert abs(since - expected) < timedelta(seconds=1)
    assert asked.url.params["all_tenants"] == "1"

    assets = await assets_by_id(hub, include_retired="true")
    assert set(assets) == EVERYTHING
    assert {a["lifecycle"] for a in assets.values()} == {"in_use"}
    assert assets[DB]["status"] == "running"  # started since the full run
    assert assets[BATCH]["status"] == "deleted"  # deleted in Nova: its status says so, it is not retired
    assert assets[WEB]["status"] == "running"

    # the next incremental run starts where this one started
    again = await run_source(hub, app, mode="incremental")
    asked = cloud.service_requests("/servers/detail")[-1]
    since = _utc(asked.url.params["changes-since"])
    assert abs(since - (_utc(run["started_at"]) - timedelta(seconds=60))) < timedelta(seconds=1)
    assert again["status"] == "success"


async def test_a_first_incremental_run_lists_every_server(hub: Hub, app: Any, cloud: FakeOpenStack) -> None:
    await create_source(hub)
    run = await run_source(hub, app, mode="incremental")
    assert run["status"] == "success", run["error"]
    assert all("changes-since" not in r.url.params for r in cloud.service_requests("/servers/detail"))
    assert set(await assets_by_id(hub)) == EVERYTHING


async def test_a_timeout_is_retried_and_one_that_persists_fails_the_run(
    hub: Hub, app: Any, cloud: FakeOpenStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.collectors.http.random.uniform", lambda low, high: 0.0)  # no back-off wait
    await create_source(hub)
    slow = cloud.fault(is_servers_page(3), raises=httpx.ReadTimeout)
    run = await run_source(hub, app)
    assert run["status"] == "success", run["error"]
    assert slow.hits == 1 and set(await assets_by_id(hub)) == EVERYTHING

    cloud.removed.add(WEB)
    cloud.fault(path_ends("/resource_providers"), raises=httpx.ConnectTimeout, times=100)
    run = await run_source(hub, app, mode="full")
    assert run["status"] == "failed" and "ConnectTimeout" in run["error"] and "已重试" in run["error"]
    assert (await assets_by_id(hub))[WEB]["lifecycle"] == "in_use"  # failed run: nothing retired


async def test_a_500_fails_the_run_at_once(hub: Hub, app: Any, cloud: FakeOpenStack) -> None:
    await create_source(hub)
    broken = cloud.fault(path_ends("/volumes/detail"), status=500, body=b'{"computeFault": {"code": 500}}')
    run = await run_source(hub, app)
    assert run["status"] == "failed" and "HTTP 500" in run["error"] and "volumes/detail" in run["error"]
    assert broken.hits == 1  # not retried
    response = await hub.get("/api/v1/admin/sources/gz-os")
    assert response.json()["data"]["consecutive_failures"] == 1
    assert response.json()["data"]["stale"] is True


@pytest.mark.parametrize(
    ("where", "body", "message"),
    [
        (path_ends("/servers/detail"), b'{"servers": "none"}', "servers"),
        (path_ends("/os-hypervisors/detail"), b'{"hypervisors": null}', "hypervisors"),
        (path_ends("/volumes/detail"), b"[1, 2, 3]", "volumes"),
        (path_ends("/resource_providers"), b'{"resource_providers": {}}', "resource_providers"),
        (path_ends("/inventories"), b"{not json", "JSON"),
    ],
)
async def test_a_malformed_answer_fails_the_run(
    hub: Hub, app: Any, cloud: FakeOpenStack, where: Any, body: bytes, message: str
) -> None:
    await create_source(hub)
    cloud.fault(where, status=200, body=body)
    run = await run_source(hub, app)
    assert run["status"] == "failed" and message in run["error"], run["error"]
    assert "内部错误" not in run["error"]


async def test_a_token_answer_without_x_subject_token_fails_the_run(
    hub: Hub, app: Any, cloud: FakeOpenStack
) -> None:
    await create_source(hub)
    cloud.fault(path_ends("/auth/tokens"), status=201, body=b'{"token": {"catalog": []}}')
    run = await run_source(hub, app)
    assert run["status"] == "failed" and "X-Subject-Token" in run["error"]


async def test_unreadable_items_are_skipped_and_counted(hub: Hub, app: Any, cloud: FakeOpenStack) -> None:
    await create_source(hub)
    cloud.pages[2]["servers"] += ["not a server", {"name": "no id"}]
    cloud.hypervisors["hypervisors"].append({"id": "x", "hypervisor_hostname": None})
    run = await run_source(hub, app)
    assert run["status"] == "success", run["error"]
    assert run["rejected"] == 3
    assert set(await assets_by_id(hub)) == EVERYTHING


async def test_a_missing_endpoint_fails_the_run_before_anything_is_stored(
    hub: Hub, app: Any, cloud: FakeOpenStack
) -> None:
    await create_source(hub)
    cloud.without_catalog_entry("placement")
    run = await run_source(hub, app)
    assert run["status"] == "failed" and "placement" in run["error"]
    assert run["pages"] == 0 and not cloud.service_requests("/servers/detail")

    # without volumes (options.volumes false) the catalogue needs no block storage, and volumes stay
    cloud.without_catalog_entry("volumev3")
    response = await hub.http.patch(
        "/api/v1/admin/sources/gz-os",
        json={"options": {"limit": 2, "volumes": False}, "kinds": ["assets"]},
        headers=hub.auth(hub.admin),
    )
    assert response.status_code == 200, response.text
    run = await run_source(hub, app)
    assert run["status"] == "success", run["error"]
    assert set(await assets_by_id(hub)) == {*SERVERS, *HOSTS}
