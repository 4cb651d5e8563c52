"""Concurrent pushes: overlapping records end stored exactly once, with no error answer."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.models import LogRecord, MetricSample
from tests.helpers import Hub, batch, now_utc, rfc3339, vm

P = "GD-GZ-ZWY-01"
CLIENTS = 8


async def test_eight_clients_pushing_overlapping_assets_store_each_once(hub: Hub) -> None:
    await hub.create_platform(P)
    keys = [await hub.create_client("provider", platforms=[P]) for _ in range(CLIENTS)]
    rng = random.Random(7)

    def records(client: int) -> list[dict[str, object]]:
        shared = [vm(f"vm-{i:03d}", name=f"shared {i} from {client}") for i in range(60)]
        own = [vm(f"own-{client}-{i}") for i in range(20)]
        mixed = shared + own
        rng.shuffle(mixed)  # different orders per batch: the hub must still not deadlock
        return mixed

    responses = await asyncio.gather(
        *(hub.push("assets", batch(P, f"c{c}", records(c)), keys[c]) for c in range(CLIENTS))
    )
    assert [r.status_code for r in responses] == [200] * CLIENTS, [
        r.text for r in responses if r.status_code != 200
    ]
    assert all(r.json()["data"]["status"] == "accepted" for r in responses)

    assets = await hub.assets()
    ids = [a["asset_id"] for a in assets]
    assert len(ids) == len(set(ids)) == 60 + CLIENTS * 20
    # every shared asset holds one client's complete record, and its history counts each change once
    for asset in assets:
        if asset["asset_id"].startswith("vm-"):
            history = (await hub.get(f"/api/v1/assets/{asset['asset_uid']}/history")).json()["data"]["items"]
            revisions = [h["revision"] for h in history]
            assert revisions == sorted(set(revisions), reverse=True)
            assert revisions[-1] == 1 and history[-1]["created"] is True
            break


async def test_concurrent_metrics_and_logs_with_overlapping_keys(hub: Hub, engine: AsyncEngine) -> None:
    await hub.create_platform(P)
    base = now_utc()
    ts = [rfc3339(base.replace(second=0) - timedelta(minutes=m)) for m in range(50)]

    def metric_batch(client: int) -> dict[str, object]:
        records = [
            {"metric": "cpu.util", "ts": t, "value": float(client), "asset_id": f"vm-{a}"}
            for a in range(4)
            for t in ts
        ]
        return batch(P, f"m{client}", records)

    def log_batch(client: int) -> dict[str, object]:
        records = [
            {
                "log_id": f"log-{i}",
                "category": "system",
                "type": "boot",
                "event_time": ts[0],
                "severity": 6,
                "action": "boot",
                "outcome": "success",
                "message": f"event {i}",
            }
            for i in range(client * 5, client * 5 + 30)
        ]
        return batch(P, f"l{client}", records)

    pushes = [hub.push("metrics", metric_batch(c)) for c in range(CLIENTS)]
    pushes += [hub.push("logs", log_batch(c)) for c in range(CLIENTS)]
    responses = await asyncio.gather(*pushes)
    assert [r.status_code for r in responses] == [200] * len(pushes), [r.text for r in responses]

    async with engine.connect() as conn:
        samples = (await conn.execute(select(func.count()).select_from(MetricSample))).scalar_one()
        logs = (await conn.execute(select(func.count()).select_from(LogRecord))).scalar_one()
    assert samples == 4 * len(ts)
    assert logs == (CLIENTS - 1) * 5 + 30
    verify = (await hub.get("/api/v1/logs/verify", platform_code=P)).json()["data"]
    assert verify["ok"] is True and verify["checked"] == logs and verify["head_seq"] == logs


async def test_the_same_batch_sent_twice_at_once_is_stored_once(hub: Hub) -> None:
    await hub.create_platform(P)
    body = batch(P, "twin", [vm(f"vm-{i}") for i in range(200)])
    first, second = await asyncio.gather(hub.push("assets", body), hub.push("assets", body))
    assert (first.status_code, second.status_code) == (200, 200)
    replays = [r.headers.get("idempotent-replay") for r in (first, second)]
    assert replays.count("true") == 1
    assert first.json()["data"]["accepted"] == second.json()["data"]["accepted"] == 200
    assert len(await hub.assets()) == 200


async def test_a_request_that_reads_then_writes_is_not_refused_when_another_writer_commits_between(
    hub: Hub, app: Any, settings: Settings
) -> None:
    """SQLite: a transaction that began as a reader cannot become a writer once another connection
    has committed ("database is locked" at once, no waiting). Revoking a key reads it, then writes;
    here another process commits a write right after every read of the key table. The request
    must take the write lock when its transaction starts, so the interloper waits instead."""
    if settings.resolved_database_url.startswith("postgresql"):
        pytest.skip("SQLite's locking: PostgreSQL writers never fail this way")
    key = await hub.create_client("regulator", regions=["44"])
    app_key = key.split(".", 1)[0]
    path = settings.resolved_database_url.split("///", 1)[1]
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS test_interloper (n INTEGER)")
    interloped: list[str] = []

    def interloper(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith("SELECT") or " client" not in statement:
            return
        other = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO test_interloper VALUES (1)")
            other.execute("COMMIT")
            interloped.append("committed")
        except sqlite3.OperationalError:
            interloped.append("waited")  # the request holds the write lock, as it should
        finally:
            other.close()

    sync_engine = app.state.engine.sync_engine
    event.listen(sync_engine, "after_cursor_execute", interloper)
    try:
        answer = await hub.http.delete(f"/api/v1/admin/clients/{app_key}", headers=hub.auth(hub.admin))
    finally:
        event.remove(sync_engine, "after_cursor_execute", interloper)
        with sqlite3.connect(path) as cleanup:
            cleanup.execute("DROP TABLE test_interloper")
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["status"] == "revoked"
    assert "committed" in interloped  # the interloper did get in between the reads of other requests
    listed = await hub.http.get("/api/v1/admin/clients", headers=hub.auth(hub.admin))
    assert {c["app_key"]: c["status"] for c in listed.json()["data"]["items"]}[app_key] == "revoked"
