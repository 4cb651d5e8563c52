"""Query plans and latency of the northbound lists at scale, on PostgreSQL (issue 4, "Done means").

Why a script and not a test: the question — does every filtered page use an index on its filter
or its sort key, with no sequential scan of the big tables at 1M assets / 50M samples — only has
an answer on a database that size, which takes minutes to seed. The script:

1. creates ``suphub_bench_<random>``, migrates it to head and seeds it in bulk (:mod:`bench.seed`);
2. sends the §5 list requests through the real HTTP interface, in-process (``httpx.ASGITransport``),
   page 1 and a deep page reached by following ``next_cursor``;
3. captures every SQL statement each request runs (``before_cursor_execute``) and runs
   ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` on it with its parameters: a ``Seq Scan`` of a big
   table is a FAIL, an index walk discarding many rows or a slow statement a WARN;
4. measures p50 / p99 of a filtered asset page (page 1 and deep), the 30-day hourly series of one
   asset and a few more reads, and the peak RSS growth and rows/s of a full asset export
   (csv and xlsx) streamed to nowhere;
5. prints a table and writes ``bench/results/explain-<date>.json``.

Usage::

    .venv/bin/python bench/explain_queries.py --quick            # 100k assets / 2M samples, minutes
    .venv/bin/python bench/explain_queries.py                    # 1M assets / 50M samples
    .venv/bin/python bench/explain_queries.py --keep --runs 100  # keep the database afterwards

``SUPHUB_TEST_PG_DSN`` names the server (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from alembic import command
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.cli import alembic_config  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import create_sessionmaker  # noqa: E402
from app.main import create_app  # noqa: E402
from app.schemas.common import ClientCreate  # noqa: E402
from app.security.keys import load_server_key  # noqa: E402
from app.services.clients import create_client  # noqa: E402
from app.services.ingest.kinds import asset_uid  # noqa: E402
from bench.seed import SeedResult, SeedSpec, seed  # noqa: E402

PG_DSN = os.environ.get("SUPHUB_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
#: tables whose sequential scan fails a page (partitions count as their parent)
BIG_TABLES = frozenset(
    {
        "asset",
        "asset_change",
        "alarm",
        "log_record",
        "metric_sample",
        "metric_series",
        "metric_rollup_5m",
        "metric_rollup_1h",
        "metric_rollup_1d",
        "environment_sample",
    }
)
#: an index walk that throws away more rows than this, or a statement slower than this, is a WARN
WARN_REMOVED_ROWS = 10_000
WARN_MS = 100.0


# --- capturing what a request runs -------------------------------------------------------------
@dataclass
class Statement:
    sql: str
    params: Any
    plan: Any = None
    error: str | None = None
    analyzed: bool = False
    #: the plan of the same statement as a generic plan (what a cached prepared statement runs)
    generic_plan: Any = None


class Capture:
    """Records the statements sent through ``engine`` while a label is active."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.current: list[Statement] | None = None
        event.listen(engine.sync_engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, _conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        if self.current is not None:
            self.current.append(Statement(sql, params))

    def start(self) -> list[Statement]:
        self.current = []
        return self.current

    def stop(self) -> None:
        self.current = None


# --- the requests -------------------------------------------------------------------------------
@dataclass
class Probe:
    """One request of the set: which endpoint, with what, as whom; ``paged`` lists get a deep page."""

    name: str
    path: str
    params: dict[str, Any]
    who: str = "admin"
    paged: bool = True
    #: export statements read everything by design: a sequential scan there is information, not a FAIL
    export: bool = False


@dataclass
class Outcome:
    probe: Probe
    page: str
    status: int
    ms: float
    items: int | None
    statements: list[Statement] = field(default_factory=list)
    note: str = ""


def probes(data: SeedResult) -> list[Probe]:
    """The §5 filters one at a time, plus the combinations the latency targets use."""
    now = data.now
    big = data.big_platform
    platform, asset = data.dense_asset
    uid = str(asset_uid(platform, asset))
    day_ago = (now - timedelta(days=1)).isoformat()
    out = [
        Probe("assets", "/api/v1/assets", {}),
        Probe("assets platform_code", "/api/v1/assets", {"platform_code": big}),
        Probe("assets region_code", "/api/v1/assets", {"region_code": "4401"}),
        Probe("assets asset_type", "/api/v1/assets", {"asset_type": "database_instance"}),
        Probe("assets status", "/api/v1/assets", {"status": "error"}),
        Probe("assets lifecycle", "/api/v1/assets", {"lifecycle": "maintenance"}),
        Probe("assets cpu_arch", "/api/v1/assets", {"cpu_arch": "loongarch64"}),
        Probe("assets is_domestic", "/api/v1/assets", {"is_domestic": "true"}),
        Probe("assets network_zone", "/api/v1/assets", {"network_zone": "private"}),
        Probe("assets using_unit", "/api/v1/assets", {"using_unit": data.using_unit}),
        Probe("assets business_system", "/api/v1/assets", {"business_system": data.business_system}),
        Probe("assets q=name", "/api/v1/assets", {"q": data.name_fragment}),
        Probe("assets q=ip", "/api/v1/assets", {"q": data.ip_fragment}),
        Probe("assets include_retired", "/api/v1/assets", {"include_retired": "true"}),
        Probe("assets updated_since=time", "/api/v1/assets", {"updated_since": day_ago}),
        Probe("assets updated_since=token", "/api/v1/assets", {"updated_since": "<token>"}),
        Probe("assets platform+type", "/api/v1/assets", {"platform_code": big, "asset_type": "vm"}),
        Probe(
            "assets platform+type total",
            "/api/v1/assets",
            {"platform_code": big, "asset_type": "vm", "with_total": "true"},
            paged=False,
        ),
        Probe("assets (regulator 4401)", "/api/v1/assets", {}, who="regulator"),
        Probe("assets type (regulator)", "/api/v1/assets", {"asset_type": "vm"}, who="regulator"),
        Probe("asset detail", f"/api/v1/assets/{uid}", {}, paged=False),
        Probe("asset history", f"/api/v1/assets/{uid}/history", {}, paged=False),
        Probe("alarms", "/api/v1/alarms", {}),
        Probe("alarms platform_code", "/api/v1/alarms", {"platform_code": big}),
        Probe("alarms status", "/api/v1/alarms", {"status": "active"}),
        Probe("alarms level_max", "/api/v1/alarms", {"level_max": "1"}),
        Probe(
            "alarms from/to 30d",
            "/api/v1/alarms",
            {"from": (now - timedelta(days=30)).isoformat(), "to": now.isoformat()},
        ),
        Probe("alarms updated_since=time", "/api/v1/alarms", {"updated_since": day_ago}),
        Probe("logs (24 h)", "/api/v1/logs", {}),
        Probe("logs platform_code", "/api/v1/logs", {"platform_code": big}),
        Probe("logs category", "/api/v1/logs", {"category": "security"}),
        Probe("logs actor", "/api/v1/logs", {"actor": "user0042"}),
        Probe("logs q", "/api/v1/logs", {"q": "user0042"}),
        Probe(
            "logs updated_since=time",
            "/api/v1/logs",
            {"updated_since": (now - timedelta(hours=1)).isoformat()},
        ),
        Probe(
            "metric samples 1 h",
            "/api/v1/metrics/samples",
            {
                "platform_code": platform,
                "metric": "cpu.util",
                "from": (now - timedelta(hours=1)).isoformat(),
                "to": now.isoformat(),
            },
        ),
        Probe(
            "metric samples 24 h",
            "/api/v1/metrics/samples",
            {"platform_code": platform, "metric": "cpu.util"},
        ),
        Probe(
            "metric samples asset 24 h",
            "/api/v1/metrics/samples",
            {"platform_code": platform, "metric": "cpu.util", "asset_id": asset},
        ),
        Probe("metric samples all 24 h", "/api/v1/metrics/samples", {"metric": "cpu.util"}),
        Probe(
            "metric series 30 d 1h",
            "/api/v1/metrics/series",
            {
                "metric": "cpu.util",
                "asset_uid": uid,
                "from": (now - timedelta(days=30)).isoformat(),
                "to": now.isoformat(),
                "step": "1h",
            },
            paged=False,
        ),
        Probe(
            "metric series 24 h auto",
            "/api/v1/metrics/series",
            {"metric": "cpu.util", "asset_uid": uid},
            paged=False,
        ),
        Probe(
            "metric latest top 10",
            "/api/v1/metrics/latest",
            {"metric": "cpu.util", "limit": "10"},
            paged=False,
        ),
        Probe(
            "metric latest platform",
            "/api/v1/metrics/latest",
            {"metric": "cpu.util", "platform_code": platform, "limit": "10"},
            paged=False,
        ),
        Probe(
            "metric latest (regulator)",
            "/api/v1/metrics/latest",
            {"metric": "cpu.util", "limit": "10"},
            who="regulator",
            paged=False,
        ),
    ]
    return out


class Bench:
    """The app in-process, its clients, and the statement capture."""

    def __init__(self, app: Any, http: httpx.AsyncClient, auth: dict[str, dict[str, str]], args: Any) -> None:
        self.app, self.http, self.auth, self.args = app, http, auth, args
        self.capture = Capture(app.state.engine)
        #: the parameters (cursor included) of the deep page of each paged request
        self.deep: dict[str, dict[str, Any]] = {}

    async def get(self, path: str, params: dict[str, Any], who: str) -> tuple[int, float, Any]:
        started = time.perf_counter()
        response = await self.http.get(path, params=params, headers=self.auth[who])
        ms = (time.perf_counter() - started) * 1000
        body = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else None
        )
        return response.status_code, ms, body

    async def captured(self, probe: Probe, page: str, params: dict[str, Any]) -> tuple[Outcome, Any]:
        statements = self.capture.start()
        try:
            status, ms, body = await self.get(probe.path, params, probe.who)
        finally:
            self.capture.stop()
        data = (body or {}).get("data") if isinstance(body, dict) else None
        items = len(data["items"]) if isinstance(data, dict) and isinstance(data.get("items"), list) else None
        outcome = Outcome(probe, page, status, ms, items, statements)
        if status != 200:
            outcome.note = str((body or {}).get("message", ""))[:160] if isinstance(body, dict) else ""
        return outcome, data

    async def run(self, probe: Probe, sync_token: str | None) -> list[Outcome]:
        """Page 1, then ``--deep-pages`` pages on (within ``--walk-budget`` seconds), the last captured."""
        params = dict(probe.params)
        if params.get("updated_since") == "<token>":
            if sync_token is None:
                return []
            params["updated_since"] = sync_token
        first, data = await self.captured(probe, "page 1", params)
        out = [first]
        if not probe.paged or first.status != 200:
            return out
        target, number, started = self._next(params, data), 2, time.perf_counter()
        while target is not None and number < self.args.deep_pages:
            if time.perf_counter() - started > self.args.walk_budget:
                break
            status, _, body = await self.get(probe.path, target, probe.who)
            if status != 200:
                break
            candidate = self._next(target, (body or {}).get("data"))
            if candidate is None:
                break
            target, number = candidate, number + 1
        if target is None:
            return out
        deep, _ = await self.captured(probe, f"page {number}", target)
        if number < self.args.deep_pages:
            deep.note = (deep.note + f" (walk ended at page {number})").strip()
        out.append(deep)
        self.deep[probe.name] = target
        return out

    @staticmethod
    def _next(params: dict[str, Any], data: Any) -> dict[str, Any] | None:
        if not isinstance(data, dict) or not data.get("next_cursor"):
            return None
        if "sync_token" in data:
            return {**params, "updated_since": data["next_cursor"]}
        return {**params, "cursor": data["next_cursor"]}


