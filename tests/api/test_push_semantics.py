"""The push interface's semantics (§2, §2.1, §4): merge-patch and history, insert-only logs and
their chain, complete snapshots, domestic verdicts, per-record validation and whole-body limits.

Every test drives the hub over HTTP and reads the stored state back through the API. Two
exceptions, both marked: rooms have no read endpoint yet (their merge-patch is read from the
``room`` table), and the log-chain tamper tests change ``log_record`` rows behind the hub's back.
"""

from __future__ import annotations

import gzip
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import Hub, batch, now_utc, rfc3339, vm

P = "GD-GZ-ZWY-01"
#: §2: asset_uid = uuid5(this namespace, "{platform_code}|{asset_id}")
UID_NAMESPACE = uuid.UUID("014f5156-d3bb-4a1f-b52d-ec5938c65eae")


# --- small helpers ---
def uid(asset_id: str, platform: str = P) -> str:
    return str(uuid.uuid5(UID_NAMESPACE, f"{platform}|{asset_id}"))


def ago(**delta: float) -> str:
    return rfc3339(now_utc() - timedelta(**delta))


def ahead(**delta: float) -> str:
    return rfc3339(now_utc() + timedelta(**delta))


def room(code: str = "R1", **fields: Any) -> dict[str, Any]:
    return {
        "room_code": code,
        "name": f"机房 {code}",
        "datacenter_code": "DC1",
        "datacenter_name": "南沙数据中心",
        "region_code": "440115",
        "gb50174_class": "A",
        "aisle_containment": True,
        **fields,
    }


def sample(point: str = "T1", point_type: str = "cold_aisle_temp", **fields: Any) -> dict[str, Any]:
    return {
        "room_code": "R1",
        "point_code": point,
        "point_type": point_type,
        "ts": ago(minutes=1),
        "value": 23.5,
        **fields,
    }


def log(log_id: str | None = None, **fields: Any) -> dict[str, Any]:
    record = {
        "category": "operation",
        "type": "login",
        "event_time": ago(minutes=1),
        "severity": 6,
        "actor": "alice",
        "action": "login",
        "outcome": "success",
        "message": "登录成功",
        **fields,
    }
    if log_id is not None:
        record["log_id"] = log_id
    return record


def metric(**fields: Any) -> dict[str, Any]:
    return {"metric": "cpu.util", "ts": ago(minutes=1), "value": 12.5, **fields}


def alarm(**fields: Any) -> dict[str, Any]:
    return {"alarm_id": "A1", "level": 2, "status": "active", "title": "CPU 过高", **fields}


def snap(snapshot_id: str, seq: int, last: bool, types: list[str] | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"id": snapshot_id, "seq": seq, "last": last}
    if types is not None:
        info["asset_types"] = types
    return info


