"""Incremental sync (§2.2): ``updated_since`` and ``sync_token`` miss nothing, even while pushes run."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

from tests.api.test_query_lists import room, sample
from tests.helpers import Hub, batch, now_utc, rfc3339, vm

P, Q = "GD-GZ-01", "GD-SZ-01"


async def sync(
    hub: Hub, token: str, key: str | None = None, **params: str
) -> tuple[list[dict[str, Any]], str]:
    """Every change after ``token`` (following next_cursor), and the token to resume from."""
    items: list[dict[str, Any]] = []
    while True:
        answer = await hub.get("/api/v1/assets", key, updated_since=token, limit="7", **params)
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        items += data["items"]
        token = data["sync_token"]
        if not data["next_cursor"]:
            return items, token


async def test_a_sync_from_a_time_then_by_token_sees_every_change_once_in_change_order(hub: Hub) -> None:
    await hub.create_platform(P)
    start = rfc3339(now_utc())
    await hub.push("assets", batch(P, "b1", [vm(f"vm-{i}") for i in range(10)]))
    first, token = await sync(hub, start)
    assert sorted(a["asset_id"] for a in first) == sorted(f"vm-{i}" for i in range(10))
    again, same = await sync(hub, token)
    assert again == []  # nothing new

    await hub.push("assets", batch(P, "b2", [vm("vm-3", name="renamed"), vm("vm-new")]))
    # a complete snapshot retires everything it does not hold: retirements are changes too
    snapshot = {"id": "s1", "seq": 1, "last": True}
    await hub.push("assets", batch(P, "b3", [vm("vm-new"), vm("vm-3", name="renamed")], snapshot=snapshot))
    changes, _ = await sync(hub, same)
    by_id = {a["asset_id"]: a for a in changes}
    assert by_id["vm-3"]["name"] == "renamed" and "vm-new" in by_id
    assert by_id["vm-0"]["lifecycle"] == "retired"  # retired rows are included in a sync
    assert len(by_id) == 11


async def test_a_token_is_bound_to_its_filters_and_cannot_be_forged(hub: Hub) -> None:
    await hub.create_platform(P)
    await hub.push("assets", batch(P, "b1", [vm("vm-1")]))
    _, token = await sync(hub, "2000-01-01T00:00:00Z", platform_code=P)
    other = await hub.get("/api/v1/assets", updated_since=token)  # without the platform filter
    assert (other.status_code, other.json()["code"]) == (400, "1001")
    forged = await hub.get("/api/v1/assets", updated_since=token[:-3] + "AAA", platform_code=P)
    assert forged.json()["code"] == "1001"
    no_offset = await hub.get("/api/v1/assets", updated_since="2026-11-21T08:00:00")
    assert no_offset.json()["code"] == "1001"


async def test_a_sync_misses_nothing_while_concurrent_pushes_commit(hub: Hub) -> None:
    """Two platforms are pushed to concurrently while a client keeps syncing; at the end the client
    has seen the final version of every asset (a skipped change would leave it with an older one)."""
    await hub.create_platform(P)
    await hub.create_platform(Q, "440300")
    rng = random.Random(11)
    seen: dict[tuple[str, str], str] = {}
    pushing = True

    async def pusher(platform: str, rounds: int) -> None:
        for n in range(rounds):
            ids = rng.sample(range(40), 15)
            records = [vm(f"vm-{i}", name=f"{platform} v{n}") for i in ids]
            answer = await hub.push("assets", batch(platform, f"{platform}-{n}", records))
            assert answer.status_code == 200, answer.text
            await asyncio.sleep(0)

    async def syncer() -> None:
        token = "2000-01-01T00:00:00Z"
        while True:
            done = not pushing
            items, token = await sync(hub, token)
            for item in items:
                seen[(item["platform_code"], item["asset_id"])] = item["name"]
            if done:
                return
            await asyncio.sleep(0)

    sync_task = asyncio.create_task(syncer())
    await asyncio.gather(pusher(P, 12), pusher(Q, 12))
    pushing = False
    await sync_task
    final = {(a["platform_code"], a["asset_id"]): a["name"] for a in await hub.assets()}
    assert seen == final


async def test_alarms_sync_by_token_including_updates_of_old_alarms(hub: Hub) -> None:
    await hub.create_platform(P)
    first_at = rfc3339(now_utc())
    alarms = [
        {"alarm_id": f"A{i}", "level": 2, "status": "active", "title": f"告警 {i}", "first_at": first_at}
        for i in range(5)
    ]
    await hub.push("alarms", batch(P, "a1", alarms))
    data = (await hub.get("/api/v1/alarms", updated_since="2000-01-01T00:00:00Z", limit="3")).json()["data"]
    assert len(data["items"]) == 3 and data["next_cursor"]
    rest = (await hub.get("/api/v1/alarms", updated_since=data["sync_token"])).json()["data"]
    assert sorted(a["alarm_id"] for a in data["items"] + rest["items"]) == [f"A{i}" for i in range(5)]
    token = rest["sync_token"]
    assert (await hub.get("/api/v1/alarms", updated_since=token)).json()["data"]["items"] == []
    cleared = {**alarms[1], "status": "cleared", "cleared_at": rfc3339(now_utc())}
    await hub.push("alarms", batch(P, "a2", [cleared]))
    changed = (await hub.get("/api/v1/alarms", updated_since=token)).json()["data"]["items"]
    assert [(a["alarm_id"], a["status"]) for a in changed] == [("A1", "cleared")]


async def _logs_sync(hub: Hub, token: str, **params: str) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    while True:
        data = (await hub.get("/api/v1/logs", updated_since=token, limit="5", **params)).json()["data"]
        items += data["items"]
        token = data["sync_token"]
        if not data["next_cursor"]:
            return items, token


def _logs(platform: str, start: int, count: int) -> list[dict[str, Any]]:
    ts = rfc3339(now_utc())
    return [
        {
            "log_id": f"{platform}-{i}",
            "category": "system",
            "type": "boot",
            "event_time": ts,
            "severity": 6,
            "action": "boot",
            "outcome": "success",
            "message": f"{platform} #{i}",
        }
        for i in range(start, start + count)
    ]


async def test_logs_sync_by_token_in_arrival_order_per_platform(hub: Hub) -> None:
    await hub.create_platform(P)
    await hub.create_platform(Q, "440300")
    start = rfc3339(now_utc())
    await hub.push("logs", batch(P, "p1", _logs(P, 0, 7)))
    await hub.push("logs", batch(Q, "q1", _logs(Q, 0, 4)))
    items, token = await _logs_sync(hub, start)
    assert [(i["platform_code"], i["seq"]) for i in items] == [(P, s) for s in range(1, 8)] + [
        (Q, s) for s in range(1, 5)
    ]
    await hub.push("logs", batch(Q, "q2", _logs(Q, 4, 2)))
    later, token = await _logs_sync(hub, token)
    assert [(i["platform_code"], i["seq"]) for i in later] == [(Q, 5), (Q, 6)]
    assert (await _logs_sync(hub, token))[0] == []
    other = await hub.get("/api/v1/logs", updated_since=token, platform_code=P)  # other filters
    assert other.json()["code"] == "1001"


async def test_logs_sync_misses_nothing_while_pushes_commit(hub: Hub) -> None:
    await hub.create_platform(P)
    await hub.create_platform(Q, "440300")
    seen: set[str] = set()
    pushing = True

    async def pusher(platform: str) -> None:
        for n in range(10):
            assert (
                await hub.push("logs", batch(platform, f"{platform}-{n}", _logs(platform, n * 20, 20)))
            ).status_code == 200
            await asyncio.sleep(0)

    async def syncer() -> None:
        token = "2000-01-01T00:00:00Z"
        while True:
            done = not pushing
            items, token = await _logs_sync(hub, token)
            seen.update(i["log_id"] for i in items)
            if done:
                return
            await asyncio.sleep(0)

    task = asyncio.create_task(syncer())
    await asyncio.gather(pusher(P), pusher(Q))
    pushing = False
    await task
    assert seen == {f"{p}-{i}" for p in (P, Q) for i in range(200)}


# --- raw samples --------------------------------------------------------------------------------

SAMPLES = "/api/v1/metrics/samples"


def _samples(asset: str, minutes: range, value: float) -> list[dict[str, Any]]:
    base = now_utc().replace(second=0) - timedelta(hours=2)
    return [
        {
            "metric": "cpu.util",
            "asset_id": asset,
            "ts": rfc3339(base + timedelta(minutes=m)),
            "value": value + m,
        }
        for m in minutes
    ]


async def _samples_sync(
    hub: Hub, token: str, path: str = SAMPLES, **params: str
) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    while True:
        answer = await hub.get(path, updated_since=token, limit="4", **params)
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        items += data["items"]
        token = data["sync_token"]
        if not data["next_cursor"]:
            return items, token


def _key(item: dict[str, Any]) -> tuple[str, str, str]:
    return item["platform_code"], item["asset_id"], item["ts"]


async def test_metric_samples_sync_by_token_delivers_new_and_corrected_samples_once(hub: Hub) -> None:
    await hub.create_platform(P)
    await hub.create_platform(Q, "440300")
    start = rfc3339(now_utc())
    assert (await hub.push("metrics", batch(P, "p1", _samples("vm-1", range(10), 1.0)))).status_code == 200
    assert (await hub.push("metrics", batch(Q, "q1", _samples("vm-9", range(3), 5.0)))).status_code == 200
    first, token = await _samples_sync(hub, start)
    assert len(first) == 13 and len({_key(i) for i in first}) == 13
    assert (await _samples_sync(hub, token))[0] == []

    corrected = _samples("vm-1", range(4, 5), 100.0) + _samples("vm-2", range(1), 7.0)
    assert (await hub.push("metrics", batch(P, "p2", corrected))).status_code == 200
    changed, token = await _samples_sync(hub, token)
    assert sorted((i["asset_id"], i["value"]) for i in changed) == [("vm-1", 104.0), ("vm-2", 7.0)]
    assert (await _samples_sync(hub, token))[0] == []

    narrowed, _ = await _samples_sync(hub, "2000-01-01T00:00:00Z", platform_code=Q)
    assert {i["platform_code"] for i in narrowed} == {Q} and len(narrowed) == 3
    other = await hub.get(SAMPLES, updated_since=token, platform_code=P)  # a token of other filters
    assert (other.status_code, other.json()["code"]) == (400, "1001")
    forged = await hub.get(SAMPLES, updated_since=token[:-4] + "AAAA")
    assert forged.json()["code"] == "1001"


async def test_metric_samples_sync_misses_nothing_while_pushes_commit(hub: Hub) -> None:
    """Overlapping batches (corrections of the same samples) of two platforms are pushed while a
    client syncs; it ends with the final value of every sample."""
    await hub.create_platform(P)
    await hub.create_platform(Q, "440300")
    rng = random.Random(5)
    seen: dict[tuple[str, str, str], float] = {}
    pushing = True

    async def pusher(platform: str) -> None:
        for n in range(10):
            first = rng.randrange(0, 30)
            records = _samples("vm-1", range(first, first + 15), float(n * 100))
            assert (await hub.push("metrics", batch(platform, f"{platform}-{n}", records))).status_code == 200
            await asyncio.sleep(0)

    async def syncer() -> None:
        token = "2000-01-01T00:00:00Z"
        while True:
            done = not pushing
            items, token = await _samples_sync(hub, token)
            seen.update({_key(i): i["value"] for i in items})
            if done:
                return
            await asyncio.sleep(0)

    task = asyncio.create_task(syncer())
    await asyncio.gather(pusher(P), pusher(Q))
    pushing = False
    await task
    final: dict[tuple[str, str, str], float] = {}
    window = {"from": rfc3339(now_utc() - timedelta(hours=3)), "to": rfc3339(now_utc())}
    cursor = None
    while True:
        data = (
            await hub.get(SAMPLES, limit="1000", **window, **({"cursor": cursor} if cursor else {}))
        ).json()
        final.update({_key(i): i["value"] for i in data["data"]["items"]})
        cursor = data["data"]["next_cursor"]
        if not cursor:
            break
    assert seen == final and len(final) > 30


async def test_environment_samples_sync_by_token(hub: Hub) -> None:
    await hub.create_platform(P)
    assert (await hub.push("rooms", batch(P, "r", [room("R1")]))).status_code == 200
    base = now_utc() - timedelta(hours=1)

    def reading(point: str, minute: int, value: float) -> dict[str, Any]:
        return sample("R1", point, "cold_aisle_temp", base + timedelta(minutes=minute), value)

    path = "/api/v1/environment/samples"
    await hub.push(
        "environment", batch(P, "e1", [reading(p, m, 22.0) for p in ("T1", "T2") for m in range(5)])
    )
    first, token = await _samples_sync(hub, "2000-01-01T00:00:00Z", path)
    assert len({(i["point_code"], i["ts"]) for i in first}) == 10
    await hub.push("environment", batch(P, "e2", [reading("T2", 3, 30.5)]))
    changed, token = await _samples_sync(hub, token, path)
    assert [(i["point_code"], i["value"]) for i in changed] == [("T2", 30.5)]
    assert (await _samples_sync(hub, token, path))[0] == []
