"""kill -9 under concurrent signed pushers: nothing acknowledged is lost, nothing stored twice.

For each database (a throw-away SQLite file, then a throw-away PostgreSQL database on the local
server) the hub runs under ``supervision-hub serve``; N pushers, each with its own provider key
(two per platform, so they contend for the same log chain), push batches of logs with unique
``log_id``s and unique ``batch_id``s, signed with HMAC-SM3. A batch that gets anything but 200
(connection refused or reset, 503, a timeout) is sent again with the same ``batch_id`` and the
same bytes until it is acknowledged. Meanwhile the server is SIGKILLed several times, each time
while requests are in flight, and started again on the same port.

Afterwards, read from the database itself: every record of an acknowledged batch is stored
(``lost``), no ``log_id`` is stored twice (``duplicates``), nothing is stored that was never
sent (``strays``), every batch was acknowledged, and each platform's log chain verifies
(``GET /api/v1/logs/verify``).

    .venv/bin/python -m tests.drills.drill_kill9 [--quick] [--databases sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from tests.drills.common import (
    Admin,
    HubServer,
    Provider,
    asyncpg_dsn,
    batch_body,
    cli_create_client,
    count_tracebacks,
    emit,
    exit_on_sigterm,
    hub_env,
    log,
    log_record,
    throwaway_database,
)


@dataclass
class Load:
    """What the pushers did, shared by all of them."""

    acked_batches: int = 0
    acked_ids: set[str] = field(default_factory=set)
    sent_ids: set[str] = field(default_factory=set)
    retries: int = 0
    replays: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    rejected_records: int = 0
    in_flight: int = 0
    in_flight_at_kills: list[int] = field(default_factory=list)
    pushers_done: int = 0


async def pusher(
    number: int,
    provider: Provider,
    base: str,
    batches: int,
    size: int,
    load: Load,
    deadline: float,
) -> None:
    """Push ``batches`` batches; retry each (same id, same bytes) until it is acknowledged."""
    path = "/api/v1/reports/logs"
    event_time = datetime.now(UTC).replace(microsecond=0).isoformat()
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(30, connect=5)) as http:
        for b in range(batches):
            batch_id = f"kill9-p{number}-b{b}"
            ids = [f"p{number}-b{b}-r{r}" for r in range(size)]
            records = [log_record(i, f"drill kill9 {i}", event_time) for i in ids]
            body = batch_body(provider.platform, batch_id, records, event_time)
            load.sent_ids.update(ids)
            attempt = 0
            while time.monotonic() < deadline:
                if attempt:  # back off: 0.1 s doubling up to 1 s, with jitter
                    load.retries += 1
                    await asyncio.sleep(random.uniform(0.5, 1.0) * min(1.0, 0.1 * 2 ** (attempt - 1)))
                attempt += 1
                load.in_flight += 1
                try:
                    response = await http.post(path, content=body, headers=provider.headers(path, body))
                except httpx.HTTPError as exc:
                    load.answers[type(exc).__name__] += 1
                    continue
                finally:
                    load.in_flight -= 1
                load.answers[str(response.status_code)] += 1
                if response.status_code == 200:
                    data = response.json()["data"]
                    if response.headers.get("Idempotent-Replay") == "true":
                        load.replays += 1
                    load.rejected_records += int(data["rejected"])
                    if data["accepted"] == size:
                        load.acked_ids.update(ids)
                    load.acked_batches += 1
                    break
                if response.status_code < 500 and response.status_code != 429:
                    load.unexpected.append(f"{batch_id}: {response.status_code} {response.text[:300]}")
                    break
    load.pushers_done += 1


async def killer(
    server: HubServer, load: Load, kills: int, pushers: int, total: int, rng: random.Random
) -> int:
    """SIGKILL the server ``kills`` times, spread over the load (the k-th once about k/(kills+1)
    of the batches are acknowledged) and while requests are in flight; restart it each time."""
    done = 0
    while done < kills and load.pushers_done < pushers:
        target = total * (done + 1 + rng.uniform(-0.3, 0.3)) / (kills + 1)
        while load.acked_batches < target and load.pushers_done < pushers:  # noqa: ASYNC110 (a poll)
            await asyncio.sleep(0.01)
        waited = 0.0
        while load.in_flight == 0 and waited < 5 and load.pushers_done < pushers:
            await asyncio.sleep(0.01)
            waited += 0.01
        if load.pushers_done >= pushers:
            break
        load.in_flight_at_kills.append(load.in_flight)
        server.kill9()
        done += 1
        log(f"  kill {done}: SIGKILL with {load.in_flight_at_kills[-1]} requests in flight")
        await asyncio.sleep(rng.uniform(0.1, 1.0))
        await asyncio.to_thread(server.start)
    return done


def stored_log_ids_sqlite(url: str) -> Counter[str]:
    path = url.split("///", 1)[1]
    with sqlite3.connect(path) as conn:
        return Counter(
            {
                row[0]: row[1]
                for row in conn.execute("SELECT log_id, count(*) FROM log_record GROUP BY log_id")
            }
        )


async def stored_log_ids(url: str) -> Counter[str]:
    """How many rows each ``log_id`` has, read from the database itself."""
    if url.startswith("sqlite"):
        return await asyncio.to_thread(stored_log_ids_sqlite, url)
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        rows = await conn.fetch("SELECT log_id, count(*) AS n FROM log_record GROUP BY log_id")
    finally:
        await conn.close()
    return Counter({row["log_id"]: row["n"] for row in rows})


async def one_pass(kind: str, pushers: int, batches: int, size: int, kills: int, seed: int) -> bool:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix=f"suphub-drill-kill9-{kind}-") as tmp_name:
        tmp = Path(tmp_name)
        async with throwaway_database(kind, tmp) as url:
            env = hub_env(url, tmp / "data")
            server = HubServer(env, tmp / "hub.log")
            try:
                await asyncio.to_thread(server.start)
                admin_key = await asyncio.to_thread(cli_create_client, env, "drill admin", "admin")
                admin = Admin(server.base, admin_key["bearer"])
                try:
                    platforms = [f"DRILL-K9-{p:02d}" for p in range((pushers + 1) // 2)]
                    for code in platforms:
                        await admin.platform(code)
                    providers = [await admin.provider(platforms[i // 2]) for i in range(pushers)]
                    load = Load()
                    deadline = time.monotonic() + 600
                    started = time.monotonic()
                    log(f"kill9 {kind}: {pushers} pushers × {batches} batches × {size} logs, {kills} kills")
                    tasks = [
                        asyncio.create_task(pusher(i, p, server.base, batches, size, load, deadline))
                        for i, p in enumerate(providers)
                    ]
                    done_kills = await killer(server, load, kills, pushers, pushers * batches, rng)
                    await asyncio.gather(*tasks)
                    elapsed = time.monotonic() - started
                    chains_ok = 0
                    for code in platforms:
                        verify = await admin.call(
                            "GET", "/api/v1/logs/verify", params={"platform_code": code}
                        )
                        chains_ok += bool(verify["ok"])
                finally:
                    await admin.close()
            finally:
                server.stop()
            stored = await stored_log_ids(url)
            tracebacks = count_tracebacks(server.keep_log(f"kill9-{kind}"))
    lost = len(load.acked_ids - stored.keys())
    duplicates = sum(n - 1 for n in stored.values() if n > 1)
    strays = len(stored.keys() - load.sent_ids)
    total = pushers * batches
    errors = {k: v for k, v in sorted(load.answers.items()) if k != "200"}
    ok = (
        lost == 0
        and duplicates == 0
        and strays == 0
        and load.acked_batches == total
        and done_kills == kills
        and not load.unexpected
        and load.rejected_records == 0
        and chains_ok == len(platforms)
        and "500" not in load.answers
    )
    for line in load.unexpected[:5]:
        log(f"  unexpected answer: {line}")
    emit(
        f"kill9 {kind}",
        {
            "batches": total,
            "acked": load.acked_batches,
            "records": len(load.acked_ids),
            "kills": done_kills,
            "in_flight_at_kills": "/".join(map(str, load.in_flight_at_kills)) or "-",
            "lost": lost,
            "duplicates": duplicates,
            "strays": strays,
            "retries": load.retries,
            "replays": load.replays,
            "failed_answers": ",".join(f"{k}:{v}" for k, v in errors.items()) or "-",
            "chains_ok": f"{chains_ok}/{len(platforms)}",
            "tracebacks": tracebacks,
            "seconds": round(elapsed),
        },
        ok,
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (< 1 min a database)")
    parser.add_argument("--databases", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--pushers", type=int, default=8)
    parser.add_argument("--batches", type=int, help="per pusher (default 40; --quick 12)")
    parser.add_argument("--size", type=int, help="logs per batch (default 100; --quick 50)")
    parser.add_argument("--kills", type=int, help="SIGKILLs per database (default 5; --quick 3)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    batches = args.batches or (12 if args.quick else 40)
    size = args.size or (50 if args.quick else 100)
    kills = args.kills or (3 if args.quick else 5)
    ok = True
    for kind in args.databases.split(","):
        ok = asyncio.run(one_pass(kind.strip(), args.pushers, batches, size, kills, args.seed)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