# --- EXPLAIN ------------------------------------------------------------------------------------
async def partition_parents(conn: asyncpg.Connection) -> dict[str, str]:
    """Partition → the table it belongs to (through every level)."""
    rows = await conn.fetch(
        "SELECT c.relname AS child, p.relname AS parent FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
    )
    parent = {r["child"]: r["parent"] for r in rows}

    def root(name: str) -> str:
        seen = 0
        while name in parent and seen < 10:
            name, seen = parent[name], seen + 1
        return name

    return {child: root(child) for child in parent}


async def explain(
    engine: AsyncEngine, statement: Statement, analyze: bool, partitioned: frozenset[str] = frozenset()
) -> None:
    """EXPLAIN one captured statement with its own parameters (ANALYZE when it is a read).

    A statement on a partitioned table is also explained as a generic plan: asyncpg prepares
    every statement and PostgreSQL switches a prepared statement to a generic plan after five
    executions, which cannot prune partitions or see the parameter values when planning.
    """
    head = statement.sql.lstrip().split(None, 1)[0].upper()
    if head not in {"SELECT", "WITH"}:
        return
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SET LOCAL statement_timeout = '300s'")
            result = await conn.exec_driver_sql(f"EXPLAIN ({options}) {statement.sql}", statement.params)
            plan = result.scalar_one()
            await conn.rollback()
        statement.plan = orjson.loads(plan) if isinstance(plan, str | bytes) else plan
        statement.analyzed = analyze
    except Exception as exc:  # a plan we cannot get is reported, not fatal
        statement.error = f"{type(exc).__name__}: {exc}"[:300]
        return
    lowered = statement.sql.lower()
    if statement.params and any(f"from {t}" in lowered or f"join {t}" in lowered for t in partitioned):
        await explain_generic(engine, statement, options)


