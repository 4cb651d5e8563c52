"""The audit trail (§9): every request, a chain that detects change, deletion and truncation."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from app.security import audit as audit_module
from tests.helpers import Hub, batch, vm

P = "GD-GZ-ZWY-01"
ROOT = Path(__file__).resolve().parent.parent.parent


async def events(hub: Hub, **params: Any) -> list[dict[str, Any]]:
    response = await hub.http.get("/api/v1/admin/audit", params=params, headers=hub.auth(hub.admin))
    assert response.status_code == 200, response.text
    return response.json()["data"]["items"]  # type: ignore[no-any-return]


async def verify(hub: Hub) -> dict[str, Any]:
    response = await hub.get("/api/v1/admin/audit/verify")
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def test_a_write_is_audited_before_its_answer_and_refusals_are_audited_too(hub: Hub) -> None:
    await hub.create_platform(P)
    push = await hub.push("assets", batch(P, "b1", [vm("vm-1"), vm("vm-2")]))
    assert push.status_code == 200
    refused = await hub.http.get("/api/v1/assets")  # no credentials
    assert refused.status_code == 401
    unknown_key = "ak_" + "0" * 20
    wrong = await hub.http.get("/api/v1/assets", headers={"Authorization": f"Bearer {unknown_key}.secret"})
    assert wrong.status_code == 401
    malformed = await hub.http.get("/api/v1/assets", headers={"Authorization": "Bearer not-a-key-id"})
    assert malformed.status_code == 401

    # the push's event is committed already: read it straight from the table, no flush
    found = await events(hub, path="/api/v1/reports/assets")
    assert len(found) == 1
    event = found[0]
    admin_key = hub.admin.split(".", 1)[0]
    assert (event["method"], event["status"], event["records"]) == ("POST", 200, 2)
    assert (event["app_key"], event["role"]) == (admin_key, "admin")
    assert event["request_id"] == push.json()["request_id"]
    assert event["source_ip"] and event["hash"] and event["prev_hash"]

    # reads are appended within a second
    for _ in range(40):
        refusals = [e for e in await events(hub, path="/api/v1/assets") if e["status"] == 401]
        if len(refusals) == 3:
            break
        await asyncio.sleep(0.05)
    # a well-formed key id is kept; anything else claimed as one is not (it may be a secret)
    assert sorted((e["app_key"] or "") for e in refusals) == ["", "", unknown_key]
    assert all(e["role"] is None and e["request_id"] for e in refusals)
    assert "secret" not in json.dumps(refusals)


async def test_the_event_list_pages_newest_first_and_filters_by_key(hub: Hub, app: Any) -> None:
    await hub.create_platform(P)
    regulator = await hub.create_client("regulator", regions=["440000"])
    for _ in range(5):
        assert (await hub.get("/api/v1/assets", regulator)).status_code == 200
    await app.state.audit_writer.flush()  # type: ignore[attr-defined]
    key = regulator.split(".", 1)[0]
    first = (await hub.get("/api/v1/admin/audit", app_key=key, limit=3)).json()["data"]
    second = (await hub.get("/api/v1/admin/audit", app_key=key, limit=3, cursor=first["next_cursor"])).json()[
        "data"
    ]
    seqs = [e["seq"] for e in first["items"] + second["items"]]
    assert len(seqs) == 5 and seqs == sorted(seqs, reverse=True)
    assert {e["app_key"] for e in first["items"] + second["items"]} == {key}
    assert second["next_cursor"] is None
    assert (await hub.get("/api/v1/admin/audit", regulator)).json()["code"] == "2006"


async def _audited_world(hub: Hub) -> None:
    await hub.create_platform(P)
    for n in range(6):
        assert (await hub.push("assets", batch(P, f"b{n}", [vm(f"vm-{n}")]))).status_code == 200
    result = await verify(hub)
    assert result["ok"] is True and result["checked"] >= 7


async def test_changing_an_event_is_detected(hub: Hub, engine: AsyncEngine) -> None:
    await _audited_world(hub)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE audit_event SET status = 403 WHERE seq = 4"))
    result = await verify(hub)
    assert (result["ok"], result["first_bad_seq"]) == (False, 4)


async def test_deleting_an_event_is_detected(hub: Hub, engine: AsyncEngine) -> None:
    await _audited_world(hub)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_event WHERE seq = 3"))
    result = await verify(hub)
    assert (result["ok"], result["first_bad_seq"]) == (False, 3)


async def test_truncating_the_newest_events_is_detected_even_with_the_head_row_rewritten(
    hub: Hub, app: Any, engine: AsyncEngine
) -> None:
    await _audited_world(hub)
    await app.state.audit_writer.flush()  # type: ignore[attr-defined]
    async with engine.begin() as conn:
        last = (await conn.execute(text("SELECT max(seq) FROM audit_event"))).scalar_one()
        keep = last - 3
        await conn.execute(text("DELETE FROM audit_event WHERE seq > :keep"), {"keep": keep})
        kept_hash = (
            await conn.execute(text("SELECT hash FROM audit_event WHERE seq = :s"), {"s": keep})
        ).scalar_one()
        await conn.execute(
            text("UPDATE audit_head SET last_seq = :s, last_hash = :h"), {"s": keep, "h": kept_hash}
        )
    writer = app.state.audit_writer
    await writer.close()  # no new events: the chain now ends at `keep`, as an attacker left it
    from app.db import create_sessionmaker
    from app.security.audit import verify_audit
    from app.security.keys import load_server_key

    async with create_sessionmaker(engine)() as session:
        result = await verify_audit(session, hub.settings.data_dir, load_server_key(hub.settings))
    assert result["ok"] is False and result["first_bad_seq"] == keep + 1
    assert "checkpoint" in result["reason"]


def test_audit_verify_exits_1_naming_the_first_bad_event(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPHUB_")}
    env.update(SUPHUB_DATA_DIR=str(tmp_path / "var"), PYTHONPATH=str(ROOT))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    created = json.loads(cli("clients", "create", "--init", "--name", "root", "--role", "admin").stdout)

    async def requests() -> None:
        app = create_app(Settings(data_dir=tmp_path / "var", _env_file=None))  # type: ignore[call-arg]
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub.test"
        ) as http:
            for _ in range(3):
                await http.post(
                    "/api/v1/admin/platforms",
                    json={},
                    headers={"Authorization": f"Bearer {created['bearer']}"},
                )
        await app.state.audit_writer.close()
        await app.state.engine.dispose()

    asyncio.run(requests())
    good = cli("audit", "verify")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["checked"] == 3
    import sqlite3

    with sqlite3.connect(tmp_path / "var" / "hub.db") as db:
        db.execute("UPDATE audit_event SET path = '/elsewhere' WHERE seq = 2")
    bad = cli("audit", "verify")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["first_bad_seq"] == 2 and "seq=2" in bad.stderr


@pytest.mark.parametrize(
    ("trusted", "forwarded", "expected"),
    [
        ([], "203.0.113.9", "127.0.0.1"),  # no trusted proxies
        (["127.0.0.1/32"], "203.0.113.9", "203.0.113.9"),
        (["127.0.0.1/32"], "203.0.113.9, 10.0.0.7", "10.0.0.7"),  # nearest untrusted hop
        (["127.0.0.1/32", "10.0.0.0/8"], "203.0.113.9, 10.0.0.7", "203.0.113.9"),
    ],
)
async def test_source_ip_honours_x_forwarded_for_only_from_trusted_proxies(
    settings: Settings, engine: AsyncEngine, trusted: list[str], forwarded: str, expected: str
) -> None:
    app = create_app(settings.model_copy(update={"trusted_proxies": trusted}))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
        marker = f"/api/v1/assets/probe-{len(trusted)}-{len(forwarded)}"
        await http.get(marker, headers={"X-Forwarded-For": forwarded})
        await app.state.audit_writer.flush()
    async with engine.connect() as conn:
        ip = (
            (
                await conn.execute(
                    text("SELECT source_ip FROM audit_event WHERE path = :p ORDER BY seq DESC"), {"p": marker}
                )
            )
            .scalars()
            .first()
        )
    await app.state.audit_writer.close()
    await app.state.engine.dispose()
    assert ip == expected


async def test_retention_cuts_only_at_a_checkpoint_and_the_chain_still_verifies(
    hub: Hub, app: Any, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_module, "CHECKPOINT_EVERY", 4)
    await _audited_world(hub)
    await app.state.audit_writer.flush()  # type: ignore[attr-defined]
    from datetime import UTC, datetime, timedelta

    from app.db import create_sessionmaker

    async with create_sessionmaker(engine)() as session:
        assert await audit_module.prune_audit(session, 1) == 0  # nothing is older than a day
        future = datetime.now(UTC) + timedelta(days=2)
        removed = await audit_module.prune_audit(session, 1, now=future)
        await session.commit()
        checkpoint = (await session.execute(text("SELECT max(seq) FROM audit_checkpoint"))).scalar_one()
    assert removed == checkpoint >= 4
    result = await verify(hub)
    assert result["ok"] is True and result["from_seq"] == checkpoint + 1
