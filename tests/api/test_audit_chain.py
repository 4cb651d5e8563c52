"""The keyed audit chain (§9): what someone who can write the database, but does not hold the server
key, can and cannot do to it; the head checkpoint; refused writes audited once the store is back."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cli import alembic_config
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.main import create_app
from app.models import AuditEvent, AuditHead
from app.models.base import UTCDateTime
from app.schemas.common import ClientCreate
from app.security.keys import load_server_key
from app.security.sm3 import sm3_hex
from app.services.clients import create_client
from app.services.log_chain import canonical_bytes
from tests.conftest import _pg_admin, _pg_url
from tests.helpers import Hub, batch, vm

P = "GD-GZ-ZWY-01"
ROOT = Path(__file__).resolve().parent.parent.parent
HEAD_FILE = "audit-head.json"
#: the chained fields of an event as the plain (pre-keyed) chain canonicalised them
FIELDS = (
    "seq",
    "at",
    "app_key",
    "role",
    "method",
    "path",
    "query",
    "status",
    "records",
    "request_id",
    "source_ip",
)
PLAIN_GENESIS = "0" * 64


def plain_hash(prev_hash: str, event: dict[str, Any]) -> str:
    """What anyone can compute without the server key: the old ``SM3(prev ‖ canonical event)``."""
    doc = {name: event.get(name) for name in FIELDS}
    doc["at"] = event["at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return sm3_hex(prev_hash.encode("ascii") + canonical_bytes(doc))


async def rechain_with_plain_sm3(engine: AsyncEngine, seq: int, **change: Any) -> None:
    """The attack: change event ``seq``, then re-chain it and every later event (and the head row)."""
    async with create_sessionmaker(engine)() as session:
        rows = (await session.execute(select(AuditEvent).order_by(AuditEvent.seq))).scalars().all()
        prev = next(r.hash for r in rows if r.seq == seq - 1) if seq > 1 else PLAIN_GENESIS
        for row in rows:
            if row.seq < seq:
                continue
            if row.seq == seq:
                for name, value in change.items():
                    setattr(row, name, value)
            row.prev_hash = prev
            row.hash = plain_hash(prev, {name: getattr(row, name) for name in FIELDS})
            prev = row.hash
        head = await session.get(AuditHead, 1)
        assert head is not None
        head.last_hash = prev
        await session.commit()


async def verify(hub: Hub) -> dict[str, Any]:
    response = await hub.get("/api/v1/admin/audit/verify")
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def events(hub: Hub, **params: Any) -> list[dict[str, Any]]:
    response = await hub.http.get("/api/v1/admin/audit", params=params, headers=hub.auth(hub.admin))
    assert response.status_code == 200, response.text
    return response.json()["data"]["items"]  # type: ignore[no-any-return]


def cli(settings: Settings, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """``supervision-hub …`` against this hub's database and data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPHUB_")}
    env.update(
        SUPHUB_DATABASE_URL=settings.resolved_database_url,
        SUPHUB_DATA_DIR=str(settings.data_dir),
        SUPHUB_ENV="development",
        PYTHONPATH=str(ROOT),
        **extra_env,
    )
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=settings.data_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Hub, Any]]:
    """A hub process of its own (its own server key, data directory, limits) with a fresh admin key."""
    application = create_app(settings)
    transport = httpx.ASGITransport(app=application)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            async with create_sessionmaker(application.state.engine)() as session:
                created = await create_client(
                    session, load_server_key(settings), ClientCreate(name="root", role="admin")
                )
                await session.commit()
            yield Hub(client, created["bearer"], settings), application
    finally:
        await application.state.audit_writer.close()
        await application.state.rate_limiter.close()
        await application.state.engine.dispose()


async def _pushes(hub: Hub, count: int, prefix: str = "b") -> None:
    for n in range(count):
        response = await hub.push("assets", batch(P, f"{prefix}{n}", [vm(f"vm-{prefix}{n}")]))
        assert response.status_code == 200, response.text


