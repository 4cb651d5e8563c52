"""Client administration (§10)."""

from __future__ import annotations

from tests.helpers import Hub

P = "GD-GZ-ZWY-01"


async def test_rotating_a_key_keeps_the_old_secret_valid_for_the_overlap_only(hub: Hub) -> None:
    await hub.create_platform(P)
    old = await hub.create_client("regulator", regions=["440000"])
    app_key = old.split(".", 1)[0]
    rotated = await hub.http.post(f"/api/v1/admin/clients/{app_key}/rotate", headers=hub.auth(hub.admin))
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["data"]["bearer"]
    assert new != old and rotated.json()["data"]["previous_valid_until"]
    assert (await hub.get("/api/v1/assets", new)).status_code == 200
    assert (await hub.get("/api/v1/assets", old)).status_code == 200  # inside the overlap
    rotated_again = await hub.http.post(
        f"/api/v1/admin/clients/{app_key}/rotate", headers=hub.auth(hub.admin)
    )
    newest = rotated_again.json()["data"]["bearer"]
    assert (await hub.get("/api/v1/assets", old)).json()["code"] == "2002"  # two rotations ago
    assert (await hub.get("/api/v1/assets", newest)).status_code == 200


async def test_a_deployment_adds_and_disables_metric_codes(hub: Hub) -> None:
    from tests.helpers import batch, now_utc, rfc3339

    await hub.create_platform(P)
    catalog = (await hub.get("/api/v1/admin/metric-catalog")).json()["data"]
    kept = [m for m in catalog if m["code"] != "hw.fan.rpm"]
    gpu = {"code": "gpu.util", "name_zh": "GPU使用率", "unit": "%", "kind": "gauge"}
    answer = await hub.http.put(
        "/api/v1/admin/metric-catalog", json={"metrics": [*kept, gpu]}, headers=hub.auth(hub.admin)
    )
    assert answer.status_code == 200, answer.text
    codes = {m["code"]: m["enabled"] for m in answer.json()["data"]}
    assert codes["gpu.util"] is True and codes["hw.fan.rpm"] is False  # disabled, never deleted
    ts = rfc3339(now_utc())
    pushed = await hub.push(
        "metrics",
        batch(
            P,
            "m1",
            [
                {"metric": "gpu.util", "ts": ts, "value": 40.0},
                {"metric": "hw.fan.rpm", "ts": ts, "value": 3000.0},
            ],
        ),
    )
    data = pushed.json()["data"]
    assert (data["accepted"], data["errors"][0]["loc"]) == (1, "records[1].metric")
    public = {m["code"] for m in (await hub.get("/api/v1/catalog")).json()["data"]["metrics"]}
    assert "gpu.util" in public and "hw.fan.rpm" not in public
    bad = await hub.http.put(
        "/api/v1/admin/metric-catalog",
        json={"metrics": [{**gpu, "code": "GPU Util"}]},
        headers=hub.auth(hub.admin),
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "1002")


async def test_a_deployment_changes_a_domestic_list_and_assets_are_judged_by_it(hub: Hub) -> None:
    from tests.helpers import batch, vm

    await hub.create_platform(P)
    asset = vm("vm-1", cpu_vendor="Ampere", os_name="Kylin V10")
    await hub.push("assets", batch(P, "a1", [asset]))
    assert (await hub.assets())[0]["is_domestic"] is False
    lists = (await hub.get("/api/v1/admin/domestic-lists")).json()["data"]
    cpu = [*lists["cpu_vendor"], {"entry": "安培 Ampere（示例）", "aliases": ["Ampere"]}]
    answer = await hub.http.put(
        "/api/v1/admin/domestic-lists", json={"lists": {"cpu_vendor": cpu}}, headers=hub.auth(hub.admin)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["os"] == lists["os"]  # lists not named keep their entries
    await hub.push("assets", batch(P, "a2", [asset]))
    judged = (await hub.assets())[0]
    assert judged["is_domestic"] is True
    assert judged["domestic"]["cpu"]["basis"]["entry"] == "安培 Ampere（示例）"
    regulator = await hub.create_client("regulator", regions=["44"])
    refused = await hub.http.put(
        "/api/v1/admin/domestic-lists", json={"lists": {"os": []}}, headers=hub.auth(regulator)
    )
    assert refused.json()["code"] == "2006"
    events = await hub.http.get(
        "/api/v1/admin/audit", params={"path": "/api/v1/admin/domestic-lists"}, headers=hub.auth(hub.admin)
    )
    assert sorted(e["status"] for e in events.json()["data"]["items"] if e["method"] == "PUT") == [200, 403]


async def test_a_domestic_list_with_a_duplicate_entry_is_refused_with_its_name(hub: Hub) -> None:
    body = {"lists": {"os": [{"entry": "麒麟 Kylin"}, {"entry": "麒麟 Kylin", "aliases": ["Kylin"]}]}}
    answer = await hub.http.put("/api/v1/admin/domestic-lists", json=body, headers=hub.auth(hub.admin))
    assert (answer.status_code, answer.json()["code"]) == (422, "1002")
    assert "麒麟 Kylin" in answer.text
    lists = (await hub.get("/api/v1/admin/domestic-lists")).json()["data"]
    assert len(lists["os"]) == 5  # nothing changed
