"""Push throughput of one client: 10 000-record batches per kind, on SQLite and PostgreSQL.

Prints records/s per kind and database, in-process over the ASGI interface (the HTTP benchmark
with a running uvicorn and the COPY baseline is the benchmark issue's job). Usage:
    .venv/bin/python bench/push_throughput.py [--batches 3] [--records 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from alembic import command

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.cli import alembic_config
from app.config import Settings
from app.db import create_sessionmaker
from app.main import create_app
from app.schemas.common import ClientCreate
from app.security.keys import load_server_key
from app.services.clients import create_client

PG_DSN = os.environ.get("SUPHUB_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def records(kind: str, n: int, batch_no: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC).replace(microsecond=0)
    if kind == "metrics":
        return [
            {
                "metric": "cpu.util",
                "asset_id": f"vm-{i % 1000}",
                "value": float(i % 100),
                "ts": (now - timedelta(minutes=batch_no * 10 + i // 1000)).isoformat(),
            }
            for i in range(n)
        ]
    if kind == "assets":
        return [
            {
                "asset_id": f"vm-{i}",
                "asset_type": "vm",
                "name": f"vm {i} b{batch_no}",
                "status": "running",
                "cpu_vendor": "Hygon",
                "os_name": "Kylin V10",
                "vcpus": 4,
                "memory_mib": 8192,
            }
            for i in range(n)
        ]
    return [
        {
            "category": "operation",
            "type": "login",
            "event_time": now.isoformat(),
            "severity": 6,
            "actor": f"user{i}",
            "action": "login",
            "outcome": "success",
            "message": f"b{batch_no} #{i}",
        }
        for i in range(n)
    ]


async def run(url: str, data_dir: Path, batches: int, n: int) -> dict[str, float]:
    settings = Settings(database_url=url, data_dir=data_dir, _env_file=None)  # type: ignore[call-arg]
    app = create_app(settings)
    async with create_sessionmaker(app.state.engine)() as session:
        admin = await create_client(session, load_server_key(settings), ClientCreate(name="b", role="admin"))
        await session.commit()
    auth = {"Authorization": f"Bearer {admin['bearer']}", "Content-Type": "application/json"}
    rates: dict[str, float] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub", timeout=600) as http:
        await http.post(
            "/api/v1/admin/platforms",
            headers=auth,
            json={
                "platform_code": "BENCH-01",
                "name": "bench",
                "region_code": "440100",
                "network_zone": "gov_extranet",
                "level": "city",
            },
        )
        for kind in ("metrics", "assets", "logs"):
            elapsed = 0.0
            for b in range(batches):
                body = orjson.dumps(
                    {
                        "batch_id": f"{kind}-{b}",
                        "platform_code": "BENCH-01",
                        "collected_at": datetime.now(UTC).isoformat(),
                        "records": records(kind, n, b),
                    }
                )
                start = time.perf_counter()
                response = await http.post(f"/api/v1/reports/{kind}", content=body, headers=auth)
                elapsed += time.perf_counter() - start
                assert response.status_code == 200, response.text[:500]
            rates[kind] = batches * n / elapsed
    await app.state.engine.dispose()
    return rates


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await asyncio.to_thread(command.upgrade, alembic_config(sqlite_url), "head")
        results = {"sqlite": await run(sqlite_url, Path(tmp), args.batches, args.records)}
        name = f"suphub_bench_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(PG_DSN)
        await conn.execute(f'CREATE DATABASE "{name}"')
        try:
            pg_url = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
            await asyncio.to_thread(command.upgrade, alembic_config(pg_url), "head")
            results["postgres"] = await run(pg_url, Path(tmp), args.batches, args.records)
        finally:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()
    print(
        f"{'kind':<10}{'sqlite rec/s':>15}{'postgres rec/s':>17}"
        f"   ({args.batches} × {args.records}-record batches)"
    )
    for kind in ("metrics", "assets", "logs"):
        print(f"{kind:<10}{results['sqlite'][kind]:>15,.0f}{results['postgres'][kind]:>17,.0f}")


if __name__ == "__main__":
    asyncio.run(main())