async def explain_generic(engine: AsyncEngine, statement: Statement, options: str) -> None:
    """The generic plan, through ``PREPARE`` and ``EXPLAIN EXECUTE`` (whose arguments are literals)."""
    arguments = ", ".join(_literal(p) for p in statement.params)
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SET LOCAL statement_timeout = '300s'")
            await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.exec_driver_sql(f"PREPARE bench_generic AS {statement.sql}")
            try:
                result = await conn.exec_driver_sql(f"EXPLAIN ({options}) EXECUTE bench_generic({arguments})")
                plan = result.scalar_one()
            finally:
                await conn.exec_driver_sql("DEALLOCATE bench_generic")
            await conn.rollback()
        statement.generic_plan = orjson.loads(plan) if isinstance(plan, str | bytes) else plan
    except Exception as exc:  # reported with the statement, not fatal
        statement.error = f"generic plan: {type(exc).__name__}: {exc}"[:300]


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text.replace("'", "''") + "'"


def nodes(plan: dict[str, Any], depth: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    yield depth, plan
    for child in plan.get("Plans", []):
        yield from nodes(child, depth + 1)


@dataclass
class Verdict:
    verdict: str
    seq_scans: list[str]
    indexes: list[str]
    ms: float | None
    planning_ms: float | None
    removed: int
    excerpt: list[str]
    #: the generic plan's execution time, sequential scans and shape (partitioned tables only)
    generic_ms: float | None = None
    generic_seq_scans: list[str] = field(default_factory=list)
    generic_excerpt: list[str] = field(default_factory=list)


def judge(statement: Statement, parents: dict[str, str], export: bool) -> Verdict | None:
    if statement.plan is None:
        return None
    top = statement.plan[0]
    seq, indexes, removed = scans(top["Plan"], parents)
    ms = top.get("Execution Time")
    generic = statement.generic_plan[0] if statement.generic_plan else None
    generic_ms = generic.get("Execution Time") if generic else None
    generic_seq = scans(generic["Plan"], parents)[0] if generic else []
    slow_generic = generic_ms is not None and ms is not None and generic_ms > max(10 * ms, ms + 50)
    if seq or generic_seq:
        verdict = "INFO" if export else "FAIL"
    elif removed > WARN_REMOVED_ROWS or (ms is not None and ms > WARN_MS) or slow_generic:
        verdict = "WARN"
    else:
        verdict = "PASS"
    return Verdict(
        verdict,
        collapse(seq, parents),
        collapse(indexes, parents),
        ms,
        top.get("Planning Time"),
        removed,
        excerpt(top["Plan"]),
        generic_ms,
        collapse(generic_seq, parents),
        excerpt(generic["Plan"]) if generic and (generic_seq or slow_generic) else [],
    )


def scans(plan: dict[str, Any], parents: dict[str, str]) -> tuple[list[str], list[str], int]:
    """Sequentially scanned big tables, indexes used, rows big-table scans filtered out."""
    seq: list[str] = []
    indexes: list[str] = []
    removed = 0
    for _, node in nodes(plan):
        relation = node.get("Relation Name")
        base = parents.get(relation, relation) if relation else None
        if node.get("Index Name"):
            indexes.append(node["Index Name"])
        if base in BIG_TABLES:
            if node["Node Type"] == "Seq Scan":
                seq.append(str(relation))
            loops = node.get("Actual Loops", 1)
            removed += int(node.get("Rows Removed by Filter", 0) * loops)
            removed += int(node.get("Rows Removed by Index Recheck", 0) * loops)
    return seq, indexes, removed


def collapse(names: list[str], parents: dict[str, str]) -> list[str]:
    """Partition tables and their indexes named once: ``metric_sample[*]_pkey ×31``."""
    partitions = sorted(parents, key=len, reverse=True)
    counts: dict[str, int] = {}
    for name in names:
        label = name
        for partition in partitions:
            if name == partition or name.startswith(partition + "_"):
                label = f"{parents[partition]}[*]{name[len(partition) :]}"
                break
        counts[label] = counts.get(label, 0) + 1
    return [f"{label} ×{n}" if n > 1 else label for label, n in counts.items()]


def excerpt(plan: dict[str, Any], limit: int = 16) -> list[str]:
    """The plan as indented one-liners: node, relation, index, rows, what was filtered out.

    The children of an Append over many partitions are cut to the first two.
    """
    lines: list[str] = []

    def visit(node: dict[str, Any], depth: int) -> None:
        lines.append("  " * depth + _node_line(node))
        children = node.get("Plans", [])
        shown = children[:2] if node["Node Type"] in {"Append", "Merge Append"} else children
        for child in shown:
            visit(child, depth + 1)
        if len(shown) < len(children):
            lines.append("  " * (depth + 1) + f"… {len(children) - len(shown)} more partitions alike")

    visit(plan, 0)
    return lines[:limit]


def _node_line(node: dict[str, Any]) -> str:
    text = str(node["Node Type"])
    if node.get("Index Name"):
        text += f" using {node['Index Name']}"
    if node.get("Relation Name"):
        text += f" on {node['Relation Name']}"
    if "Actual Rows" in node:
        text += f" (rows={node['Actual Rows']} loops={node.get('Actual Loops', 1)}"
        text += f" {node.get('Actual Total Time', 0):.1f} ms)"
    else:
        text += f" (est rows={node.get('Plan Rows')})"
    for key in ("Index Cond", "Filter", "Recheck Cond", "Join Filter", "Hash Cond", "Sort Key"):
        if node.get(key):
            value = node[key] if isinstance(node[key], str) else ", ".join(node[key])
            text += f" {key.lower()}: {value[:160]}"
    if node.get("Rows Removed by Filter"):
        text += f" removed={node['Rows Removed by Filter']}"
    return text


# --- latency and export memory ------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (with 50 runs p99 is the largest but one)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def latency(
    bench: Bench, name: str, path: str, params: dict[str, Any], who: str = "admin"
) -> dict[str, Any]:
    """p50 / p99 of ``--runs`` sequential requests after a warm-up run (within ``--latency-budget``)."""
    status, _, _ = await bench.get(path, params, who)  # warm-up
    times, started = [], time.perf_counter()
    for _ in range(bench.args.runs):
        status, ms, _ = await bench.get(path, params, who)
        times.append(ms)
        if time.perf_counter() - started > bench.args.latency_budget:
            break
    return {
        "name": name,
        "status": status,
        "runs": len(times),
        "p50_ms": round(percentile(times, 50), 2),
        "p99_ms": round(percentile(times, 99), 2),
        "max_ms": round(max(times), 2),
    }


