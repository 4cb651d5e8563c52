"""Inputs that reach PostgreSQL's limits must be refused per record, never a 500."""

from __future__ import annotations

from tests.helpers import Hub, batch, vm

P = "GD-GZ-ZWY-01"


async def test_nul_characters_are_refused_per_record_and_quarantined_as_sent(hub: Hub) -> None:
    await hub.create_platform(P)
    records = [vm("vm-1"), vm("vm-2", name="bad\u0000name"), vm("vm-3", **{"odd\u0000key": 1})]
    response = await hub.push("assets", batch(P, "nul", records))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["accepted"], data["rejected"]) == (1, 2)
    assert {e["index"] for e in data["errors"]} == {1, 2}
    receipt = (await hub.get("/api/v1/reports/batches/nul")).json()["data"]
    assert [q["record"] for q in receipt["quarantined"]] == records[1:]


async def test_values_beyond_column_ranges_are_refused_per_record(hub: Hub) -> None:
    await hub.create_platform(P)
    records = [
        vm("vm-1", cpu_cores=2**31),
        vm("vm-2", source_updated_at="0001-01-01T00:00:00+08:00"),
        {"room_code": "R", "name": "x" * 300},
        vm("vm-4", name="名" * 256),
    ]
    response = await hub.push("assets", batch(P, "range", records))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert {e["index"] for e in data["errors"]} == {0, 1, 2}
    assert [a["asset_id"] for a in await hub.assets()] == ["vm-4"]
    room = {
        "room_code": "R1",
        "name": "机" * 256,
        "datacenter_code": "DC",
        "datacenter_name": "中" * 256,
        "region_code": "440100",
        "gb50174_class": "B",
        "aisle_containment": False,
    }
    assert (await hub.push("rooms", batch(P, "room", [room]))).json()["data"]["accepted"] == 1



async def test_a_nul_in_a_query_or_path_is_400_on_every_route(hub: Hub) -> None:
    await hub.create_platform(P)
    for path, params in [
        ("/api/v1/assets", {"using_unit": "a\u0000b"}),
        ("/api/v1/logs", {"actor": "\u0000"}),
        ("/api/v1/assets/abc%00def", {}),
        ("/api/v1/platforms", {"region_code": "44\u0000"}),
    ]:
        answer = await hub.http.get(path, params=params, headers=hub.auth(hub.admin))
        assert (answer.status_code, answer.json()["code"]) == (400, "1001"), (path, answer.text)
