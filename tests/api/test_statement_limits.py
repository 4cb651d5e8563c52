"""Every statement has a time limit (§13): past it the answer is 400 ``1005``; exports get their own.

PostgreSQL cancels a statement at ``statement_timeout``; here the asset list is made to outlast
the limit by a lock another session holds on its table (no sleeping, no huge data). SQLite has no
such setting: the hub's progress handler interrupts a statement past the limit; a limit of a
microsecond makes any statement that scans a thousand rows outlast it, whatever the machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from app.config import Settings
from app.main import create_app
from tests.helpers import Hub, batch, vm

P = "GD-GZ-ZWY-01"


@asynccontextmanager
async def instance(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """One more API worker on the same database, with other limits."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
        yield http
    await app.state.audit_writer.close()
    await app.state.rate_limiter.close()
    await app.state.engine.dispose()


class TableLock:
    """PostgreSQL: another session holding a table against readers until :meth:`release`."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.released = False

    async def release(self) -> None:
        if not self.released:
            self.released = True
            await self.conn.execute("ROLLBACK")


@asynccontextmanager
async def asset_table_locked(database_url: str) -> AsyncIterator[TableLock]:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    lock = TableLock(conn)
    try:
        await conn.execute("BEGIN; LOCK TABLE asset IN ACCESS EXCLUSIVE MODE")
        yield lock
        await lock.release()
    finally:
        await conn.close()


async def _many_assets(hub: Hub, n: int = 1500) -> None:
    await hub.create_platform(P)
    for start in range(0, n, 500):
        records = [vm(f"vm-{i}") for i in range(start, min(n, start + 500))]
        response = await hub.push("assets", batch(P, f"b-{start}", records))
        assert response.status_code == 200, response.text


async def test_a_statement_past_the_limit_answers_1005_and_an_export_has_its_own_limit(
    hub: Hub, settings: Settings, backend: str, database_url: str
) -> None:
    await _many_assets(hub)
    auth = hub.auth(hub.admin)
    query = {"q": "no such name"}  # a scan of every asset that finds nothing
    if backend == "sqlite":
        tight = settings.model_copy(update={"statement_timeout_s": 1e-6, "export_statement_timeout_s": 300.0})
        async with instance(tight) as http:
            refused = await http.get("/api/v1/assets", params=query, headers=auth)
            exported = await http.get("/api/v1/export/assets", params=query, headers=auth)
            small = await http.get("/api/v1/platforms", headers=auth)  # short statements still run
    else:
        tight = settings.model_copy(update={"statement_timeout_s": 0.5, "export_statement_timeout_s": 10.0})
        async with instance(tight) as http:
            async with asset_table_locked(database_url):
                refused = await asyncio.wait_for(http.get("/api/v1/assets", params=query, headers=auth), 15)
            async with asset_table_locked(database_url) as lock:
                # released after three statement limits: the export waits, within its own limit
                export = asyncio.ensure_future(http.get("/api/v1/export/assets", params=query, headers=auth))
                await asyncio.sleep(1.5)
                assert not export.done()
                await lock.release()
                exported = await asyncio.wait_for(export, 15)
            small = await http.get("/api/v1/platforms", headers=auth)
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["code"] == "1005" and body["request_id"] and "1005" not in body["message"]
    assert exported.status_code == 200, exported.text
    assert exported.text.lstrip("\ufeff").startswith("platform_code,")
    assert small.status_code == 200, small.text
    # the hub with the ordinary limit reads the same list
    assert (await hub.get("/api/v1/assets", **query)).status_code == 200


async def _raw_get(
    app: Any, path: str, query: str, headers: dict[str, str], on_body: Any
) -> tuple[int, bytes]:
    """One GET through the app's ASGI interface, calling ``on_body`` (awaited) after each body
    piece is sent: a test can act between two chunks of a streamed answer."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"hub.test"), *((k.lower().encode(), v.encode()) for k, v in headers.items())],
        "client": ("127.0.0.1", 40000),
        "server": ("hub.test", 80),
        "app": app,
    }
    finished = asyncio.Event()
    sent_request = False
    status = 0
    body = bytearray()

    async def receive() -> dict[str, Any]:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))
            await on_body(bytes(body))

    try:
        await asyncio.wait_for(app(scope, receive, send), 30)
    finally:
        finished.set()
    return status, bytes(body)


async def test_an_export_cut_after_its_first_bytes_ends_saying_it_is_incomplete(
    hub: Hub, settings: Settings, backend: str, database_url: str
) -> None:
    """The answer has begun (200, the first rows sent) when a later chunk's statement is cancelled
    at the export limit: its status cannot change any more, so the file's last line says it is
    incomplete, with the code, instead of stopping silently where a reader takes it for whole."""
    if backend != "postgres":
        pytest.skip("needs a lock between two chunks of one export (PostgreSQL); SQLite readers never wait")
    await _many_assets(hub, 2_100)  # two chunks of the export
    tight = settings.model_copy(update={"export_statement_timeout_s": 1.0})
    app = create_app(tight)
    locks: list[TableLock] = []

    async def lock_after_first_rows(body: bytes) -> None:
        if not locks and b"vm-" in body:
            conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
            await conn.execute("BEGIN; LOCK TABLE asset IN ACCESS EXCLUSIVE MODE")
            locks.append(TableLock(conn))

    try:
        for fmt in ("csv", "ndjson"):
            status, body = await _raw_get(
                app, "/api/v1/export/assets", f"format={fmt}", hub.auth(hub.admin), lock_after_first_rows
            )
            for lock in locks:
                await lock.release()
                await lock.conn.close()
            locks.clear()
            assert status == 200
            lines = body.decode("utf-8-sig").splitlines()
            assert 1 < len(lines) < 2_100, "the export was not cut"
            last = lines[-1]
            if fmt == "csv":
                assert last.startswith("# 导出不完整") and ",1005," in last, last
            else:
                marker = orjson.loads(last)
                assert marker["incomplete"] is True and marker["code"] == "1005", marker
                assert all("asset_id" in orjson.loads(line) for line in lines[:-1])
    finally:
        for lock in locks:
            await lock.conn.close()
        await app.state.audit_writer.close()
        await app.state.rate_limiter.close()
        await app.state.engine.dispose()