# --- item 6: the keyed chain ----------------------------------------------------------------------
async def test_an_edited_event_re_chained_with_plain_sm3_is_found_after_more_requests(
    hub: Hub, app: Any, engine: AsyncEngine, settings: Settings
) -> None:
    await hub.create_platform(P)
    await _pushes(hub, 6)
    assert (await verify(hub))["ok"] is True
    await app.state.audit_writer.flush()
    await rechain_with_plain_sm3(engine, 4, status=403)
    await _pushes(hub, 2, "after")  # the head checkpoint would move past the edit here

    result = await verify(hub)
    assert (result["ok"], result["first_bad_seq"]) == (False, 4), result
    done = cli(settings, "audit", "verify")
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["first_bad_seq"] == 4 and "seq=4" in done.stderr


async def test_a_missing_head_checkpoint_file_is_reported_until_an_operator_renews_it(
    hub: Hub, settings: Settings
) -> None:
    fresh = await verify(hub)  # a brand-new hub has no events, so nothing to checkpoint yet
    assert fresh["ok"] is True and fresh["checked"] == 0
    await hub.create_platform(P)
    await _pushes(hub, 3)
    assert (await verify(hub))["ok"] is True
    (Path(settings.data_dir) / HEAD_FILE).unlink()
    await _pushes(hub, 2, "after")  # more events do not silently make a new checkpoint

    result = await verify(hub)
    assert result["ok"] is False and result["first_bad_seq"] is None
    assert "checkpoint" in result["reason"] and "missing" in result["reason"]
    reported = cli(settings, "audit", "verify")
    assert reported.returncode == 1 and "checkpoint" in reported.stderr

    renewed = cli(settings, "audit", "verify", "--new-checkpoint")
    assert renewed.returncode == 0, renewed.stderr
    assert (Path(settings.data_dir) / HEAD_FILE).exists()
    assert (await verify(hub))["ok"] is True


async def test_the_head_checkpoint_is_not_moved_past_a_changed_checkpointed_event(
    hub: Hub, app: Any, engine: AsyncEngine, settings: Settings
) -> None:
    await hub.create_platform(P)
    await _pushes(hub, 3)
    await app.state.audit_writer.flush()
    before = json.loads((Path(settings.data_dir) / HEAD_FILE).read_text())
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE audit_event SET hash = :h WHERE seq = :s"), {"h": "f" * 64, "s": before["seq"]}
        )
    await _pushes(hub, 2, "after")
    after = json.loads((Path(settings.data_dir) / HEAD_FILE).read_text())
    assert (after["seq"], after["hash"]) == (before["seq"], before["hash"])