def memory_kib() -> dict[str, int]:
    """VmRSS and VmHWM (peak) of this process, in KiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            out[key] = int(value.split()[0])
    return out


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5), so the peak is the export's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


async def stream_to_nowhere(app: Any, path: str, query: str, headers: dict[str, str]) -> tuple[int, int]:
    """GET through the ASGI interface, counting the body's bytes and keeping none of them.

    (``httpx.ASGITransport`` collects the whole body in memory, which would measure the client.)
    """
    done = asyncio.Event()
    asked = False
    status, size = 0, 0

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"hub"), *((k.lower().encode(), v.encode()) for k, v in headers.items())],
        "client": ("127.0.0.1", 50000),
        "server": ("hub", 80),
        "state": {},
    }
    await app(scope, receive, send)
    done.set()
    return status, size


async def export_memory(bench: Bench, fmt: str, rows: int) -> dict[str, Any]:
    gc.collect()
    before = memory_kib()
    exact = reset_peak()
    peak = before["VmRSS"]
    sampling = True

    async def sample() -> None:  # a fallback when the peak cannot be reset
        nonlocal peak
        while sampling:
            peak = max(peak, memory_kib()["VmRSS"])
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    query = f"format={fmt}&include_retired=true"
    status, size = await stream_to_nowhere(bench.app, "/api/v1/export/assets", query, bench.auth["admin"])
    seconds = time.perf_counter() - started
    sampling = False
    await sampler
    after = memory_kib()
    if exact:
        peak = max(peak, after["VmHWM"])
    return {
        "format": fmt,
        "status": status,
        "rows": rows,
        "bytes": size,
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds) if seconds else None,
        "rss_before_mib": round(before["VmRSS"] / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
        "peak_growth_mib": round((peak - before["VmRSS"]) / 1024, 1),
        "peak_method": "VmHWM after clear_refs" if exact else "VmRSS sampled every 50 ms",
    }


# --- the run ------------------------------------------------------------------------------------
async def clients(app: Any, settings: Settings) -> dict[str, dict[str, str]]:
    key = load_server_key(settings)
    auth = {}
    async with create_sessionmaker(app.state.engine)() as session:
        for who, spec in (
            ("admin", ClientCreate(name="bench admin", role="admin")),
            ("regulator", ClientCreate(name="bench regulator", role="regulator", regions=["440100"])),
        ):
            created = await create_client(session, key, spec)
            auth[who] = {"Authorization": f"Bearer {created['bearer']}"}
        await session.commit()
    return auth


def log(message: str) -> None:
    print(message, flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--assets", type=int, default=None, help="assets to seed (default 1 000 000)")
    parser.add_argument("--samples", type=int, default=None, help="metric samples (default 50 000 000)")
    parser.add_argument("--alarms", type=int, default=None, help="alarms (default assets / 5)")
    parser.add_argument("--logs", type=int, default=None, help="log records (default 2 × assets)")
    parser.add_argument("--days", type=int, default=31, help="days of dense samples (default 31)")
    parser.add_argument("--runs", type=int, default=50, help="runs per latency target (default 50, 0: none)")
    parser.add_argument("--only", help="only the requests whose name contains one of these (comma-separated)")
    parser.add_argument("--deep-pages", type=int, default=50, help="pages walked for the deep page")
    parser.add_argument("--walk-budget", type=float, default=60.0, help="seconds per deep walk at most")
    parser.add_argument("--latency-budget", type=float, default=120.0, help="seconds per latency target")
    parser.add_argument("--no-analyze", action="store_true", help="EXPLAIN without ANALYZE (no execution)")
    parser.add_argument("--no-rollups", action="store_true", help="leave rollup tables empty")
    parser.add_argument("--plans", action="store_true", help="keep every full JSON plan in the summary")
    parser.add_argument("--exports", default="csv,xlsx", help="export formats to measure ('' for none)")
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    parser.add_argument("--database", help="reuse this already seeded database (implies --keep)")
    parser.add_argument("--quick", action="store_true", help="100k assets / 2M samples: a few minutes")
    parser.add_argument("--output", help="JSON summary (default bench/results/explain-<date>[-quick].json)")
    args = parser.parse_args()
    assets = args.assets or (100_000 if args.quick else 1_000_000)
    samples = args.samples if args.samples is not None else (2_000_000 if args.quick else 50_000_000)
    spec = SeedSpec(
        assets=assets,
        samples=samples,
        alarms=args.alarms if args.alarms is not None else assets // 5,
        logs=args.logs if args.logs is not None else (assets if args.quick else 2 * assets),
        days=args.days,
        rollups=not args.no_rollups,
    )
    name = args.database or f"suphub_bench_{uuid.uuid4().hex[:8]}"
    base = PG_DSN.rsplit("/", 1)[0]
    url = base.replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    admin = await asyncpg.connect(PG_DSN)
    summary: dict[str, Any] = {
        "database": name,
        "spec": asdict(spec),
        "started": datetime.now(UTC).isoformat(),
    }
    try:
        if not args.database:
            await admin.execute(f'CREATE DATABASE "{name}"')
            log(f"database {name}: migrating")
            started = time.perf_counter()
            await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
            summary["migrate_s"] = round(time.perf_counter() - started, 1)
            log(
                f"seeding {spec.assets:,} assets, {spec.samples:,} samples, {spec.alarms:,} alarms, "
                f"{spec.logs:,} logs"
            )
            conn = await asyncpg.connect(f"{base}/{name}")
            started = time.perf_counter()
            try:
                data = await seed(conn, spec, log)
            finally:
                await conn.close()
            summary["seed_s"] = data.timings["total"] = round(time.perf_counter() - started, 1)
            log(f"seeded in {summary['seed_s']:.0f} s")
            (ROOT / "bench" / "results").mkdir(exist_ok=True)
            (ROOT / "bench" / "results" / f"{name}.seed.tmp").write_bytes(
                orjson.dumps(asdict(data), default=str)
            )
        else:
            data = load_seed_result(name)
            summary["seed_s"] = data.timings.get("total")
            summary["reused_database"] = True
        summary["seed"] = {
            "counts": data.counts,
            "timings_s": data.timings,
            "samples": data.samples,
            "dense_series": data.dense_series,
            "wide_series": data.wide_series,
            "notes": data.notes,
        }
        summary.update(await measure(url, name, data, args))
    finally:
        if not (args.keep or args.database):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            (ROOT / "bench" / "results" / f"{name}.seed.tmp").unlink(missing_ok=True)
        else:
            log(f"kept database {name}")
        await admin.close()
    summary["finished"] = datetime.now(UTC).isoformat()
    suffix = "-quick" if args.quick else ""
    output = (
        Path(args.output)
        if args.output
        else ROOT / "bench" / "results" / f"explain-{datetime.now(UTC):%Y-%m-%d}{suffix}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2, default=str))
    log(f"summary written to {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")


def load_seed_result(name: str) -> SeedResult:
    """What an earlier run (``--keep``) seeded, for ``--database``."""
    path = ROOT / "bench" / "results" / f"{name}.seed.tmp"
    raw = orjson.loads(path.read_bytes())
    raw["now"] = datetime.fromisoformat(raw["now"])
    raw["sample_start"] = datetime.fromisoformat(raw["sample_start"]) if raw.get("sample_start") else None
    raw["dense_asset"] = tuple(raw["dense_asset"])
    return SeedResult(**raw)


async def measure(url: str, name: str, data: SeedResult, args: Any) -> dict[str, Any]:
    """Requests, plans, latency and export memory against the seeded database."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=url, data_dir=Path(tmp), rate_limit_enabled=False, _env_file=None)
        app = create_app(settings)
        auth = await clients(app, settings)
        engine: AsyncEngine = app.state.engine
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            parents = await partition_parents(raw.driver_connection)
        # an exception in the app is a 500 in the table, not the end of the run
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub", timeout=900) as http:
            bench = Bench(app, http, auth, args)
            outcomes = await run_probes(bench, data)
            log(f"EXPLAIN{' ANALYZE' if not args.no_analyze else ''} of the captured statements")
            for outcome in outcomes:
                for statement in outcome.statements:
                    await explain(engine, statement, not args.no_analyze, frozenset(parents.values()))
            out["requests"] = report_plans(outcomes, parents, args.plans)
            out["latency"] = await run_latency(bench, data) if args.runs > 0 else []
            out["exports"] = await run_exports(bench, data, args, parents)
        await app.state.audit_writer.close()
        await app.state.rate_limiter.close()
        await engine.dispose()
    return out


