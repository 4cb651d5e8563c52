"""The push interface (§4): each kind stored, partial acceptance, replays, conflicts."""

from __future__ import annotations

import gzip
from typing import Any

import orjson

from tests.helpers import Hub, batch, now_utc, rfc3339, vm

P = "GD-GZ-ZWY-01"


async def test_each_kind_is_stored_and_answered_with_a_receipt(hub: Hub) -> None:
    await hub.create_platform(P)
    ts = rfc3339(now_utc())
    room = {
        "room_code": "R1",
        "name": "一号机房",
        "datacenter_code": "DC1",
        "datacenter_name": "南沙数据中心",
        "region_code": "440115",
        "gb50174_class": "A",
        "aisle_containment": True,
    }
    bodies: dict[str, list[dict[str, Any]]] = {
        "rooms": [room],
        "assets": [vm("vm-1")],
        "logs": [
            {
                "log_id": "L1",
                "category": "operation",
                "type": "login",
                "event_time": ts,
                "severity": 6,
                "actor": "alice",
                "action": "login",
                "outcome": "success",
                "message": "登录成功",
            }
        ],
        "metrics": [{"metric": "cpu.util", "ts": ts, "value": 12.5, "asset_id": "vm-1"}],
        "environment": [
            {"room_code": "R1", "point_code": "T1", "point_type": "cold_aisle_temp", "ts": ts, "value": 23.4}
        ],
        "alarms": [{"alarm_id": "A1", "level": 2, "status": "active", "title": "CPU 过高", "first_at": ts}],
    }
    for kind, records in bodies.items():
        response = await hub.push(kind, batch(P, f"{kind}-1", records))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["code"] == "0" and body["request_id"]
        data = body["data"]
        assert (data["batch_id"], data["kind"], data["status"]) == (f"{kind}-1", kind, "accepted")
        assert (data["received"], data["accepted"], data["rejected"]) == (1, 1, 0)
        assert data["errors"] == [] and "received_at" in data

    assets = await hub.assets()
    assert [a["asset_id"] for a in assets] == ["vm-1"]
    assert assets[0]["lifecycle"] == "in_use" and assets[0]["network_zone"] == "gov_extranet"
    verify = (await hub.get("/api/v1/logs/verify", platform_code=P)).json()["data"]
    assert verify["ok"] is True and verify["checked"] == 1


async def test_a_mixed_batch_keeps_the_good_records_and_quarantines_the_bad(hub: Hub) -> None:
    await hub.create_platform(P)
    records = [
        vm("vm-1"),
        vm("vm-2", cpu_arch="itanium"),  # outside the enumeration
        vm("vm-3"),
        {"asset_id": "vm-4", "asset_type": "vm", "status": "running"},  # name missing
        vm("vm-5", cpu_cores="8"),  # wrong type: never coerced
        "not an object",
    ]
    response = await hub.push("assets", batch(P, "mixed-1", records))
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["status"], data["received"], data["accepted"], data["rejected"]) == ("partial", 6, 2, 4)
    by_index = {e["index"]: e for e in data["errors"]}
    assert set(by_index) == {1, 3, 4, 5}
    assert by_index[1]["loc"] == "records[1].cpu_arch"
    assert by_index[3]["loc"] == "records[3].name"
    assert by_index[4]["loc"] == "records[4].cpu_cores"
    assert all(e["message"] for e in data["errors"])
    assert sorted(a["asset_id"] for a in await hub.assets()) == ["vm-1", "vm-3"]

    receipt = (await hub.get("/api/v1/reports/batches/mixed-1")).json()["data"]
    assert receipt["status"] == "partial"
    quarantined = {q["index"]: q for q in receipt["quarantined"]}
    assert set(quarantined) == {1, 3, 4, 5}
    assert quarantined[1]["record"] == records[1]  # kept raw, as sent
    assert quarantined[5]["record"] == "not an object"


async def test_an_all_invalid_batch_is_422_and_does_not_use_up_its_id(hub: Hub) -> None:
    await hub.create_platform(P)
    bad = await hub.push("assets", batch(P, "b-1", [vm("vm-1", status="exploded")]))
    assert bad.status_code == 422
    body = bad.json()
    assert body["code"] == "1002" and body["data"]["status"] == "rejected"
    assert body["errors"][0]["index"] == 0 and body["errors"][0]["loc"] == "records[0].status"
    assert await hub.assets() == []

    fixed = await hub.push("assets", batch(P, "b-1", [vm("vm-1")]))
    assert fixed.status_code == 200 and fixed.json()["data"]["status"] == "accepted"
    assert [a["asset_id"] for a in await hub.assets()] == ["vm-1"]