async def push_ok(hub: Hub, kind: str, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    """Push a batch that must be answered 200; its receipt."""
    response = await hub.push(kind, body, key)
    assert response.status_code == 200, response.text
    assert response.json()["code"] == "0"
    return response.json()["data"]  # type: ignore[no-any-return]


async def patch_platform(hub: Hub, code: str, **fields: Any) -> dict[str, Any]:
    response = await hub.http.patch(
        f"/api/v1/admin/platforms/{code}", json=fields, headers=hub.auth(hub.admin)
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def asset(hub: Hub, asset_id: str) -> dict[str, Any]:
    response = await hub.get(f"/api/v1/assets/{uid(asset_id)}")
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def history(hub: Hub, asset_id: str) -> list[dict[str, Any]]:
    """Revisions, newest first."""
    response = await hub.get(f"/api/v1/assets/{uid(asset_id)}/history")
    assert response.status_code == 200, response.text
    return response.json()["data"]["items"]  # type: ignore[no-any-return]


def field_changes(revision: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {c["field"]: (c["old"], c["new"]) for c in revision["changes"]}


async def lifecycles(hub: Hub) -> dict[str, str]:
    return {a["asset_id"]: a["lifecycle"] for a in await hub.assets(include_retired="true")}


async def verify(hub: Hub) -> dict[str, Any]:
    response = await hub.get("/api/v1/logs/verify", platform_code=P)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def warned(receipt: dict[str, Any], index: int) -> list[str]:
    return [w["message"] for w in receipt["warnings"] if w.get("index") == index]


def errors_by_index(receipt: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {e["index"]: e for e in receipt["errors"]}


# --- 1. assets: merge-patch, defaults, history ---
async def test_asset_merge_patch_keeps_absent_fields_clears_nulls_and_applies_defaults_only_on_create(
    hub: Hub,
) -> None:
    await hub.create_platform(P)  # network_zone gov_extranet
    await push_ok(
        hub,
        "assets",
        batch(
            P,
            "a-1",
            [
                vm("vm-1", using_unit="市政务服务数据管理局", business_system="一网通办", os_name="CentOS 7"),
                vm("vm-2", lifecycle="maintenance", network_zone="private"),
            ],
        ),
    )
    one = await asset(hub, "vm-1")
    assert (one["lifecycle"], one["network_zone"]) == ("in_use", "gov_extranet")  # defaults on create

    # the platform's zone changes; later updates that omit network_zone / lifecycle keep what is stored
    await patch_platform(hub, P, network_zone="internet")
    await push_ok(
        hub,
        "assets",
        batch(P, "a-2", [vm("vm-1", name="renamed", using_unit=None), vm("vm-2"), vm("vm-3")]),
    )
    one, two, three = [await asset(hub, a) for a in ("vm-1", "vm-2", "vm-3")]
    assert one["name"] == "renamed"
    assert one["using_unit"] is None  # null clears
    assert one["business_system"] == "一网通办" and one["os_name"] == "CentOS 7"  # absent keeps
    assert (one["lifecycle"], one["network_zone"]) == ("in_use", "gov_extranet")
    assert (two["lifecycle"], two["network_zone"]) == ("maintenance", "private")
    # a row created now takes the platform's current zone
    assert (three["lifecycle"], three["network_zone"]) == ("in_use", "internet")


async def test_asset_history_lists_old_and_new_per_changed_field_with_the_batch(hub: Hub) -> None:
    await hub.create_platform(P)
    full = vm(
        "vm-1",
        using_unit="市教育局",
        business_system="智慧校园",
        tags={"env": "prod", "owner": "edu"},
        ip_addresses=[{"ip": "10.0.0.5", "kind": "business"}, {"ip": "172.16.0.5", "kind": "mgmt"}],
        purchase_date="2025-03-01",
        source_updated_at="2026-11-20T08:00:00+08:00",
        vcpus=8,
        memory_mib=16384,
        disk_gib=100.5,
        cpu_arch="x86_64",
    )
    await push_ok(hub, "assets", batch(P, "h-1", [full]))
    created = await history(hub, "vm-1")
    assert len(created) == 1 and created[0]["created"] is True and created[0]["batch_id"] == "h-1"

    await push_ok(
        hub, "assets", batch(P, "h-2", [vm("vm-1", name="教务系统主机", using_unit=None, vcpus=16)])
    )
    revisions = await history(hub, "vm-1")
    assert len(revisions) == 2
    newest = revisions[0]
    assert newest["batch_id"] == "h-2" and newest["changed_at"]
    assert field_changes(newest) == {
        "name": ("vm vm-1", "教务系统主机"),
        "using_unit": ("市教育局", None),
        "vcpus": (8, 16),
    }

    # the same content again under a new batch id (times in another offset): no new revision
    same = {
        **full,
        "name": "教务系统主机",
        "using_unit": None,
        "vcpus": 16,
        "source_updated_at": "2026-11-20T00:00:00Z",
    }
    receipt = await push_ok(hub, "assets", batch(P, "h-3", [same]))
    assert receipt["accepted"] == 1
    assert len(await history(hub, "vm-1")) == 2


async def test_volatile_fields_update_the_asset_without_growing_its_history(hub: Hub) -> None:
    await hub.create_platform(P)
    volume = {
        "asset_id": "vol-1",
        "asset_type": "volume",
        "name": "数据盘",
        "status": "running",
        "capacity_gib": 500.0,
        "used_gib": 10.0,
        "source_updated_at": ago(hours=2),
    }
    await push_ok(hub, "assets", batch(P, "v-1", [volume]))
    later = ago(minutes=5)
    await push_ok(hub, "assets", batch(P, "v-2", [{**volume, "used_gib": 250.0, "source_updated_at": later}]))
    stored = await asset(hub, "vol-1")
    assert stored["used_gib"] == 250.0
    assert datetime.fromisoformat(stored["source_updated_at"]) == datetime.fromisoformat(later)
    assert len(await history(hub, "vol-1")) == 1  # only the creation

    # a non-volatile change in the same push is kept (and only it)
    await push_ok(hub, "assets", batch(P, "v-3", [{**volume, "used_gib": 300.0, "capacity_gib": 1000.0}]))
    revisions = await history(hub, "vol-1")
    assert len(revisions) == 2
    assert field_changes(revisions[0]) == {"capacity_gib": (500.0, 1000.0)}
    assert (await asset(hub, "vol-1"))["used_gib"] == 300.0


# --- 2. rooms and alarms merge-patch ---
async def test_room_merge_patch_keeps_absent_fields_and_clears_nulls(hub: Hub, engine: AsyncEngine) -> None:
    await hub.create_platform(P)
    await push_ok(
        hub, "rooms", batch(P, "r-1", [room("R1", address="广州市南沙区", rack_count=40, area_m2=300.0)])
    )
    await push_ok(hub, "rooms", batch(P, "r-2", [room("R1", name="一号机房", rack_count=None)]))
    # rooms have no read endpoint yet: read the stored row
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT name, address, rack_count, area_m2 FROM room"
                    " WHERE platform_code = :p AND room_code = 'R1'"
                ),
                {"p": P},
            )
        ).one()
    assert tuple(row) == ("一号机房", "广州市南沙区", None, 300.0)


async def test_alarm_last_at_is_merge_patched_and_an_older_update_is_ignored_with_a_warning(hub: Hub) -> None:
    await hub.create_platform(P)
    t0, t1, t2 = ago(minutes=30), ago(minutes=20), ago(minutes=10)
    first = await push_ok(hub, "alarms", batch(P, "al-1", [alarm(first_at=t0, last_at=t2)]))
    assert first["warnings"] == []
    # last_at absent: the stored one is kept ...
    assert (await push_ok(hub, "alarms", batch(P, "al-2", [alarm(first_at=t0, title="CPU 持续过高")])))[
        "warnings"
    ] == []
    # ... so an update older than it is ignored and named in warnings[] (not rejected)
    stale = await push_ok(hub, "alarms", batch(P, "al-3", [alarm(first_at=t0, last_at=t1)]))
    assert (stale["status"], stale["accepted"], stale["rejected"]) == ("accepted", 1, 0)
    assert any("last_at" in m for m in warned(stale, 0)), stale["warnings"]
    # null clears last_at: the same older update is then taken without a warning
    assert (await push_ok(hub, "alarms", batch(P, "al-4", [alarm(first_at=t0, last_at=None)])))[
        "warnings"
    ] == []
    assert (await push_ok(hub, "alarms", batch(P, "al-5", [alarm(first_at=t0, last_at=t1)])))[
        "warnings"
    ] == []


async def test_a_cleared_alarm_is_not_reactivated_by_an_older_update(hub: Hub) -> None:
    await hub.create_platform(P)
    t0, t1, t2 = ago(minutes=30), ago(minutes=20), ago(minutes=10)
    await push_ok(hub, "alarms", batch(P, "c-1", [alarm(first_at=t0, last_at=t1)]))
    cleared = await push_ok(
        hub, "alarms", batch(P, "c-2", [alarm(first_at=t0, status="cleared", cleared_at=t2)])
    )
    assert cleared["warnings"] == []
    # an "active" that is older than the clearing: ignored, with a warning
    old_active = await push_ok(hub, "alarms", batch(P, "c-3", [alarm(first_at=t0)]))
    assert warned(old_active, 0), old_active
    # had it been re-activated, the same update would now pass silently
    again = await push_ok(hub, "alarms", batch(P, "c-4", [alarm(first_at=t0, message="重复")]))
    assert warned(again, 0), again
    # a cleared_at older than the stored one is ignored too
    older_clear = await push_ok(
        hub, "alarms", batch(P, "c-5", [alarm(first_at=t0, status="cleared", cleared_at=t1)])
    )
    assert any("cleared_at" in m for m in warned(older_clear, 0)), older_clear["warnings"]
    # a newer occurrence does re-open it
    newer = await push_ok(hub, "alarms", batch(P, "c-6", [alarm(first_at=t0, last_at=ago(minutes=1))]))
    assert newer["warnings"] == []


# --- 3. environment ---
async def test_environment_samples_need_a_reported_room(hub: Hub) -> None:
    await hub.create_platform(P)
    body = batch(P, "e-1", [sample(room_code="R9")])
    refused = await hub.push("environment", body)
    assert refused.status_code == 422 and refused.json()["code"] == "1002"
    assert refused.json()["errors"][0]["loc"] == "records[0].room_code"

    await push_ok(hub, "rooms", batch(P, "r-1", [room("R9")]))
    receipt = await push_ok(hub, "environment", body)  # the rejected batch did not use up its id
    assert (receipt["status"], receipt["accepted"], receipt["errors"]) == ("accepted", 1, [])


async def test_a_point_keeps_the_type_it_was_first_seen_with(hub: Hub) -> None:
    await hub.create_platform(P)
    await push_ok(hub, "rooms", batch(P, "r-1", [room()]))
    await push_ok(hub, "environment", batch(P, "e-1", [sample("T1", ts=ago(minutes=3))]))
    other = await hub.push(
        "environment", batch(P, "e-2", [sample("T1", "hot_aisle_temp", ts=ago(minutes=2))])
    )
    assert other.status_code == 422
    assert other.json()["errors"][0]["loc"] == "records[0].point_type"

    # within one batch the first sight of a new point wins
    records = [
        sample("T2", "rack_inlet_temp", ts=ago(minutes=3)),
        sample("T2", "cold_aisle_rh", ts=ago(minutes=2), value=45.0),
        sample("T1", ts=ago(minutes=2)),
    ]
    receipt = await push_ok(hub, "environment", batch(P, "e-3", records))
    assert (receipt["status"], receipt["accepted"]) == ("partial", 2)
    assert [e["loc"] for e in receipt["errors"]] == ["records[1].point_type"]
    later = await push_ok(hub, "environment", batch(P, "e-4", [sample("T2", "rack_inlet_temp")]))
    assert later["status"] == "accepted"


async def test_a_corrected_environment_sample_is_accepted(hub: Hub) -> None:
    await hub.create_platform(P)
    await push_ok(hub, "rooms", batch(P, "r-1", [room()]))
    ts = ago(minutes=2)
    await push_ok(hub, "environment", batch(P, "e-1", [sample(ts=ts, value=23.5)]))
    corrected = await push_ok(hub, "environment", batch(P, "e-2", [sample(ts=ts, value=24.1)]))
    assert (corrected["status"], corrected["accepted"], corrected["rejected"], corrected["errors"]) == (
        "accepted",
        1,
        0,
        [],
    )


# --- 4. logs ---
async def test_logs_are_insert_only(hub: Hub) -> None:
    await hub.create_platform(P)
    at = now_utc() - timedelta(minutes=2)
    l1, l2 = log("L1", event_time=rfc3339(at)), log("L2", message="退出")
    await push_ok(hub, "logs", batch(P, "l-1", [l1, l2]))
    assert (await verify(hub))["head_seq"] == 2

    # same id, same content (the time in another offset is the same instant): a no-op with a warning
    same = {**l1, "event_time": rfc3339(at, offset_hours=0)}
    replay = await push_ok(hub, "logs", batch(P, "l-2", [same]))
    assert (replay["status"], replay["accepted"]) == ("accepted", 1)
    assert warned(replay, 0)
    assert (await verify(hub))["head_seq"] == 2

    # same id, other content: that record is rejected, the others are stored
    changed = await push_ok(hub, "logs", batch(P, "l-3", [{**l1, "message": "改过的"}, log("L3")]))
    assert (changed["status"], changed["accepted"], changed["rejected"]) == ("partial", 1, 1)
    error = changed["errors"][0]
    assert error["index"] == 0 and "日志不可修改" in error["message"]
    check = await verify(hub)
    assert (check["head_seq"], check["ok"], check["checked"]) == (3, True, 3)


async def test_logs_without_log_id_are_deduplicated_by_content(hub: Hub) -> None:
    await hub.create_platform(P)
    event = log(category="system", type="boot", action="boot", message="系统启动", event_time=ago(minutes=3))
    first = await push_ok(hub, "logs", batch(P, "n-1", [event, dict(event)]))
    assert first["accepted"] == 2 and first["warnings"]
    assert (await verify(hub))["head_seq"] == 1
    again = await push_ok(hub, "logs", batch(P, "n-2", [dict(event), {**event, "message": "系统重启"}]))
    assert (again["status"], again["rejected"]) == ("accepted", 0)
    assert warned(again, 0)
    assert (await verify(hub))["head_seq"] == 2


async def test_operation_and_audit_logs_need_an_actor(hub: Hub) -> None:
    await hub.create_platform(P)
    records = [
        {k: v for k, v in log("O1").items() if k != "actor"},
        log("A1", category="audit", actor=""),
        {k: v for k, v in log("S1", category="security", type="waf_block").items() if k != "actor"},
        log("A2", category="audit", actor="auditor"),
    ]
    receipt = await push_ok(hub, "logs", batch(P, "a-1", records))
    assert (receipt["status"], receipt["accepted"], receipt["rejected"]) == ("partial", 2, 2)
    errors = errors_by_index(receipt)
    assert set(errors) == {0, 1}
    assert all("actor" in e["message"] and e["loc"].startswith(f"records[{i}]") for i, e in errors.items())
    assert (await verify(hub))["head_seq"] == 2


async def test_the_log_chain_verifies_across_batches_and_detects_a_changed_row(
    hub: Hub, engine: AsyncEngine
) -> None:
    await hub.create_platform(P)
    for n in range(3):
        await push_ok(hub, "logs", batch(P, f"c-{n}", [log(f"L{n}a"), log(f"L{n}b", actor="bob")]))
    check = await verify(hub)
    assert (check["ok"], check["head_seq"], check["checked"], check["first_broken_seq"]) == (True, 6, 6, None)

    async with engine.begin() as conn:  # tampering behind the hub's back
        await conn.execute(text("UPDATE log_record SET message='x' WHERE seq=2"))
    broken = await verify(hub)
    assert (broken["ok"], broken["first_broken_seq"]) == (False, 2)


async def test_the_log_chain_detects_a_deleted_newest_row(hub: Hub, engine: AsyncEngine) -> None:
    await hub.create_platform(P)
    await push_ok(hub, "logs", batch(P, "d-1", [log("L1"), log("L2")]))
    await push_ok(hub, "logs", batch(P, "d-2", [log("L3")]))
    assert (await verify(hub))["ok"] is True
    async with engine.begin() as conn:  # tampering behind the hub's back
        await conn.execute(text("DELETE FROM log_record WHERE seq=3"))
    broken = await verify(hub)
    assert (broken["ok"], broken["first_broken_seq"]) == (False, 3)
    assert broken["reason"]


# --- 5. complete snapshots ---
async def test_a_complete_snapshot_retires_only_this_reporters_missing_assets_of_its_types(hub: Hub) -> None:
    await hub.create_platform(P)
    mine = await hub.create_client("provider", platforms=[P])
    theirs = await hub.create_client("provider", platforms=[P])
    volume = {"asset_id": "vol-1", "asset_type": "volume", "name": "盘", "status": "running"}
    await push_ok(hub, "assets", batch(P, "b-1", [vm("vm-1"), vm("vm-2"), vm("vm-3"), volume]), mine)
    await push_ok(hub, "assets", batch(P, "b-9", [vm("vm-9")]), theirs)

    page1 = await push_ok(
        hub, "assets", batch(P, "s-1", [vm("vm-1")], snapshot=snap("S1", 1, False, ["vm"])), mine
    )
    assert page1["snapshot"]["complete"] is False
    # page 2: vm-3 is rejected but its asset_id is readable, so it counts as present
    page2 = await push_ok(
        hub,
        "assets",
        batch(P, "s-2", [vm("vm-3", status="exploded"), vm("vm-4")], snapshot=snap("S1", 2, True, ["vm"])),
        mine,
    )
    assert (page2["status"], page2["rejected"]) == ("partial", 1)
    assert page2["snapshot"]["complete"] is True

    assert await lifecycles(hub) == {
        "vm-1": "in_use",
        "vm-2": "retired",  # missing from the snapshot
        "vm-3": "in_use",
        "vm-4": "in_use",
        "vol-1": "in_use",  # another type
        "vm-9": "in_use",  # another reporter's
    }
    assert "vm-2" not in {a["asset_id"] for a in await hub.assets()}  # hidden by default, never deleted
    retired = await asset(hub, "vm-2")
    assert retired["lifecycle"] == "retired"
    assert field_changes((await history(hub, "vm-2"))[0]) == {"lifecycle": ("in_use", "retired")}

    stored = (await hub.get("/api/v1/reports/batches/s-2", platform_code=P, kind="assets")).json()["data"]
    assert stored["snapshot"]["complete"] is True

    # reported again, it comes back
    await push_ok(hub, "assets", batch(P, "b-2", [vm("vm-2")]), mine)
    assert (await asset(hub, "vm-2"))["lifecycle"] == "in_use"
    back = (await history(hub, "vm-2"))[0]
    assert back["batch_id"] == "b-2" and field_changes(back) == {"lifecycle": ("retired", "in_use")}


async def test_an_incomplete_snapshot_retires_nothing_until_the_missing_page_arrives(hub: Hub) -> None:
    await hub.create_platform(P)
    key = await hub.create_client("provider", platforms=[P])
    await push_ok(hub, "assets", batch(P, "b-1", [vm("vm-1"), vm("vm-2"), vm("vm-3"), vm("vm-old")]), key)
    await push_ok(hub, "assets", batch(P, "s-1", [vm("vm-1")], snapshot=snap("S1", 1, False)), key)
    page3 = await push_ok(hub, "assets", batch(P, "s-3", [vm("vm-3")], snapshot=snap("S1", 3, True)), key)
    info = page3["snapshot"]
    assert info["complete"] is False and info["missing_seqs"] == [2]
    assert info.get("retired", 0) == 0
    assert set((await lifecycles(hub)).values()) == {"in_use"}

    page2 = await push_ok(hub, "assets", batch(P, "s-2", [vm("vm-2")], snapshot=snap("S1", 2, False)), key)
    assert page2["snapshot"]["complete"] is True
    assert (await lifecycles(hub))["vm-old"] == "retired"
    assert [a for a, lc in (await lifecycles(hub)).items() if lc == "retired"] == ["vm-old"]


async def test_snapshot_pages_out_of_order_complete_when_the_first_arrives(hub: Hub) -> None:
    await hub.create_platform(P)
    key = await hub.create_client("provider", platforms=[P])
    await push_ok(hub, "assets", batch(P, "b-1", [vm("vm-1"), vm("vm-2"), vm("vm-old")]), key)
    last = await push_ok(hub, "assets", batch(P, "s-2", [vm("vm-2")], snapshot=snap("S1", 2, True)), key)
    assert last["snapshot"]["complete"] is False
    assert (await lifecycles(hub))["vm-old"] == "in_use"
    first = await push_ok(hub, "assets", batch(P, "s-1", [vm("vm-1")], snapshot=snap("S1", 1, False)), key)
    assert first["snapshot"]["complete"] is True
    assert await lifecycles(hub) == {"vm-1": "in_use", "vm-2": "in_use", "vm-old": "retired"}


async def test_an_asset_present_in_a_snapshot_is_not_retired_by_it_when_another_snapshot_saw_it_too(
    hub: Hub,
) -> None:
    """Two snapshots of one reporter interleave (a vm-only one and an all-types one)."""
    await hub.create_platform(P)
    key = await hub.create_client("provider", platforms=[P])
    await push_ok(hub, "assets", batch(P, "b-1", [vm("vm-1"), vm("vm-2")]), key)
    await push_ok(hub, "assets", batch(P, "v-1", [vm("vm-1")], snapshot=snap("VMS", 1, False, ["vm"])), key)
    done = await push_ok(
        hub, "assets", batch(P, "a-1", [vm("vm-1"), vm("vm-2")], snapshot=snap("ALL", 1, True)), key
    )
    assert done["snapshot"]["complete"] is True
    closing = await push_ok(
        hub, "assets", batch(P, "v-2", [vm("vm-2")], snapshot=snap("VMS", 2, True, ["vm"])), key
    )
    assert closing["snapshot"]["complete"] is True
    # vm-1 was in page 1 of VMS and vm-2 in page 2: nothing is missing from either snapshot
    assert await lifecycles(hub) == {"vm-1": "in_use", "vm-2": "in_use"}


# --- 6. domestic verdicts ---
async def test_domestic_verdicts_per_dimension_with_their_basis(hub: Hub) -> None:
    await hub.create_platform(P)
    db = {"asset_type": "database_instance", "status": "running"}
    records = [
        vm("vm-hygon", cpu_vendor="Hygon", cpu_model="Hygon C86 7285"),
        vm("vm-intel", cpu_vendor="Intel", cpu_model="Xeon Gold 6248"),
        vm("vm-kylin", os_name="Kylin Linux Advanced Server V10"),
        {"asset_id": "db-dm", "name": "达梦库", "product": "DM8", **db},
        {"asset_id": "db-mysql", "name": "MySQL 库", "product": "MySQL", **db},
        vm("vm-said-no", cpu_vendor="Hygon", is_domestic=False),
        {
            "asset_id": "srv-loong",
            "asset_type": "server",
            "name": "龙芯服务器",
            "status": "running",
            "cpu_arch": "loongarch64",
        },
    ]
    await push_ok(hub, "assets", batch(P, "d-1", records))
    got = {a["asset_id"]: a for a in await hub.assets()}

    hygon = got["vm-hygon"]
    assert hygon["domestic"]["cpu"]["value"] is True and hygon["is_domestic"] is True
    assert hygon["domestic"]["cpu"]["basis"]["list"] == "cpu_vendor"
    assert "Hygon" in hygon["domestic"]["cpu"]["basis"]["entry"]

    intel = got["vm-intel"]
    assert intel["domestic"]["cpu"]["value"] is False and intel["is_domestic"] is False

    kylin = got["vm-kylin"]
    assert kylin["domestic"]["os"]["value"] is True
    assert "Kylin" in kylin["domestic"]["os"]["basis"]["entry"]
    assert kylin["domestic"]["cpu"]["value"] is None and kylin["is_domestic"] is None  # nothing to judge

    dm = got["db-dm"]
    assert dm["domestic"]["product"]["value"] is True and dm["is_domestic"] is True
    assert dm["domestic"]["product"]["basis"]["list"] == "database"
    mysql = got["db-mysql"]
    assert mysql["domestic"]["product"]["value"] is False and mysql["is_domestic"] is False

    said_no = got["vm-said-no"]
    assert said_no["is_domestic"] is False
    assert said_no["domestic"]["cpu"] == {"value": False, "basis": {"source": "reported"}}

    loong = got["srv-loong"]
    assert loong["domestic"]["cpu"]["value"] is True and loong["is_domestic"] is True


async def test_domestic_verdicts_follow_merge_patched_fields(hub: Hub) -> None:
    await hub.create_platform(P)
    first = [vm("vm-1", cpu_vendor="Intel"), vm("vm-2", cpu_vendor="Hygon", is_domestic=False)]
    await push_ok(hub, "assets", batch(P, "d-1", first))
    # is_domestic absent: the reported flag is kept
    await push_ok(hub, "assets", batch(P, "d-2", [vm("vm-2", name="改名")]))
    kept = await asset(hub, "vm-2")
    assert kept["is_domestic"] is False and kept["domestic"]["cpu"]["basis"] == {"source": "reported"}
    await push_ok(
        hub, "assets", batch(P, "d-3", [vm("vm-1", cpu_vendor="海光"), vm("vm-2", is_domestic=None)])
    )
    one, two = await asset(hub, "vm-1"), await asset(hub, "vm-2")
    assert one["is_domestic"] is True and one["domestic"]["cpu"]["basis"]["list"] == "cpu_vendor"
    # the reported flag cleared: the list verdict applies again
    assert two["is_domestic"] is True and two["domestic"]["cpu"]["basis"].get("source") != "reported"


# --- 7. validation: per record, and the whole body ---
async def test_bad_metric_samples_are_rejected_one_by_one_with_the_reason(hub: Hub) -> None:
    await hub.create_platform(P)
    no_offset = (now_utc() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    records = [
        metric(),
        metric(ts=no_offset),
        metric(ts=ahead(minutes=10)),
        metric(ts=ago(days=31)),
        metric(metric="cpu.utilisation"),
        metric(value="12.5"),
        metric(labels={f"k{i}": "v" for i in range(9)}),
        metric(ts=ago(days=29), labels={f"k{i}": "v" for i in range(8)}),  # inside retention, 8 labels
        metric(ts=ahead(minutes=4)),  # inside the tolerance
    ]
    receipt = await push_ok(hub, "metrics", batch(P, "m-1", records))
    assert (receipt["status"], receipt["accepted"], receipt["rejected"]) == ("partial", 3, 6)
    errors = errors_by_index(receipt)
    assert {i: e["loc"] for i, e in errors.items()} == {
        1: "records[1].ts",
        2: "records[2].ts",
        3: "records[3].ts",
        4: "records[4].metric",
        5: "records[5].value",
        6: "records[6].labels",
    }
    assert "offset" in errors[1]["message"] or "偏移" in errors[1]["message"]
    assert all(e["message"] for e in errors.values())


async def test_logs_and_environment_samples_outside_their_time_window_are_rejected(hub: Hub) -> None:
    await hub.create_platform(P)
    await push_ok(hub, "rooms", batch(P, "r-1", [room()]))
    logs = await push_ok(
        hub,
        "logs",
        batch(
            P,
            "l-1",
            [
                log("L1"),
                log("L2", event_time=ahead(minutes=10)),
                log("L3", event_time=ago(days=181)),
                log("L4", event_time=ago(days=170)),
            ],
        ),
    )
    assert {i: e["loc"] for i, e in errors_by_index(logs).items()} == {
        1: "records[1].event_time",
        2: "records[2].event_time",
    }
    env = await push_ok(
        hub,
        "environment",
        batch(
            P,
            "e-1",
            [
                sample(),
                sample(ts=ahead(minutes=10)),
                sample(ts=ago(days=31)),
                sample(ts="2026-11-21T08:00:00"),
            ],
        ),
    )
    errors = errors_by_index(env)
    assert {i: e["loc"] for i, e in errors.items()} == {
        1: "records[1].ts",
        2: "records[2].ts",
        3: "records[3].ts",
    }
    assert "offset" in errors[3]["message"] or "偏移" in errors[3]["message"]


async def test_a_collected_at_without_offset_rejects_the_envelope(hub: Hub) -> None:
    await hub.create_platform(P)
    body = {**batch(P, "x-1", [vm("vm-1")]), "collected_at": "2026-11-21T08:00:00"}
    response = await hub.push("assets", body)
    assert response.status_code == 422 and response.json()["code"] == "1002"
    [error] = response.json()["errors"]
    assert error["loc"] == "collected_at" and ("offset" in error["message"] or "偏移" in error["message"])
    assert await hub.assets() == []


#: (kind, a record the record format allows, the field it is about): the store must hold it, or the
#: record is rejected on its own with that field named — never a 500 that loses the whole batch
_EDGE_RECORDS: dict[str, tuple[str, dict[str, Any], str]] = {
    "room-name-250-chars": ("rooms", room("R2", name="机" * 250), "name"),
    "room-datacenter-name-250-chars": ("rooms", room("R2", datacenter_name="中" * 250), "datacenter_name"),
    "room-rack-count-3e9": ("rooms", room("R2", rack_count=3_000_000_000), "rack_count"),
    "asset-cpu-cores-3e9": ("assets", vm("vm-2", cpu_cores=3_000_000_000), "cpu_cores"),
    "asset-vcpus-3e9": ("assets", vm("vm-2", vcpus=3_000_000_000), "vcpus"),
    "asset-name-with-nul": ("assets", vm("vm-2", name="a\u0000b"), "name"),
    "asset-tag-with-nul": ("assets", vm("vm-2", tags={"k": "a\u0000b"}), "tags"),
    "asset-time-year-1": (
        "assets",
        vm("vm-2", source_updated_at="0001-01-01T00:00:00+01:00"),
        "source_updated_at",
    ),
    "log-message-with-nul": ("logs", log("L2", message="a\u0000b"), "message"),
    "metric-label-with-nul": ("metrics", metric(labels={"device": "a\u0000b"}), "labels"),
    "metric-time-year-9999": ("metrics", metric(ts="9999-12-31T23:59:59-01:00"), "ts"),
    "alarm-time-year-1": ("alarms", alarm(alarm_id="A2", first_at="0001-01-01T00:00:00+01:00"), "first_at"),
}


@pytest.mark.parametrize("case", sorted(_EDGE_RECORDS))
async def test_a_record_the_store_cannot_hold_is_rejected_alone_never_a_500(hub: Hub, case: str) -> None:
    await hub.create_platform(P)
    kind, edge, name = _EDGE_RECORDS[case]
    good = {
        "rooms": room("R1"),
        "assets": vm("vm-1"),
        "logs": log("L1"),
        "metrics": metric(ts=ago(minutes=2)),
        "alarms": alarm(first_at=ago(minutes=5)),
    }[kind]
    response = await hub.push(kind, batch(P, "edge-1", [good, edge]))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["accepted"] >= 1
    for error in data["errors"]:
        assert error["index"] == 1 and error["loc"].startswith(f"records[1].{name}"), error


async def test_a_collected_at_beyond_the_calendar_rejects_the_envelope(hub: Hub) -> None:
    await hub.create_platform(P)
    body = {**batch(P, "x-1", [vm("vm-1")]), "collected_at": "0001-01-01T00:00:00+01:00"}
    response = await hub.push("assets", body)
    assert response.status_code == 422 and response.json()["code"] == "1002"
    assert response.json()["errors"][0]["loc"] == "collected_at"


def _positions(message: str) -> set[int]:
    return {int(n) for n in re.findall(r"\d+", message)}


async def test_a_body_with_a_bare_nan_is_422_naming_the_position(hub: Hub) -> None:
    await hub.create_platform(P)
    good = orjson.dumps(batch(P, "j-1", [metric(value=1.5)]))
    raw = good.replace(b"1.5", b"NaN")
    at = raw.index(b"NaN")
    response = await hub.push("metrics", None, raw=raw)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "1002"
    assert at in _positions(body["message"]) or at + 1 in _positions(body["message"]), body["message"]
    # nothing was stored: the same id is still free
    assert (await hub.push("metrics", None, raw=good)).status_code == 200


async def test_infinite_numbers_and_non_json_bodies_are_422(hub: Hub) -> None:
    await hub.create_platform(P)
    good = orjson.dumps(batch(P, "j-1", [metric(value=1.5)]))
    not_json = (
        good.replace(b"1.5", b"1e400"),  # parses to infinity
        good.replace(b"1.5", b"-Infinity"),
        b"batch_id=1&records=2",
        good[:-5],  # cut short
        good.replace(b"cpu.util", b"cpu.\xff\xfe"),  # not UTF-8
        b"[" + good + b"]",  # JSON, but not an object
    )
    for raw in not_json:
        response = await hub.push("metrics", None, raw=raw)
        assert response.status_code == 422, (raw, response.text)
        assert response.json()["code"] == "1002"


async def test_envelope_problems_are_422(hub: Hub) -> None:
    await hub.create_platform(P)
    empty = await hub.push("assets", batch(P, "x-1", []))
    assert empty.status_code == 422 and empty.json()["code"] == "1002"
    assert any(e["loc"] == "records" for e in empty.json()["errors"])
    snapshot_on_logs = await hub.push("logs", batch(P, "x-2", [log("L1")], snapshot=snap("S1", 1, True)))
    assert snapshot_on_logs.status_code == 422 and snapshot_on_logs.json()["code"] == "1002"
    assert any(e["loc"] == "snapshot" for e in snapshot_on_logs.json()["errors"])
    assert (await verify(hub))["head_seq"] == 0


async def test_push_limits_on_records_and_bytes_are_413(small_hub: Hub) -> None:
    hub = small_hub
    await hub.create_platform(P)
    six = await hub.push("assets", batch(P, "x-1", [vm(f"vm-{i}") for i in range(6)]))
    assert six.status_code == 413 and six.json()["code"] == "1003"

    big = batch(P, "x-2", [log("L1", message="长" * 1000)])
    assert len(orjson.dumps(big)) > 2000
    too_big = await hub.push("logs", big)
    assert too_big.status_code == 413 and too_big.json()["code"] == "1003"
    # small on the wire, beyond the limit once decompressed
    bomb = batch(P, "x-3", [log("L1", message="a" * 20000)])
    assert len(gzip.compress(orjson.dumps(bomb))) < 2000
    zipped = await hub.push("logs", bomb, gzip_body=True)
    assert zipped.status_code == 413 and zipped.json()["code"] == "1003"

    five = await hub.push("assets", batch(P, "x-4", [vm(f"vm-{i}") for i in range(5)]), gzip_body=True)
    assert five.status_code == 200 and five.json()["data"]["accepted"] == 5
    assert len(await hub.assets()) == 5
    assert (await hub.get("/api/v1/logs/verify", platform_code=P)).json()["data"]["head_seq"] == 0


async def test_content_encodings(hub: Hub) -> None:
    await hub.create_platform(P)
    body = orjson.dumps(batch(P, "g-1", [vm("vm-1")]))
    corrupt = await hub.push(
        "assets", None, raw=b"\x1f\x8b\x08\x00" + b"not really gzip" * 4, headers={"Content-Encoding": "gzip"}
    )
    assert corrupt.status_code == 422 and corrupt.json()["code"] == "1002"
    truncated = await hub.push(
        "assets", None, raw=gzip.compress(body)[:-12], headers={"Content-Encoding": "gzip"}
    )
    assert truncated.status_code == 422 and truncated.json()["code"] == "1002"
    brotli = await hub.push("assets", None, raw=body, headers={"Content-Encoding": "br"})
    assert brotli.status_code == 415 and brotli.json()["code"] == "1004"
    form = await hub.push(
        "assets", None, raw=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 415 and form.json()["code"] == "1004"
    assert await hub.assets() == []
    valid = await hub.push("assets", None, raw=gzip.compress(body), headers={"Content-Encoding": "gzip"})
    assert valid.status_code == 200 and valid.json()["data"]["accepted"] == 1
    assert [a["asset_id"] for a in await hub.assets()] == ["vm-1"]


# --- 8. platform status ---
async def test_a_decommissioned_platform_refuses_pushes_and_keeps_its_data(hub: Hub) -> None:
    await hub.create_platform(P)
    provider = await hub.create_client("provider", platforms=[P])
    await push_ok(hub, "assets", batch(P, "a-1", [vm("vm-1")]), provider)
    await push_ok(hub, "logs", batch(P, "l-1", [log("L1")]), provider)
    assert (await patch_platform(hub, P, status="decommissioned"))["status"] == "decommissioned"

    for key in (provider, None):
        refused = await hub.push("assets", batch(P, "a-2", [vm("vm-2")]), key)
        assert refused.status_code == 403 and refused.json()["code"] == "2006"
    assert [a["asset_id"] for a in await hub.assets()] == ["vm-1"]
    assert (await asset(hub, "vm-1"))["name"] == "vm vm-1"
    check = await verify(hub)
    assert (check["ok"], check["head_seq"]) == (True, 1)
    receipt = await hub.get("/api/v1/reports/batches/a-1", provider, platform_code=P, kind="assets")
    assert receipt.status_code == 200 and receipt.json()["data"]["accepted"] == 1


# --- 9. references ---
async def test_records_may_name_an_asset_the_hub_has_not_seen_and_are_flagged(hub: Hub) -> None:
    await hub.create_platform(P)
    receipt = await push_ok(hub, "metrics", batch(P, "m-1", [metric(asset_id="vm-ghost")]))
    assert (receipt["status"], receipt["accepted"]) == ("accepted", 1)
    assert any("vm-ghost" in w["message"] for w in receipt["warnings"]), receipt["warnings"]
    for kind, record in (
        ("logs", log("L1", asset_id="vm-ghost")),
        ("alarms", alarm(asset_id="vm-ghost", first_at=ago(minutes=5))),
    ):
        data = await push_ok(hub, kind, batch(P, f"{kind}-1", [record]))
        assert any("vm-ghost" in w["message"] for w in data["warnings"]), (kind, data["warnings"])

    await push_ok(hub, "assets", batch(P, "a-1", [vm("vm-ghost")]))
    known = await push_ok(hub, "metrics", batch(P, "m-2", [metric(asset_id="vm-ghost", ts=ago(minutes=2))]))
    assert known["warnings"] == []


async def test_a_point_s_attributes_follow_its_latest_sample_and_only_change_when_told(
    hub: Hub, engine: AsyncEngine
) -> None:
    await hub.create_platform(P)
    room = {
        "room_code": "R1",
        "name": "机房",
        "datacenter_code": "DC",
        "datacenter_name": "数据中心",
        "region_code": "440100",
        "gb50174_class": "A",
        "aisle_containment": True,
    }
    assert (await hub.push("rooms", batch(P, "room", [room]))).status_code == 200
    base = now_utc() - timedelta(minutes=10)

    def sample(minute: int, **fields: Any) -> dict[str, Any]:
        return {
            "room_code": "R1",
            "point_code": "T1",
            "point_type": "rack_inlet_temp",
            "ts": rfc3339(base + timedelta(minutes=minute)),
            "value": 22.0,
            **fields,
        }

    pushes = [
        [sample(0, rack_code="A01", position="rack_inlet", interval_s=60)],
        [sample(1)],  # absent attributes keep their values
        [sample(2, rack_code="A02"), sample(3, height_m=1.2)],
        [sample(4, position=None)],  # null clears
    ]
    for n, records in enumerate(pushes):
        assert (await hub.push("environment", batch(P, f"env-{n}", records))).status_code == 200
    async with engine.connect() as conn:
        point = (
            await conn.execute(
                text("SELECT rack_code, position, height_m, interval_s FROM environment_point")
            )
        ).one()
    assert tuple(point) == ("A02", None, 1.2, 60)


async def test_history_keeps_each_value_as_sent_when_a_batch_mixes_equal_looking_values(hub: Hub) -> None:
    """One batch's history rows hold ``true``, ``1`` and ``1.0`` in the same column: each keeps its
    type (a value bound once per batch must not stand in for an equal-comparing one: ``1 == True``)."""
    await hub.create_platform(P)
    first = [vm("a", is_domestic=False), vm("b", vcpus=2), vm("c", disk_gib=2.5)]
    await push_ok(hub, "assets", batch(P, "h-1", first))
    second = [vm("a", is_domestic=True), vm("b", vcpus=1), vm("c", disk_gib=1.0)]
    await push_ok(hub, "assets", batch(P, "h-2", second))
    changes = {a: field_changes((await history(hub, a))[0]) for a in "abc"}
    assert changes["a"]["is_domestic_reported"][1] is True
    new_vcpus = changes["b"]["vcpus"][1]
    assert new_vcpus == 1 and type(new_vcpus) is int
    new_disk = changes["c"]["disk_gib"][1]  # a number (SQLite reads an integral 1.0 back as 1)
    assert new_disk == 1.0 and type(new_disk) in {int, float}
