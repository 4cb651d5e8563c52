"""The database goes away under load: stopped, then frozen. No 500, no hung request, recovery.

The hub runs under ``supervision-hub serve`` on a PRIVATE PostgreSQL cluster (``tests/pgcluster.py``:
``initdb`` / ``pg_ctl`` on a spare port, as the ``postgres`` user when run as root — never the
shared server on 5432), with ``SUPHUB_STATEMENT_TIMEOUT_S=5`` and ``SUPHUB_DB_POOL_TIMEOUT_S=5``.
Signed pushers (each batch retried with the same id and bytes until acknowledged) and readers
(logs, assets, platforms, overview as a regulator; ``/readyz``) run throughout while the drill

1. lets the load settle;
2. stops the cluster (``pg_ctl stop -m fast``) for N s, then starts it again;
3. freezes it (SIGSTOP of the postmaster and every backend: TCP connects, nothing answers) for
   N s, then thaws it;
4. watches the hub recover by itself (the same process, never restarted).

Figures: answers by status, 500s (goal 0), the longest request (goal ≤ statement limit + 5 s),
503s without ``Retry-After`` (reported), seconds until the first success after each restore,
whether every request of the last window succeeded (goal), and, read from the database at the
end, acknowledged log records lost (goal 0).

    .venv/bin/python -m tests.drills.drill_pg_outage [--quick] [--outage 30] [--freeze 45]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
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
)
from tests.pgcluster import PrivateCluster, private_cluster_available

STATEMENT_LIMIT_S = 5
POOL_TIMEOUT_S = 5
CLIENT_TIMEOUT_S = 90
READS = (
    "/api/v1/logs?limit=50",
    "/api/v1/assets?limit=50",
    "/api/v1/platforms",
    "/api/v1/overview",
    "/readyz",
)


@dataclass
class Answer:
    phase: str
    what: str  # push | read
    status: str  # "200", "503", or the httpx error's name
    seconds: float
    retry_after: bool
    ended: float  # monotonic
    path: str = ""  # a read's path (the over-limit lines name it)


@dataclass
class Drill:
    phase: str = "before"
    stop: bool = False
    answers: list[Answer] = field(default_factory=list)
    acked_ids: set[str] = field(default_factory=set)
    samples_500: list[str] = field(default_factory=list)

    def record(
        self,
        phase: str,
        what: str,
        response: httpx.Response | None,
        error: str,
        started: float,
        path: str = "",
    ) -> None:
        status = str(response.status_code) if response is not None else error
        retry_after = response is not None and "retry-after" in response.headers
        now = time.monotonic()
        self.answers.append(Answer(phase, what, status, now - started, retry_after, now, path))
        if response is not None and response.status_code >= 500 and response.status_code != 503:
            self.samples_500.append(f"{what} in {phase}: {response.status_code} {response.text[:300]}")


async def pusher(number: int, provider: Provider, base: str, drill: Drill) -> None:
    """Small signed log batches, each retried (same id, same bytes) until acknowledged."""
    path = "/api/v1/reports/logs"
    async with httpx.AsyncClient(base_url=base, timeout=CLIENT_TIMEOUT_S) as http:
        b = 0
        while not drill.stop:
            now = datetime.now(UTC).replace(microsecond=0).isoformat()
            ids = [f"o{number}-b{b}-r{r}" for r in range(20)]
            body = batch_body(
                provider.platform, f"outage-{number}-{b}", [log_record(i, i, now) for i in ids], now
            )
            while True:  # until acknowledged; once the drill stops, only until the store is back
                phase, started = drill.phase, time.monotonic()
                response, error = None, ""
                try:
                    response = await http.post(path, content=body, headers=provider.headers(path, body))
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                drill.record(phase, "push", response, error, started)
                if response is not None and response.status_code == 200:
                    drill.acked_ids.update(ids)
                    break
                if response is not None and response.status_code < 500 and response.status_code != 429:
                    break  # refused for good: counted by its status, nothing to retry
                if drill.stop and drill.phase == "done":
                    return
                await asyncio.sleep(random.uniform(0.2, 0.5))
            b += 1
            await asyncio.sleep(random.uniform(0.1, 0.3))


async def reader(number: int, bearer: str, base: str, drill: Drill) -> None:
    """Reads as a regulator, round the list of paths."""
    headers = {"Authorization": f"Bearer {bearer}"}
    async with httpx.AsyncClient(base_url=base, timeout=CLIENT_TIMEOUT_S) as http:
        i = number
        while not drill.stop:
            path = READS[i % len(READS)]
            i += 1
            phase, started = drill.phase, time.monotonic()
            response, error = None, ""
            try:
                response = await http.get(path, headers=headers)
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            drill.record(phase, "read", response, error, started, path.split("?", 1)[0])
            await asyncio.sleep(random.uniform(0.05, 0.2))


def first_success_after(drill: Drill, since: float) -> float | None:
    """Seconds from ``since`` until the first request that started after it and succeeded."""
    ends = [a.ended for a in drill.answers if a.status == "200" and a.ended - a.seconds >= since]
    return round(min(ends) - since, 1) if ends else None


async def wait_for_success(drill: Drill, since: float, limit: float) -> None:
    deadline = time.monotonic() + limit
    while first_success_after(drill, since) is None and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)


async def stored_ids(url: str) -> set[str]:
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        return {row["log_id"] for row in await conn.fetch("SELECT log_id FROM log_record")}
    finally:
        await conn.close()


async def timeline(
    cluster: PrivateCluster, drill: Drill, settle: float, outage: float, freeze: float
) -> dict[str, float | None]:
    """Stop, start, freeze, thaw; the recovery times."""
    recovery: dict[str, float | None] = {}
    await asyncio.sleep(settle)
    log(f"  stopping the cluster for {outage:.0f} s")
    drill.phase = "stopped"
    await asyncio.to_thread(cluster.stop, "fast")
    await asyncio.sleep(outage)
    drill.phase = "restarted"
    await asyncio.to_thread(cluster.start)
    restored = time.monotonic()
    await wait_for_success(drill, restored, 60)
    recovery["after_start_s"] = first_success_after(drill, restored)
    log(f"  started again; first success after {recovery['after_start_s']} s")
    drill.phase = "running"
    await asyncio.sleep(settle)
    log(f"  freezing the cluster for {freeze:.0f} s")
    drill.phase = "frozen"
    await asyncio.to_thread(cluster.freeze)
    await asyncio.sleep(freeze)
    drill.phase = "thawed"
    await asyncio.to_thread(cluster.thaw)
    restored = time.monotonic()
    await wait_for_success(drill, restored, 60)
    recovery["after_thaw_s"] = first_success_after(drill, restored)
    log(f"  thawed; first success after {recovery['after_thaw_s']} s")
    drill.phase = "recovered"
    await asyncio.sleep(settle)
    drill.phase = "after"
    await asyncio.sleep(settle)
    return recovery


async def run(quick: bool, outage: float, freeze: float) -> bool:
    settle = 4.0 if quick else 10.0
    with tempfile.TemporaryDirectory(prefix="suphub-drill-pg-outage-") as tmp_name:
        tmp = Path(tmp_name)
        cluster = PrivateCluster(tmp)
        server: HubServer | None = None
        tracebacks = 0
        try:
            await asyncio.to_thread(cluster.start)
            url = await asyncio.to_thread(cluster.create_database, "suphub_drill")
            log(f"pg_outage: private cluster on port {cluster.port}")
            env = hub_env(
                url,
                tmp / "data",
                SUPHUB_STATEMENT_TIMEOUT_S=str(STATEMENT_LIMIT_S),
                SUPHUB_DB_POOL_TIMEOUT_S=str(POOL_TIMEOUT_S),
            )
            server = HubServer(env, tmp / "hub.log")
            await asyncio.to_thread(server.start)
            pid = server.pid
            admin_key = await asyncio.to_thread(cli_create_client, env, "drill admin", "admin")
            admin = Admin(server.base, admin_key["bearer"])
            try:
                providers = []
                for p in range(4):
                    await admin.platform(f"DRILL-PG-{p:02d}")
                    providers.append(await admin.provider(f"DRILL-PG-{p:02d}"))
                regulator = (await admin.key("regulator", regions=["440100"]))["bearer"]
            finally:
                await admin.close()
            drill = Drill()
            tasks = [asyncio.create_task(pusher(i, p, server.base, drill)) for i, p in enumerate(providers)]
            tasks += [asyncio.create_task(reader(i, regulator, server.base, drill)) for i in range(4)]
            try:
                recovery = await timeline(cluster, drill, settle, outage, freeze)
            finally:
                drill.stop = True
                drill.phase = "done"
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), CLIENT_TIMEOUT_S + 30)
            same_process = server.process is not None and server.process.poll() is None and server.pid == pid
            lost = len(drill.acked_ids - await stored_ids(url))
        finally:
            with contextlib.suppress(Exception):
                cluster.thaw()
            if server is not None:
                server.stop()
                tracebacks = count_tracebacks(server.keep_log("pg-outage"))
            await asyncio.to_thread(cluster.destroy)
    statuses = Counter(a.status for a in drill.answers)
    answers_500 = sum(a.status.startswith("5") and a.status != "503" for a in drill.answers)
    longest = max(drill.answers, key=lambda a: a.seconds)
    no_retry_after = sum(a.status == "503" and not a.retry_after for a in drill.answers)
    last = [a for a in drill.answers if a.phase == "after"]
    recovered = bool(last) and all(a.status == "200" for a in last) and same_process
    for sample in drill.samples_500[:10]:
        log(f"  5xx: {sample}")
    for slow in sorted(drill.answers, key=lambda a: -a.seconds)[:10]:
        if slow.seconds > STATEMENT_LIMIT_S + 5:
            log(
                f"  over the limit: {slow.what}{' ' + slow.path if slow.path else ''}"
                f" begun while {slow.phase}: "
                f"{slow.status} after {slow.seconds:.1f} s"
            )
    by_phase = Counter((a.phase, a.status) for a in drill.answers)
    for phase in (
        "before",
        "stopped",
        "restarted",
        "running",
        "frozen",
        "thawed",
        "recovered",
        "after",
        "done",
    ):
        line = ", ".join(f"{s}:{n}" for (p, s), n in sorted(by_phase.items()) if p == phase)
        if line:
            log(f"  {phase:<10} {line}")
    limit = STATEMENT_LIMIT_S + 5
    ok = answers_500 == 0 and longest.seconds <= limit and recovered and lost == 0
    emit(
        "pg_outage",
        {
            "outage_s": round(outage),
            "freeze_s": round(freeze),
            "requests": len(drill.answers),
            "statuses": ",".join(f"{k}:{v}" for k, v in sorted(statuses.items())),
            "answers_500": answers_500,
            "longest_s": f"{longest.seconds:.1f}({longest.what},{longest.phase},{longest.status})",
            "limit_s": limit,
            "over_limit": sum(a.seconds > limit for a in drill.answers),
            "503_without_retry_after": no_retry_after,
            "recovery_after_start_s": recovery.get("after_start_s"),
            "recovery_after_thaw_s": recovery.get("after_thaw_s"),
            "last_window_ok": f"{sum(a.status == '200' for a in last)}/{len(last)}",
            "same_process": "yes" if same_process else "no",
            "lost": lost,
            "tracebacks": tracebacks,
        },
        ok,
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="an 8 s outage and a 15 s freeze")
    parser.add_argument("--outage", type=float, help="seconds the cluster is stopped (default 30; --quick 8)")
    parser.add_argument("--freeze", type=float, help="seconds the cluster is frozen (default 45; --quick 15)")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if not private_cluster_available():
        print("pg_outage: skipped: initdb/pg_ctl (and, as root, a postgres user with runuser) not found")
        return 0
    outage = args.outage or (8.0 if args.quick else 30.0)
    freeze = args.freeze or (15.0 if args.quick else 45.0)
    return 0 if asyncio.run(run(args.quick, outage, freeze)) else 1


if __name__ == "__main__":
    sys.exit(main())