async def test_a_replayed_batch_returns_the_original_receipt_and_stores_nothing_again(hub: Hub) -> None:
    await hub.create_platform(P)
    ts = rfc3339(now_utc())
    log = {
        "category": "system",
        "type": "boot",
        "event_time": ts,
        "severity": 6,
        "action": "boot",
        "outcome": "success",
        "message": "started",
    }
    body = batch(P, "logs-1", [log, {**log, "message": "second"}])
    first = await hub.push("logs", body)
    again = await hub.push("logs", body)
    assert first.status_code == again.status_code == 200
    assert "idempotent-replay" not in first.headers
    assert again.headers["idempotent-replay"] == "true"
    assert again.json()["data"] == first.json()["data"]
    verify = (await hub.get("/api/v1/logs/verify", platform_code=P)).json()["data"]
    assert verify["head_seq"] == 2 and verify["ok"]

    # the same body compressed is the same body: replay, not conflict
    zipped = await hub.push("logs", body, gzip_body=True)
    assert zipped.status_code == 200 and zipped.headers["idempotent-replay"] == "true"


async def test_a_batch_id_reused_with_another_body_is_409(hub: Hub) -> None:
    await hub.create_platform(P)
    assert (await hub.push("assets", batch(P, "same", [vm("vm-1")]))).status_code == 200
    response = await hub.push("assets", batch(P, "same", [vm("vm-2")]))
    assert response.status_code == 409 and response.json()["code"] == "3001"
    assert [a["asset_id"] for a in await hub.assets()] == ["vm-1"]
    # batch ids are per (platform, kind): the same id under another kind is a new batch
    ts = rfc3339(now_utc())
    metric = {"metric": "cpu.util", "ts": ts, "value": 1.0}
    assert (await hub.push("metrics", batch(P, "same", [metric]))).status_code == 200


async def test_the_last_occurrence_of_a_key_in_a_batch_wins(hub: Hub) -> None:
    await hub.create_platform(P)
    records = [vm("vm-1", name="first"), vm("vm-2"), vm("vm-1", name="last")]
    data = (await hub.push("assets", batch(P, "dup", records))).json()["data"]
    assert data["accepted"] == 3
    assert any(w.get("index") == 0 for w in data["warnings"])
    names = {a["asset_id"]: a["name"] for a in await hub.assets()}
    assert names == {"vm-1": "last", "vm-2": "vm vm-2"}


async def test_unknown_fields_are_ignored_and_named_in_warnings(hub: Hub) -> None:
    await hub.create_platform(P)
    data = (await hub.push("assets", batch(P, "w", [vm("vm-1", colour="blue")]))).json()["data"]
    assert data["status"] == "accepted"
    assert any("colour" in w["message"] and w["index"] == 0 for w in data["warnings"])
    assert "colour" not in (await hub.assets())[0]


async def test_every_member_of_a_gzip_body_is_decoded(hub: Hub) -> None:
    """RFC 1952 §2.2: a gzip file is a series of members; ``gzip(a) + gzip(b)`` is ``a + b``."""
    await hub.create_platform(P)
    body = orjson.dumps(batch(P, "members-1", [vm("vm-1"), vm("vm-2")]))
    half = len(body) // 2
    members = gzip.compress(body[:half]) + gzip.compress(body[half:])
    headers = {"Content-Encoding": "gzip"}
    answer = await hub.push("assets", None, raw=members, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["accepted"] == 2
    # zero padding after the last member is ignored, as gzip itself does; other trailing bytes are not
    padded = await hub.push("assets", None, raw=members + b"\0" * 64, headers=headers)
    assert padded.status_code == 200 and padded.headers["idempotent-replay"] == "true"
    trailing = await hub.push("assets", None, raw=members + b"garbage", headers=headers)
    assert (trailing.status_code, trailing.json()["code"]) == (422, "1002")
    assert sorted(a["asset_id"] for a in await hub.assets()) == ["vm-1", "vm-2"]


async def test_the_size_cap_counts_every_gzip_member(small_hub: Hub) -> None:
    await small_hub.create_platform(P)
    first = orjson.dumps(batch(P, "members-2", [vm("vm-1", description="d" * 1200)]))
    # the first member alone is within the 2 000 byte cap; with the second it is not
    members = gzip.compress(first[:-1]) + gzip.compress(b" " * 1500 + first[-1:])
    answer = await small_hub.push("assets", None, raw=members, headers={"Content-Encoding": "gzip"})
    assert (answer.status_code, answer.json()["code"]) == (413, "1003")
