"""Who reported an asset, as each reader may see it, and the region scopes of clients (§14)."""

from __future__ import annotations

from typing import Any

from tests.helpers import Hub, batch, new_key, vm

P = "GD-GZ-ZWY-01"


async def _history(hub: Hub, key: str, uid: str) -> list[dict[str, Any]]:
    answer = await hub.get(f"/api/v1/assets/{uid}/history", key)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"]["items"])


async def test_reporter_names_the_client_and_only_admins_see_its_key(hub: Hub) -> None:
    await hub.create_platform(P)
    provider = await new_key(hub, "provider", name="广州政务云运营方", platforms=[P], require_signature=False)
    regulator = await hub.create_client("regulator", regions=["44"])
    pushed = await hub.push("assets", batch(P, "b1", [vm("vm-1")]), provider["bearer"])
    assert pushed.status_code == 200, pushed.text

    [as_regulator] = await hub.assets(regulator)
    assert as_regulator["reporter"] == {"name": "广州政务云运营方", "kind": "client"}
    assert provider["app_key"] not in str(as_regulator)
    uid = as_regulator["asset_uid"]
    one = (await hub.get(f"/api/v1/assets/{uid}", regulator)).json()["data"]
    assert one["reporter"] == {"name": "广州政务云运营方", "kind": "client"}
    [revision] = await _history(hub, regulator, uid)
    assert revision["reporter"] == {"name": "广州政务云运营方", "kind": "client"}
    synced = (await hub.get("/api/v1/assets", regulator, updated_since="2026-01-01T00:00:00Z")).json()
    assert synced["data"]["items"][0]["reporter"] == {"name": "广州政务云运营方", "kind": "client"}
    # the provider itself is no admin either
    [own] = await hub.assets(provider["bearer"])
    assert own["reporter"] == {"name": "广州政务云运营方", "kind": "client"}

    expected = {"name": "广州政务云运营方", "kind": "client", "app_key": provider["app_key"]}
    [as_admin] = await hub.assets()
    assert as_admin["reporter"] == expected
    assert (await hub.get(f"/api/v1/assets/{uid}")).json()["data"]["reporter"] == expected
    assert (await _history(hub, hub.admin, uid))[0]["reporter"] == expected


async def test_region_scopes_of_3_or_5_digits_are_refused(hub: Hub) -> None:
    await hub.create_platform(P)
    for regions in (["440"], ["44010"], ["44", "4401001"], ["04"]):
        answer = await hub.http.post(
            "/api/v1/admin/clients",
            json={"name": "r", "role": "regulator", "regions": regions},
            headers=hub.auth(hub.admin),
        )
        assert (answer.status_code, answer.json()["code"]) == (422, "1002"), (regions, answer.text)
        assert answer.json()["errors"][0]["loc"].startswith("regions["), answer.text
    created = await new_key(hub, "regulator", regions=["44", "4401", "440100"])
    assert created["regions"] == ["44", "4401"]
    path = f"/api/v1/admin/clients/{created['app_key']}"
    answer = await hub.http.patch(path, json={"regions": ["44011"]}, headers=hub.auth(hub.admin))
    assert (answer.status_code, answer.json()["code"]) == (422, "1002"), answer.text
    assert answer.json()["errors"][0]["loc"] == "regions[0]"
    answer = await hub.http.patch(path, json={"regions": ["4403"]}, headers=hub.auth(hub.admin))
    assert answer.status_code == 200 and answer.json()["data"]["regions"] == ["4403"]


async def test_a_hub_source_s_region_of_3_or_5_digits_is_refused(hub: Hub) -> None:
    for region in ("440", "44010"):
        body = {
            "source_id": "city",
            "type": "hub",
            "base_url": "http://10.0.0.9",
            "credentials": {"token": "ak_0123456789abcdef0123.secret-value"},
            "kinds": ["assets"],
            "options": {"region": region},
        }
        answer = await hub.http.post("/api/v1/admin/sources", json=body, headers=hub.auth(hub.admin))
        assert (answer.status_code, answer.json()["code"]) == (422, "1002"), answer.text
        assert "options.region" in answer.text