async def test_the_chain_continues_across_a_server_key_rotation(
    app: Any, engine: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    old_key, new_key = secrets.token_hex(32), secrets.token_hex(32)
    data = tmp_path / "var"
    data.mkdir()
    before = settings.model_copy(update={"secret_key": SecretStr(old_key), "data_dir": data})
    async with running(before) as (hub, _):
        await hub.create_platform(P)
        await _pushes(hub, 3)
        admin = hub.admin
    (tmp_path / "new.key").write_text(new_key)
    rotated = cli(
        before, "keys", "rotate", "--new-key-file", str(tmp_path / "new.key"), SUPHUB_SECRET_KEY=old_key
    )
    assert rotated.returncode == 0, rotated.stderr

    after = settings.model_copy(update={"secret_key": SecretStr(new_key), "data_dir": data})  # old key gone
    async with running(after) as (hub, application):
        hub.admin = admin  # the key made before the rotation still works
        await _pushes(hub, 2, "after")
        result = await verify(hub)
        assert result["ok"] is True and result["checked"] == 6, result
        async with engine.connect() as conn:  # events 1–4 under the first key, 5 on under the new one
            starts = (
                await conn.execute(text("SELECT from_seq FROM audit_chain_key ORDER BY from_seq"))
            ).scalars()
            assert list(starts) == [1, 5]
        assert cli(after, "audit", "verify", SUPHUB_SECRET_KEY=new_key).returncode == 0

        # events chained under the retired key are still keyed: re-chaining them is found
        await application.state.audit_writer.flush()
        await rechain_with_plain_sm3(engine, 2, path="/elsewhere")
        result = await verify(hub)
        assert (result["ok"], result["first_bad_seq"]) == (False, 2), result


@pytest.fixture
def blank_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (migrated by the test to the revision it needs)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    name = f"suphub_audit_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _pg_url(name)
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def test_a_plain_chain_from_before_the_keyed_chain_still_verifies_with_keyed_events_after_it(
    blank_database: str, settings: Settings, tmp_path: Path
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(blank_database), "0013")
    at = datetime.now(UTC) - timedelta(hours=1)
    rows, prev = [], PLAIN_GENESIS
    old_key = "ak_" + "1" * 20
    for seq in range(1, 6):
        event = {
            "seq": seq,
            "at": at + timedelta(seconds=seq),
            "app_key": old_key if seq == 3 else None,
            "role": "admin" if seq == 3 else None,  # the one authenticated request
            "method": "GET",
            "path": "/api/v1/assets",
            "query": "",
            "status": 200 if seq == 3 else 401,
            "records": None,
            "request_id": f"R{seq:025d}",
            "source_ip": "127.0.0.1",
        }
        digest = plain_hash(prev, event)
        rows.append({**event, "prev_hash": prev, "hash": digest})
        prev = digest
    head = sa.table(
        "audit_head",
        sa.column("id"),
        sa.column("last_seq"),
        sa.column("last_hash"),
        sa.column("updated_at", UTCDateTime()),
    )
    old_engine = create_engine(settings, blank_database)
    async with old_engine.begin() as conn:
        await conn.execute(sa.insert(AuditEvent), rows)
        await conn.execute(head.insert(), [{"id": 1, "last_seq": 5, "last_hash": prev, "updated_at": at}])
    await old_engine.dispose()
    data = tmp_path / "var"
    data.mkdir()
    (data / HEAD_FILE).write_text(json.dumps({"seq": 5, "hash": prev, "at": "2026-12-01T00:00:00.000000Z"}))
    await asyncio.to_thread(command.upgrade, alembic_config(blank_database), "head")

    upgraded = settings.model_copy(update={"database_url": blank_database, "data_dir": data})
    async with running(upgraded) as (hub, application):
        await hub.create_platform(P)
        await _pushes(hub, 2)
        result = await verify(hub)
        assert result["ok"] is True and result["checked"] >= 8, result
        assert result["keyed_from"] == 6
        assert cli(upgraded, "audit", "verify").returncode == 0
        # the plain events were chained without an actor: the migration names it from what they hold
        plain = [e for e in await events(hub, path="/api/v1/assets") if e["seq"] < 6]
        assert [(e["seq"], e["actor"]) for e in plain] == [
            (5, "anonymous"),
            (4, "anonymous"),
            (3, f"key:{old_key}"),
            (2, "anonymous"),
            (1, "anonymous"),
        ]

        async with application.state.engine.begin() as conn:  # and it cannot be changed unseen
            await conn.execute(text("UPDATE audit_event SET actor = 'anonymous' WHERE seq = 3"))
        result = await verify(hub)
        assert (result["ok"], result["first_bad_seq"]) == (False, 3), result

        async with application.state.engine.begin() as conn:  # the plain part is still checked
            await conn.execute(
                text("UPDATE audit_event SET actor = :a WHERE seq = 3"), {"a": f"key:{old_key}"}
            )
            await conn.execute(text("UPDATE audit_event SET status = 200 WHERE seq = 2"))
        result = await verify(hub)
        assert (result["ok"], result["first_bad_seq"]) == (False, 2), result


# --- §9: who asked ---------------------------------------------------------------------------------
async def test_every_event_names_its_actor_a_refused_request_without_a_known_key_is_anonymous(
    hub: Hub, app: Any
) -> None:
    await hub.create_platform(P)
    regulator = await hub.create_client("regulator", regions=["440000"])
    admin_key, regulator_key = hub.admin.split(".", 1)[0], regulator.split(".", 1)[0]
    pushed = await hub.push("assets", batch(P, "b1", [vm("vm-1")]))
    assert pushed.status_code == 200
    assert (await hub.get("/api/v1/assets", regulator)).status_code == 200
    assert (await hub.get("/api/v1/admin/audit", regulator)).status_code == 403  # known, not allowed
    assert (await hub.http.get("/api/v1/assets")).status_code == 401  # no credentials
    unknown = "ak_" + "0" * 20
    claimed = await hub.http.get("/api/v1/assets", headers={"Authorization": f"Bearer {unknown}.secret"})
    assert claimed.status_code == 401
    await app.state.audit_writer.flush()

    [push] = await events(hub, path="/api/v1/reports/assets")
    assert (push["actor"], push["app_key"]) == (f"key:{admin_key}", admin_key)
    found = {(e["actor"], e["app_key"], e["status"]) for e in await events(hub, path="/api/v1/assets")}
    assert found == {
        (f"key:{regulator_key}", regulator_key, 200),
        ("anonymous", None, 401),
        ("anonymous", unknown, 401),  # the key id it claimed stays where it was
    }
    [forbidden] = await events(hub, path="/api/v1/admin/audit", actor=f"key:{regulator_key}")
    assert forbidden["status"] == 403
    anonymous = await events(hub, actor="anonymous")
    assert len(anonymous) == 2 and {e["actor"] for e in anonymous} == {"anonymous"}
    assert (await verify(hub))["ok"] is True


async def test_an_edited_actor_is_found_by_verify(hub: Hub, app: Any, engine: AsyncEngine) -> None:
    await hub.create_platform(P)
    await _pushes(hub, 3)
    await app.state.audit_writer.flush()
    _newest, middle, _oldest = await events(hub, path="/api/v1/reports/assets")
    assert middle["actor"] == f"key:{hub.admin.split('.', 1)[0]}"
    async with engine.begin() as conn:  # blame the admin's push on nobody
        await conn.execute(
            text("UPDATE audit_event SET actor = 'anonymous' WHERE seq = :s"), {"s": middle["seq"]}
        )
    result = await verify(hub)
    assert (result["ok"], result["first_bad_seq"]) == (False, middle["seq"]), result


# --- item 14: refused writes while the store is away ----------------------------------------------
@asynccontextmanager
async def store_refusing_writes(settings: Settings) -> AsyncIterator[None]:
    """The hub's database refuses writes until the block ends. SQLite: another connection holds the
    write lock; PostgreSQL: this run's own database stops accepting connections (never the server)."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        blocker = sqlite3.connect(str(url.database), isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        return
    name = str(url.database)
    await _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    try:
        await _pg_admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
            "AND pid <> pg_backend_pid()"
        )
        yield
    finally:
        await _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def outage_settings(settings: Settings, **update: Any) -> Settings:
    # a short SQLite lock wait; the rate limiter's own outage behaviour is tested with it
    return settings.model_copy(update={"sqlite_busy_timeout_ms": 100, "rate_limit_enabled": False, **update})


async def test_a_write_refused_while_the_store_is_away_is_audited_once_it_is_back(
    app: Any, settings: Settings
) -> None:
    async with running(outage_settings(settings)) as (hub, _):
        await hub.create_platform(P)
        async with store_refusing_writes(settings):
            refused = await hub.push("assets", batch(P, "b-outage", [vm("vm-1")]))
            assert refused.status_code == 503 and refused.json()["code"] == "5001", refused.text
        result = await verify(hub)  # the store answers again
        assert result["ok"] is True, result
        found = await events(hub, path="/api/v1/reports/assets")
        assert [(e["method"], e["status"], e["request_id"]) for e in found] == [
            ("POST", 503, refused.json()["request_id"])
        ]


async def test_when_the_backlog_is_full_the_log_says_how_many_events_were_not_recorded(
    app: Any, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.security.audit")
    async with running(outage_settings(settings, audit_backlog_max=2)) as (hub, _):
        await hub.create_platform(P)
        async with store_refusing_writes(settings):
            answers = [await hub.push("assets", batch(P, f"b{n}", [vm(f"vm-{n}")])) for n in range(4)]
            assert [a.status_code for a in answers] == [503] * 4
        assert (await verify(hub))["ok"] is True
        found = await events(hub, path="/api/v1/reports/assets")
        assert sorted(e["request_id"] for e in found) == sorted(a.json()["request_id"] for a in answers[:2])
    lines = [r.getMessage() for r in caplog.records if "not recorded" in r.getMessage()]
    assert len(lines) == 1 and " 2 " in lines[0], lines


# --- §14: data files ------------------------------------------------------------------------------
async def test_the_head_checkpoint_file_is_private(app: Any, settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "not-yet" / "var"
    private = settings.model_copy(
        update={"data_dir": data, "secret_key": SecretStr(secrets.token_hex(32)), "rate_limit_enabled": False}
    )
    async with running(private) as (hub, _):
        await hub.create_platform(P)
        head = data / HEAD_FILE
        assert stat.S_IMODE(head.stat().st_mode) == 0o600
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in data.glob(HEAD_FILE + "*"))
        if not private.is_sqlite:  # on SQLite the rate limiter's database file makes the directory first
            assert stat.S_IMODE(data.stat().st_mode) == 0o700