async def run_probes(bench: Bench, data: SeedResult) -> list[Outcome]:
    outcomes: list[Outcome] = []
    log(f"requests (page 1 and page ≤ {bench.args.deep_pages} of every list)")
    # a sync_token from a first incremental page, for the "resume from a token" request
    status, _, body = await bench.get(
        "/api/v1/assets", {"updated_since": (data.now - timedelta(days=2)).isoformat()}, "admin"
    )
    token = body["data"]["sync_token"] if status == 200 and body else None
    wanted = [w.strip() for w in bench.args.only.split(",") if w.strip()] if bench.args.only else []
    for probe in probes(data):
        if wanted and not any(w in probe.name for w in wanted):
            continue
        started = time.perf_counter()
        results = await bench.run(probe, token)
        outcomes.extend(results)
        shown = ", ".join(f"{r.page}: {r.status} {r.ms:.0f} ms" for r in results)
        log(f"  {probe.name:<30} {shown}  ({time.perf_counter() - started:.1f} s)")
    return outcomes


def report_plans(outcomes: list[Outcome], parents: dict[str, str], plans: bool) -> list[dict[str, Any]]:
    """The per-request table (and its JSON): each statement's verdict, scans, indexes and time."""
    rows: list[dict[str, Any]] = []
    print()
    print(
        f"{'request':<31}{'page':<9}{'http':>5}{'ms':>8}  {'stmt':>4} {'verdict':<7} {'exec ms':>8}"
        f" {'plan ms':>7}  detail"
    )
    print("-" * 130)
    failures: list[tuple[Outcome, int, Statement, Verdict]] = []
    for outcome in outcomes:
        entry: dict[str, Any] = {
            "request": outcome.probe.name,
            "path": outcome.probe.path,
            "params": outcome.probe.params,
            "who": outcome.probe.who,
            "page": outcome.page,
            "status": outcome.status,
            "ms": round(outcome.ms, 1),
            "items": outcome.items,
            "note": outcome.note,
            "statements": [],
        }
        worst = "PASS"
        shown = False
        for number, statement in enumerate(outcome.statements, 1):
            verdict = judge(statement, parents, outcome.probe.export)
            record: dict[str, Any] = {
                "sql": statement.sql,
                "params": [str(p)[:200] for p in statement.params or ()],
            }
            if statement.error:
                record["error"] = statement.error
            if verdict is not None:
                record.update(asdict(verdict))
                if plans:
                    record["plan"] = statement.plan
                worst = max(worst, verdict.verdict, key=_severity)
                if verdict.verdict in {"FAIL", "WARN"}:
                    failures.append((outcome, number, statement, verdict))
                if verdict.verdict != "PASS" or _is_main(statement):
                    detail = _detail(verdict)
                    head = (
                        "" if shown else f"{outcome.probe.name[:30]:<31}{outcome.page:<9}{outcome.status:>5}"
                    )
                    head += "" if shown else f"{outcome.ms:>8.0f}"
                    print(
                        f"{head:<53}  {number:>4} {verdict.verdict:<7} {verdict.ms or 0:>8.1f}"
                        f" {verdict.planning_ms or 0:>7.1f}  {detail}"
                    )
                    shown = True
            entry["statements"].append(record)
        if not shown:
            print(
                f"{outcome.probe.name[:30]:<31}{outcome.page:<9}{outcome.status:>5}{outcome.ms:>8.0f}"
                f"  {'':>4} PASS{'':>13}{outcome.note}"
            )
        entry["verdict"] = worst
        rows.append(entry)
    if failures:
        print("\nplans of FAIL / WARN statements:")
        for outcome, number, statement, verdict in failures:
            print(f"\n[{verdict.verdict}] {outcome.probe.name} / {outcome.page} / statement {number}:")
            print("  " + " ".join(statement.sql.split())[:400])
            for line in verdict.excerpt:
                print("    " + line)
            if verdict.generic_excerpt:
                print("  as a generic plan (a prepared statement after five executions):")
                for line in verdict.generic_excerpt:
                    print("    " + line)
    return rows


def _severity(verdict: str) -> int:
    return {"PASS": 0, "INFO": 1, "WARN": 2, "FAIL": 3}[verdict]


def _is_main(statement: Statement) -> bool:
    """The statement reading a big table (not the client, platform or catalogue look-ups)."""
    sql = statement.sql.lower()
    return any(f"from {t}" in sql or f"join {t}" in sql for t in BIG_TABLES)


def _detail(verdict: Verdict) -> str:
    parts = []
    if verdict.seq_scans:
        parts.append("seq scan " + ", ".join(verdict.seq_scans))
    if verdict.indexes:
        parts.append("idx " + ", ".join(verdict.indexes))
    if verdict.removed:
        parts.append(f"removed {verdict.removed:,}")
    if verdict.generic_ms is not None:
        scanned = f", seq scan {', '.join(verdict.generic_seq_scans)}" if verdict.generic_seq_scans else ""
        parts.append(f"generic plan {verdict.generic_ms:.1f} ms{scanned}")
    return "; ".join(parts)


async def run_latency(bench: Bench, data: SeedResult) -> list[dict[str, Any]]:
    platform, asset = data.dense_asset
    uid = str(asset_uid(platform, asset))
    page = {"platform_code": data.big_platform, "asset_type": "vm"}
    targets: list[tuple[str, str, dict[str, Any]]] = [
        ("assets platform+type page 1", "/api/v1/assets", page),
    ]
    deep = bench.deep.get("assets platform+type")
    if deep:
        targets.append(("assets platform+type deep page", "/api/v1/assets", deep))
    now = data.now
    targets += [
        (
            "metric series 30 d step=1h",
            "/api/v1/metrics/series",
            {
                "metric": "cpu.util",
                "asset_uid": uid,
                "from": (now - timedelta(days=30)).isoformat(),
                "to": now.isoformat(),
                "step": "1h",
            },
        ),
        (
            "metric samples 1 h page 1",
            "/api/v1/metrics/samples",
            {
                "platform_code": platform,
                "metric": "cpu.util",
                "from": (now - timedelta(hours=1)).isoformat(),
                "to": now.isoformat(),
            },
        ),
        ("metric latest top 10", "/api/v1/metrics/latest", {"metric": "cpu.util", "limit": "10"}),
    ]
    wanted = [w.strip() for w in bench.args.only.split(",") if w.strip()] if bench.args.only else []
    targets = [t for t in targets if not wanted or any(w in t[0] for w in wanted)]
    log(f"\nlatency ({bench.args.runs} runs each, sequential, in-process ASGI)")
    print(f"{'target':<36}{'http':>5}{'runs':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    results = []
    for name, path, params in targets:
        result = await latency(bench, name, path, params)
        results.append(result)
        print(
            f"{name:<36}{result['status']:>5}{result['runs']:>6}{result['p50_ms']:>10.1f}"
            f"{result['p99_ms']:>10.1f}{result['max_ms']:>10.1f}"
        )
    return results


async def run_exports(
    bench: Bench, data: SeedResult, args: Any, parents: dict[str, str]
) -> list[dict[str, Any]]:
    formats = [f for f in args.exports.split(",") if f]
    if not formats:
        return []
    rows = data.counts.get("asset", 0)
    log(f"\nexport of all {rows:,} assets (include_retired=true), streamed and discarded")
    print(
        f"{'format':<8}{'http':>5}{'rows':>11}{'MiB out':>9}{'s':>8}{'rows/s':>10}"
        f"{'RSS before':>12}{'peak +':>9}"
    )
    results = []
    for fmt in formats:
        statements = bench.capture.start() if fmt == formats[0] else None
        try:
            result = await export_memory(bench, fmt, rows)
        finally:
            bench.capture.stop()
        results.append(result)
        print(
            f"{fmt:<8}{result['status']:>5}{rows:>11,}{result['bytes'] / 2**20:>9.1f}"
            f"{result['seconds']:>8.1f}{result['rows_per_s'] or 0:>10,}"
            f"{result['rss_before_mib']:>10.0f} M{result['peak_growth_mib']:>7.0f} M"
        )
        if statements is not None:
            result["statements"] = await explain_export(bench, statements, parents)
    return results


async def explain_export(
    bench: Bench, statements: list[Statement], parents: dict[str, str]
) -> list[dict[str, Any]]:
    """The export's distinct statements (its count, its first and a middle keyset chunk)."""
    chosen: dict[str, list[Statement]] = {}
    for statement in statements:
        chosen.setdefault(statement.sql, []).append(statement)
    out = []
    for group in chosen.values():
        for statement in {id(s): s for s in (group[0], group[len(group) // 2])}.values():
            await explain(
                bench.app.state.engine, statement, not bench.args.no_analyze, frozenset(parents.values())
            )
            verdict = judge(statement, parents, export=True)
            if verdict is None:
                continue
            out.append({"sql": statement.sql, "executions": len(group), **asdict(verdict)})
            if not _is_main(statement):
                continue
            kind = "count" if "count(" in statement.sql.lower() else "chunk"
            print(
                f"  {kind} statement (run ×{len(group)}): {verdict.verdict} {verdict.ms or 0:.1f} ms "
                f"{_detail(verdict)}"
            )
    return out


if __name__ == "__main__":
    asyncio.run(main())
