"""The hub against its speed goals (issue 7), on SQLite and on PostgreSQL, through real HTTP.

For each database the run

1. creates it (a temporary SQLite file; a fresh ``suphub_bench_<random>`` PostgreSQL database,
   dropped at the end), migrates it and seeds it in bulk — assets with history and metric samples
   with their rollups — with SQL, not through the API (:mod:`bench.seed`, :mod:`bench.seed_sqlite`);
2. starts ``uvicorn`` in a subprocess on a free port with :func:`bench.app.create_bench_app`: the
   production app (as ``supervision-hub serve --no-scheduler`` builds it) plus bare baseline
   routes that run the same SQL with no authentication, scope or audit;
3. measures every figure through HTTP as a user would (an admin bearer key for reads and source
   runs; providers with HMAC-SM3 signed requests for pushes), each with its baseline in the same
   run, and the server's memory from ``/proc/<pid>``;
4. stops the server by its PID.

Then it prints a table and writes ``bench/results/<date>.json`` (``<date>-smoke.json`` for
``--smoke``): per goal and database the figure, its baseline, the ratio and ``pass`` / ``fail``,
plus the machine. Timings never fail the command; only a crash does.

    .venv/bin/python bench/run.py                 # the full run (make bench)
    .venv/bin/python bench/run.py --smoke         # tiny sizes, same code paths, ~1 min (make bench-smoke)
    .venv/bin/python bench/run.py --databases postgres --only push_metrics,asset_page
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform as platform_module
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from alembic import command

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.cli import alembic_config  # noqa: E402
from app.collectors.base import RunContext, SourceConfig  # noqa: E402
from app.collectors.http import SourceHTTP  # noqa: E402
from app.collectors.openstack.collector import OpenStackCollector  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import create_engine, create_sessionmaker  # noqa: E402
from app.schemas.common import ClientCreate  # noqa: E402
from app.security.keys import load_server_key  # noqa: E402
from app.security.signing import signed_headers  # noqa: E402
from app.services.assets import ASSET_KEYSET, AssetFilters, asset_statement  # noqa: E402
from app.services.clients import create_client  # noqa: E402
from app.services.cursor import encode_cursor  # noqa: E402
from app.services.ingest.kinds import asset_uid, labels_key, series_id  # noqa: E402
from bench.app import _ADMIN  # noqa: E402
from bench.seed import SeedResult, SeedSpec, seed  # noqa: E402
from bench.seed_sqlite import seed_sqlite  # noqa: E402

PG_DSN = os.environ.get("SUPHUB_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
RESULTS = ROOT / "bench" / "results"
MB = 1_000_000
PUSH_METRICS = ("cpu.util", "mem.util", "disk.util", "cpu.load1", "net.rx.bits_per_s")


@dataclass(frozen=True)
class Sizes:
    """How big each figure is; ``--smoke`` shrinks everything but keeps the code paths."""

    assets: int = 1_000_000
    samples: int = 50_000_000
    #: the filter of the asset page keeps ~74 % of the assets, so page 5 000 exists at 1M
    page_filter: tuple[tuple[str, str], ...] = (("status", "running"),)
    deep_page: int = 5_000
    latency_runs: int = 200
    series_runs: int = 30
    metric_batch: int = 5_000
    metric_batches: int = 20  # per client
    metric_clients: int = 2
    asset_batch: int = 1_000
    asset_batches: int = 10  # created, then the same assets updated (history)
    vms: int = 100_000
    vm_page: int = 100
    hosts: int = 200
    latency_ms: float = 20.0
    exports: tuple[str, ...] = ("csv", "xlsx")


SMOKE = Sizes(
    assets=3_000,
    samples=150_000,
    deep_page=5,
    latency_runs=10,
    series_runs=3,
    metric_batch=500,
    metric_batches=2,
    asset_batch=200,
    asset_batches=2,
    vms=400,
    hosts=4,
)
FIGURES = ("asset_page", "series", "export", "push_metrics", "push_assets", "openstack")


def log(message: str) -> None:
    print(message, flush=True)


# --- results ----------------------------------------------------------------------------------
@dataclass
class Result:
    figure: str
    database: str
    value: float | None
    unit: str
    baseline: float | None
    goal: str
    verdict: str
    ratio: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


def verdict(ok: bool) -> str:
    return "pass" if ok else "fail"


# --- the server -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of a process in KiB."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in {"VmRSS", "VmHWM"}:
                out[key] = int(value.split()[0])
    return out


class PeakRSS:
    """The peak RSS growth of process ``pid`` while the block runs.

    VmHWM after resetting it (``/proc/<pid>/clear_refs`` 5) when the kernel allows, and VmRSS
    sampled every 20 ms in any case; the larger wins.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start_kib = self.peak_kib = 0
        self.exact = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kib = max(self.peak_kib, proc_status(self.pid).get("VmRSS", 0))

    def __enter__(self) -> PeakRSS:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self.exact = True
        except OSError:
            self.exact = False
        self.start_kib = self.peak_kib = proc_status(self.pid).get("VmRSS", 0)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        status = proc_status(self.pid)
        self.peak_kib = max(self.peak_kib, status.get("VmRSS", 0))
        if self.exact:
            self.peak_kib = max(self.peak_kib, status.get("VmHWM", 0))

    @property
    def growth_mb(self) -> float:
        return round((self.peak_kib - self.start_kib) * 1024 / MB, 1)

    @property
    def peak_mb(self) -> float:
        return round(self.peak_kib * 1024 / MB, 1)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.contextmanager
def hub_server(env: dict[str, str], tmp: Path) -> Iterator[Server]:
    """``uvicorn --factory bench.app:create_bench_app`` on a free port; stopped by its PID."""
    port = free_port()
    log_path = tmp / "uvicorn.log"
    command_line = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "bench.app:create_bench_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-proxy-headers",
    ]
    with log_path.open("wb") as out:
        process = subprocess.Popen(command_line, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited: {log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not answer /healthz within 60 s")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


# --- the database -----------------------------------------------------------------------------
@dataclass
class Database:
    kind: str  # sqlite | postgres
    url: str
    sqlite_path: str | None = None
    pg_name: str | None = None

    @property
    def dsn(self) -> str:
        assert self.pg_name is not None
        return PG_DSN.rsplit("/", 1)[0] + f"/{self.pg_name}"


@contextlib.asynccontextmanager
async def database(kind: str, tmp: Path) -> AsyncIterator[Database]:
    if kind == "sqlite":
        path = tmp / "hub.db"
        yield Database("sqlite", f"sqlite+aiosqlite:///{path}", sqlite_path=str(path))
        return
    name = f"suphub_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
        yield Database("postgres", url, pg_name=name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def seed_database(db: Database, spec: SeedSpec) -> SeedResult:
    if db.kind == "sqlite":
        assert db.sqlite_path is not None
        return await asyncio.to_thread(seed_sqlite, db.sqlite_path, spec, log)
    conn = await asyncpg.connect(db.dsn)
    try:
        return await seed(conn, spec, log)
    finally:
        await conn.close()


# --- HTTP helpers -----------------------------------------------------------------------------
@dataclass
class Provider:
    app_key: str
    secret: str
    platform: str

    def headers(self, path: str, body: bytes) -> dict[str, str]:
        headers = signed_headers(
            app_key=self.app_key, secret=self.secret, method="POST", path=path, body=body
        )
        headers["Content-Type"] = "application/json"
        return headers


class Hub:
    """The running hub as its users reach it."""

    def __init__(self, server: Server, admin_bearer: str, settings: Settings) -> None:
        self.server = server
        self.admin = {"Authorization": f"Bearer {admin_bearer}"}
        self.settings = settings
        self.http = httpx.AsyncClient(base_url=server.base, timeout=httpx.Timeout(1800, connect=30))

    async def close(self) -> None:
        await self.http.aclose()

    async def ok(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, headers=self.admin, **kwargs)
        if response.status_code != expect:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()["data"]

    async def gc_seconds(self) -> float:
        """Seconds the server has spent in its garbage collector so far (all generations)."""
        response = await self.http.get("/bench/bare/gc")
        return float(sum(g["seconds"] for g in response.json().values()))

    async def platform(self, code: str) -> None:
        await self.ok(
            "POST",
            "/api/v1/admin/platforms",
            201,
            json={
                "platform_code": code,
                "name": f"基准平台 {code}",
                "region_code": "440100",
                "network_zone": "gov_extranet",
                "level": "city",
            },
        )

    async def provider(self, platform: str) -> Provider:
        """A provider key bound to ``platform``; signed requests required (the default)."""
        created = await self.ok(
            "POST",
            "/api/v1/admin/clients",
            201,
            json={"name": f"bench provider {platform}", "role": "provider", "platforms": [platform]},
        )
        return Provider(created["app_key"], created["secret"], platform)

    async def push(self, provider: Provider, kind: str, body: bytes) -> dict[str, Any]:
        path = f"/api/v1/reports/{kind}"
        response = await self.http.post(path, content=body, headers=provider.headers(path, body))
        if response.status_code != 200:
            raise RuntimeError(f"push {kind}: {response.status_code} {response.text[:500]}")
        data: dict[str, Any] = response.json()["data"]
        return data


def percentile(values: list[float], q: float) -> float:
    """Nearest rank (with 200 runs p99 is the second largest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def timed_get(
    http: httpx.AsyncClient, path: str, params: dict[str, Any], headers: dict[str, str]
) -> tuple[float, Any]:
    started = time.perf_counter()
    response = await http.get(path, params=params, headers=headers)
    ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:500]}")
    return ms, response.json()


# --- figure: the filtered asset page ----------------------------------------------------------
async def asset_page(hub: Hub, db: Database, sizes: Sizes, smoke: bool) -> list[Result]:
    """Page 1 and page ``deep_page`` of a filtered list, against the bare route, interleaved."""
    filters = dict(sizes.page_filter)
    limit = 100
    engine = create_engine(hub.settings, db.url)
    try:
        async with create_sessionmaker(engine)() as session:
            stmt = await asset_statement(session, _ADMIN, AssetFilters(**filters))
            offset = (sizes.deep_page - 1) * limit - 1
            row = (
                await session.execute(
                    stmt.with_only_columns(*ASSET_KEYSET.columns)
                    .order_by(*ASSET_KEYSET.order_by())
                    .offset(offset)
                    .limit(1)
                )
            ).one()
            matching = None
            if smoke:
                from sqlalchemy import func, select

                matching = (
                    await session.execute(select(func.count()).select_from(stmt.subquery()))
                ).scalar_one()
    finally:
        await engine.dispose()
    key = load_server_key(hub.settings)
    cursor = encode_cursor(key, "assets", asdict(AssetFilters(**filters)), [row[0], row[1]])
    deep_hub = {**filters, "cursor": cursor}
    deep_bare = {**filters, "after_platform": row[0], "after_asset": row[1]}
    if smoke:  # the crafted cursor is the one a user walking the pages receives
        params: dict[str, Any] = dict(filters)
        for _ in range(sizes.deep_page - 1):
            _, body = await timed_get(hub.http, "/api/v1/assets", params, hub.admin)
            params = {**filters, "cursor": body["data"]["next_cursor"]}
        assert params["cursor"] == cursor, "the crafted deep cursor differs from the walked one"
    targets = {
        "page 1": (("/api/v1/assets", dict(filters)), ("/bench/bare/assets", dict(filters))),
        f"page {sizes.deep_page}": (("/api/v1/assets", deep_hub), ("/bench/bare/assets", deep_bare)),
    }
    times: dict[str, dict[str, list[float]]] = {t: {"hub": [], "bare": []} for t in targets}
    for name, ((hub_path, hub_params), (bare_path, bare_params)) in targets.items():
        _, a = await timed_get(hub.http, hub_path, hub_params, hub.admin)
        _, b = await timed_get(hub.http, bare_path, bare_params, {})
        ids_hub = [i["asset_id"] for i in a["data"]["items"]]
        ids_bare = [i["asset_id"] for i in b["items"]]
        if ids_hub != ids_bare or len(ids_hub) != limit:
            raise RuntimeError(f"asset {name}: the hub and the bare route return different rows")
        for _ in range(2):  # warm-up
            await timed_get(hub.http, hub_path, hub_params, hub.admin)
            await timed_get(hub.http, bare_path, bare_params, {})
    for _ in range(sizes.latency_runs):
        for name, ((hub_path, hub_params), (bare_path, bare_params)) in targets.items():
            times[name]["hub"].append((await timed_get(hub.http, hub_path, hub_params, hub.admin))[0])
            times[name]["bare"].append((await timed_get(hub.http, bare_path, bare_params, {}))[0])
    stats = {
        name: {
            who: {"p50_ms": round(percentile(v, 50), 2), "p99_ms": round(percentile(v, 99), 2)}
            for who, v in series.items()
        }
        for name, series in times.items()
    }
    first = stats["page 1"]["hub"]
    results = []
    for name, s in stats.items():
        hub_p99, bare_p99 = s["hub"]["p99_ms"], s["bare"]["p99_ms"]
        ok = hub_p99 <= 2 * bare_p99 and hub_p99 <= 50
        goal = "p99 ≤ 2× baseline p99 and ≤ 50 ms"
        details: dict[str, Any] = {
            "hub": s["hub"],
            "bare": s["bare"],
            "runs": sizes.latency_runs,
            "filter": filters,
            "rows_before_page": (sizes.deep_page - 1) * limit if name != "page 1" else 0,
        }
        if matching is not None:
            details["matching_rows"] = matching
        if name != "page 1":
            deep_ratio = s["hub"]["p50_ms"] / first["p50_ms"]
            details["deep_vs_page1_p50"] = round(deep_ratio, 2)
            ok = ok and deep_ratio <= 1.5
            goal += "; p50 ≤ 1.5× page 1"
        results.append(
            Result(
                f"asset page {name.split()[1]}",
                db.kind,
                hub_p99,
                "ms p99",
                bare_p99,
                goal,
                verdict(ok),
                ratio=round(hub_p99 / bare_p99, 2) if bare_p99 else None,
                details=details,
            )
        )
        log(
            f"  asset {name:<10} hub p50 {s['hub']['p50_ms']:6.1f} p99 {hub_p99:6.1f} ms   "
            f"bare p50 {s['bare']['p50_ms']:6.1f} p99 {bare_p99:6.1f} ms"
        )
    return results


# --- figure: the 30-day hourly series ---------------------------------------------------------
async def series(hub: Hub, db: Database, data: SeedResult, sizes: Sizes) -> list[Result]:
    platform, asset = data.dense_asset
    end = data.now.replace(minute=0)
    params = {
        "metric": "cpu.util",
        "asset_uid": str(asset_uid(platform, asset)),
        "from": (end - timedelta(days=30)).isoformat(),
        "to": end.isoformat(),
        "step": "1h",
    }
    _, a = await timed_get(hub.http, "/api/v1/metrics/series", params, hub.admin)
    _, b = await timed_get(hub.http, "/bench/bare/series-raw", params, {})
    points_hub, points_raw = a["data"]["points"], b["points"]
    if [p["ts"] for p in points_hub] != [p["ts"] for p in points_raw] or any(
        abs(p["value"] - q["value"]) > 1e-6 * max(1.0, abs(q["value"]))
        for p, q in zip(points_hub, points_raw, strict=True)
    ):
        raise RuntimeError("series: the rollup answer differs from the raw answer")
    hub_ms, raw_ms = [], []
    for _ in range(sizes.series_runs):
        hub_ms.append((await timed_get(hub.http, "/api/v1/metrics/series", params, hub.admin))[0])
        raw_ms.append((await timed_get(hub.http, "/bench/bare/series-raw", params, {}))[0])
    hub_p50, raw_p50 = percentile(hub_ms, 50), percentile(raw_ms, 50)
    speedup = raw_p50 / hub_p50
    log(f"  series 30 d 1h: hub p50 {hub_p50:.1f} ms, from raw p50 {raw_p50:.1f} ms (×{speedup:.1f})")
    return [
        Result(
            "series 30 d hourly",
            db.kind,
            round(hub_p50, 2),
            "ms p50",
            round(raw_p50, 2),
            "≥ 10× faster than raw",
            verdict(speedup >= 10),
            ratio=round(speedup, 1),
            details={
                "points": len(points_hub),
                "raw_samples_read": len(points_hub) * 60,
                "hub_p99_ms": round(percentile(hub_ms, 99), 2),
                "raw_p99_ms": round(percentile(raw_ms, 99), 2),
                "runs": sizes.series_runs,
                "samples_in_db": data.samples,
            },
        )
    ]


# --- figure: exports --------------------------------------------------------------------------
async def exports(hub: Hub, db: Database, data: SeedResult, sizes: Sizes) -> list[Result]:
    rows = data.counts.get("asset", 0)
    results = []
    for fmt in sizes.exports:
        size = 0
        with PeakRSS(hub.server.pid) as rss:
            started = time.perf_counter()
            async with hub.http.stream(
                "GET",
                "/api/v1/export/assets",
                params={"format": fmt, "include_retired": "true"},
                headers=hub.admin,
            ) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"export {fmt}: {response.status_code}")
                async for chunk in response.aiter_raw():
                    size += len(chunk)
            seconds = time.perf_counter() - started
        rate = rows / seconds
        log(
            f"  export {fmt}: {rows:,} rows, {size / MB:.0f} MB in {seconds:.1f} s ({rate:,.0f} rows/s), "
            f"server RSS +{rss.growth_mb:.0f} MB (peak {rss.peak_mb:.0f} MB)"
        )
        results.append(
            Result(
                f"export {fmt}",
                db.kind,
                rss.growth_mb,
                "MB RSS growth",
                None,
                "≤ 100 MB growth",
                verdict(rss.growth_mb <= 100),
                details={
                    "rows": rows,
                    "rows_per_s": round(rate),
                    "seconds": round(seconds, 1),
                    "bytes": size,
                    "peak_rss_mb": rss.peak_mb,
                    "peak_method": "VmHWM after clear_refs" if rss.exact else "VmRSS sampled every 20 ms",
                },
            )
        )
    return results


# --- figure: push of metrics ------------------------------------------------------------------
def metric_records(batch_no: int, n: int, base: datetime) -> list[dict[str, Any]]:
    """``n`` samples of one minute: ``n / 5`` assets × 5 metrics (the shape of a per-minute push)."""
    ts = (base + timedelta(minutes=batch_no)).isoformat()
    per = len(PUSH_METRICS)
    return [
        {
            "metric": PUSH_METRICS[i % per],
            "asset_id": f"vm-{i // per:06d}",
            "ts": ts,
            "value": round((i * 7 + batch_no * 13) % 1000 / 10, 1),
        }
        for i in range(n)
    ]


def sample_rows(
    platform: str, records: list[dict[str, Any]], seq: int, now: datetime
) -> list[tuple[Any, ...]]:
    """The rows the hub writes for these records (key order), for the baseline."""
    key = labels_key({})
    rows = [
        (
            platform,
            series_id(platform, r["metric"], r["asset_id"], key),
            datetime.fromisoformat(r["ts"]),
            float(r["value"]),
            now,
            seq,
        )
        for r in records
    ]
    rows.sort(key=lambda r: (r[1], r[2]))
    return rows


async def push_metrics(hub: Hub, db: Database, sizes: Sizes) -> list[Result]:
    clients = []
    for c in range(sizes.metric_clients):
        code = f"BENCH-M{c + 1:02d}"
        await hub.platform(code)
        clients.append(await hub.provider(code))
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=sizes.metric_batches + 10)
    records = [metric_records(b, sizes.metric_batch, base) for b in range(sizes.metric_batches)]
    bodies = [
        [
            orjson.dumps(
                {
                    "batch_id": f"bench-m-{c}-{b}",
                    "platform_code": p.platform,
                    "collected_at": datetime.now(UTC).isoformat(),
                    "records": records[b],
                }
            )
            for b in range(sizes.metric_batches)
        ]
        for c, p in enumerate(clients)
    ]
    total = sizes.metric_clients * sizes.metric_batches * sizes.metric_batch
    # the baseline first: the same rows (under platforms of their own) straight into the table
    now = datetime.now(UTC)
    base_rows = [
        [sample_rows(f"BASE-M{c + 1:02d}", records[b], b + 1, now) for b in range(sizes.metric_batches)]
        for c in range(sizes.metric_clients)
    ]
    baseline_s = await bulk_samples(db, base_rows)

    async def client(c: int) -> None:
        for body in bodies[c]:
            receipt = await hub.push(clients[c], "metrics", body)
            if receipt["accepted"] != sizes.metric_batch:
                raise RuntimeError(f"metrics batch not fully accepted: {receipt}")

    gc_before = await hub.gc_seconds()
    with PeakRSS(hub.server.pid) as rss:
        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(sizes.metric_clients)))
        seconds = time.perf_counter() - started
    gc_s = await hub.gc_seconds() - gc_before
    rate, base_rate = total / seconds, total / baseline_s
    log(
        f"  push metrics: {total:,} samples in {seconds:.1f} s = {rate:,.0f} samples/s; "
        f"baseline {base_rate:,.0f} samples/s (×{rate / base_rate:.2f}); server GC {gc_s:.1f} s"
    )
    return [
        Result(
            "push metrics",
            db.kind,
            round(rate),
            "samples/s",
            round(base_rate),
            "≥ 0.5× baseline",
            verdict(rate >= 0.5 * base_rate),
            ratio=round(rate / base_rate, 2),
            details={
                "clients": sizes.metric_clients,
                "batches_per_client": sizes.metric_batches,
                "batch": sizes.metric_batch,
                "seconds": round(seconds, 2),
                "baseline_seconds": round(baseline_s, 2),
                "server_rss_growth_mb": rss.growth_mb,
                "server_gc_seconds": round(gc_s, 2),
                "baseline_method": (
                    "per batch: COPY into a temporary staging table + one INSERT … ON CONFLICT DO UPDATE, "
                    "one transaction, as many concurrent connections as clients"
                    if db.kind == "postgres"
                    else "per batch: one-transaction executemany of INSERT … ON CONFLICT DO UPDATE, "
                    "as many threads as clients, taking turns for the write lock"
                ),
            },
        )
    ]


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bulk_samples(
    db: Database, per_client: list[list[list[tuple[Any, ...]]]], cpu: dict[str, float] | None = None
) -> float:
    """Seconds to write every batch of every client concurrently, one transaction per batch.

    ``cpu`` (PostgreSQL) receives ``db_s``: the CPU seconds its server processes spent on it.
    """
    if db.kind == "postgres":
        conns = [await asyncpg.connect(db.dsn) for _ in per_client]
        pids = [conn.get_server_pid() for conn in conns]
        try:
            for conn in conns:
                await conn.execute(
                    "CREATE TEMP TABLE bench_staging (LIKE metric_sample INCLUDING DEFAULTS) "
                    "ON COMMIT DELETE ROWS"
                )

            async def one(conn: asyncpg.Connection, batches: list[list[tuple[Any, ...]]]) -> None:
                for rows in batches:
                    async with conn.transaction():
                        await conn.copy_records_to_table(
                            "bench_staging",
                            records=rows,
                            columns=[
                                "platform_code",
                                "series_id",
                                "ts",
                                "value",
                                "received_at",
                                "change_seq",
                            ],
                        )
                        await conn.execute(
                            "INSERT INTO metric_sample (platform_code, series_id, ts, value, received_at, "
                            "change_seq) SELECT platform_code, series_id, ts, value, received_at, change_seq "
                            "FROM bench_staging ON CONFLICT (platform_code, series_id, ts) DO UPDATE SET "
                            "value = excluded.value, received_at = excluded.received_at, "
                            "change_seq = excluded.change_seq"
                        )

            started = time.perf_counter()
            cpu_before = sum(process_cpu_s(pid) for pid in pids)
            await asyncio.gather(*(one(c, b) for c, b in zip(conns, per_client, strict=True)))
            seconds = time.perf_counter() - started
            if cpu is not None:
                cpu["db_s"] = sum(process_cpu_s(pid) for pid in pids) - cpu_before
            return seconds
        finally:
            for conn in conns:
                await conn.close()
    assert db.sqlite_path is not None
    path = db.sqlite_path
    # SQLite has one writer: threads that wait on its busy handler sleep in growing steps and the
    # database idles meanwhile, so the best this machine can do is the writers taking turns
    one_writer = threading.Lock()

    def one_thread(batches: list[list[tuple[Any, ...]]]) -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=60)
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            for rows in batches:
                stored = [
                    (
                        p,
                        s,
                        ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
                        v,
                        rec.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
                        seq,
                    )
                    for p, s, ts, v, rec, seq in rows
                ]
                with one_writer:  # queued for SQLite's one write lock, not polling it (busy sleeps)
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(
                        "INSERT INTO metric_sample (platform_code, series_id, ts, value, received_at, "
                        "change_seq) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (platform_code, series_id, ts) "
                        "DO UPDATE SET value = excluded.value, received_at = excluded.received_at, "
                        "change_seq = excluded.change_seq",
                        stored,
                    )
                    conn.execute("COMMIT")
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(asyncio.to_thread(one_thread, b) for b in per_client))
    return time.perf_counter() - started


# --- figure: push of assets -------------------------------------------------------------------
def asset_records(batch_no: int, n: int, update: bool) -> list[dict[str, Any]]:
    out = []
    for j in range(n):
        i = batch_no * n + j
        record: dict[str, Any] = {
            "asset_id": f"vm-{i:07d}",
            "asset_type": "vm",
            "name": f"vm-{i:07d}{' 扩容' if update else ''}",
            "status": "stopped" if update and i % 2 else "running",
            "using_unit": f"单位{i % 50}",
            "business_system": f"业务系统{i % 200}",
            "ip_addresses": [{"ip": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "kind": "business"}],
            "tags": {"env": "prod", "tier": str(i % 3)},
            "cpu_arch": "x86_64" if i % 3 else "aarch64",
            "cpu_vendor": "Hygon" if i % 3 else "HiSilicon",
            "cpu_model": "C86 7285" if i % 3 else "Kunpeng 920",
            "vcpus": 8 if update else 4,
            "memory_mib": 16384 if update else 8192,
            "disk_gib": 100.0,
            "os_name": "Kylin",
            "os_version": "V10 SP3",
            "virtualization": "kvm",
            "host_asset_id": f"host-{i % 500:04d}",
            "source_updated_at": datetime.now(UTC).isoformat(),
        }
        out.append(record)
    return out


async def push_assets(hub: Hub, db: Database, sizes: Sizes) -> list[Result]:
    code = "BENCH-A01"
    await hub.platform(code)
    provider = await hub.provider(code)
    bodies = [
        orjson.dumps(
            {
                "batch_id": f"bench-a-{phase}-{b}",
                "platform_code": code,
                "collected_at": datetime.now(UTC).isoformat(),
                "records": asset_records(b, sizes.asset_batch, phase == "update"),
            }
        )
        for phase in ("create", "update")
        for b in range(sizes.asset_batches)
    ]
    gc_before = await hub.gc_seconds()
    with PeakRSS(hub.server.pid) as rss:
        started = time.perf_counter()
        for body in bodies:
            receipt = await hub.push(provider, "assets", body)
            if receipt["accepted"] != sizes.asset_batch:
                raise RuntimeError(f"assets batch not fully accepted: {receipt}")
        seconds = time.perf_counter() - started
    gc_s = await hub.gc_seconds() - gc_before
    total = len(bodies) * sizes.asset_batch
    history = await hub.ok("GET", f"/api/v1/assets/{asset_uid(code, 'vm-0000001')}/history")
    changed = sorted(c["field"] for r in history["items"] for c in r["changes"])
    if len(history["items"]) != 2 or not changed:
        raise RuntimeError(f"asset history not kept: {history}")
    baseline_s, history_rows = await bulk_assets(db, code, "BASE-A01", sizes)
    rate, base_rate = total / seconds, total / baseline_s
    log(
        f"  push assets: {total:,} records in {seconds:.1f} s = {rate:,.0f} records/s; "
        f"baseline {base_rate:,.0f} records/s (×{rate / base_rate:.2f}); {history_rows:,} history rows; "
        f"server GC {gc_s:.1f} s"
    )
    return [
        Result(
            "push assets",
            db.kind,
            round(rate),
            "records/s",
            round(base_rate),
            "≥ 0.5× baseline",
            verdict(rate >= 0.5 * base_rate),
            ratio=round(rate / base_rate, 2),
            details={
                "batches": len(bodies),
                "batch": sizes.asset_batch,
                "phases": "create, then update of the same assets (name, status, vcpus, memory changed)",
                "seconds": round(seconds, 2),
                "baseline_seconds": round(baseline_s, 2),
                "history_rows": history_rows,
                "fields_changed_per_update": changed,
                "server_rss_growth_mb": rss.growth_mb,
                "server_gc_seconds": round(gc_s, 2),
                "baseline_method": (
                    "the stored rows read back, then per batch COPY into a staging table + one "
                    "INSERT … ON CONFLICT DO UPDATE (twice: insert, then update), no history"
                    if db.kind == "postgres"
                    else "the stored rows read back, then per batch one-transaction executemany of "
                    "INSERT … ON CONFLICT DO UPDATE (twice: insert, then update), no history"
                ),
            },
        )
    ]


async def bulk_assets(db: Database, source: str, target: str, sizes: Sizes) -> tuple[float, int]:
    """The hub's stored rows of ``source`` upserted as ``target``: per batch, insert then update."""
    n = sizes.asset_batch
    if db.kind == "postgres":
        conn = await asyncpg.connect(db.dsn)
        try:
            history_rows = int(
                await conn.fetchval("SELECT count(*) FROM asset_change WHERE platform_code = $1", source)
            )
            columns = [
                r["column_name"]
                for r in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'asset' "
                    "AND table_schema = current_schema() ORDER BY ordinal_position"
                )
            ]
            rows = await conn.fetch("SELECT * FROM asset WHERE platform_code = $1 ORDER BY asset_id", source)
            records = [
                tuple(
                    target
                    if c == "platform_code"
                    else (asset_uid(target, r["asset_id"]) if c == "asset_uid" else r[c])
                    for c in columns
                )
                for r in rows
            ]
            await conn.execute("CREATE TEMP TABLE bench_asset_staging (LIKE asset) ON COMMIT DELETE ROWS")
            updates = ", ".join(
                f"{c} = excluded.{c}"
                for c in columns
                if c not in {"platform_code", "asset_id", "asset_uid", "created_at"}
            )
            sql = (
                f"INSERT INTO asset ({', '.join(columns)}) SELECT {', '.join(columns)} "
                "FROM bench_asset_staging "
                f"ON CONFLICT (platform_code, asset_id) DO UPDATE SET {updates}"
            )
            started = time.perf_counter()
            for _ in range(2):
                for b in range(0, len(records), n):
                    async with conn.transaction():
                        await conn.copy_records_to_table(
                            "bench_asset_staging", records=records[b : b + n], columns=columns
                        )
                        await conn.execute(sql)
            return time.perf_counter() - started, history_rows
        finally:
            await conn.close()
    assert db.sqlite_path is not None
    path = db.sqlite_path

    def work() -> tuple[float, int]:
        conn = sqlite3.connect(path, isolation_level=None, timeout=60)
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            history_rows = conn.execute(
                "SELECT count(*) FROM asset_change WHERE platform_code = ?", (source,)
            ).fetchone()[0]
            cursor = conn.execute("SELECT * FROM asset WHERE platform_code = ? ORDER BY asset_id", (source,))
            columns = [d[0] for d in cursor.description]
            position = {c: k for k, c in enumerate(columns)}
            records = []
            for r in cursor.fetchall():
                values = list(r)
                values[position["platform_code"]] = target
                values[position["asset_uid"]] = asset_uid(target, r[position["asset_id"]]).hex
                records.append(tuple(values))
            updates = ", ".join(
                f"{c} = excluded.{c}"
                for c in columns
                if c not in {"platform_code", "asset_id", "asset_uid", "created_at"}
            )
            sql = (
                f"INSERT INTO asset ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
                f"ON CONFLICT (platform_code, asset_id) DO UPDATE SET {updates}"
            )
            started = time.perf_counter()
            for _ in range(2):
                for b in range(0, len(records), n):
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(sql, records[b : b + n])
                    conn.execute("COMMIT")
            return time.perf_counter() - started, int(history_rows)
        finally:
            conn.close()

    return await asyncio.to_thread(work)


# --- figure: the OpenStack full sync ----------------------------------------------------------
@contextlib.contextmanager
def openstack_server(vms: int, hosts: int, latency_s: float) -> Iterator[str]:
    from bench.openstack_sync import _serve

    port = free_port()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(port, vms, hosts, latency_s), daemon=True
    )
    process.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.join(10)


async def fetch_only(base: str, options: dict[str, Any], kinds: tuple[str, ...]) -> tuple[float, int]:
    """The baseline: the collector reads every page and drops the records (waiting on the server)."""
    config = SourceConfig(
        source_id="baseline",
        platform_code="BENCH-OS-01",
        type="openstack",
        base_url=f"{base}/v3",
        interval_s=300,
        kinds=kinds,
        options=options,
        credentials={"application_credential_id": "bench", "application_credential_secret": "bench"},
    )
    counted = 0

    async def drop(kind: str, records: list[dict[str, Any]], platform: str | None) -> None:
        nonlocal counted
        counted += len(records)

    started = time.perf_counter()
    async with SourceHTTP(config.base_url, allowed_hosts=frozenset({"127.0.0.1"})) as http:
        ctx = RunContext(
            run_id="baseline", mode="full", started_at=datetime.now(UTC), http=http, state={}, _emit=drop
        )
        await OpenStackCollector(config).run(ctx)
    return time.perf_counter() - started, counted


async def openstack(hub: Hub, db: Database, sizes: Sizes) -> list[Result]:
    kinds = ("assets", "metrics")
    options = {"limit": sizes.vm_page, "volumes": False}
    with openstack_server(sizes.vms, sizes.hosts, sizes.latency_ms / 1000) as base:
        baseline_s, counted = await fetch_only(base, options, kinds)
        code = "BENCH-OS-01"
        await hub.platform(code)
        await hub.ok(
            "POST",
            "/api/v1/admin/sources",
            201,
            json={
                "source_id": "bench-os",
                "platform_code": code,
                "type": "openstack",
                "base_url": f"{base}/v3",
                "credentials": {
                    "application_credential_id": "bench",
                    "application_credential_secret": "bench",
                },
                "kinds": list(kinds),
                "options": options,
            },
        )
        with PeakRSS(hub.server.pid) as rss:
            started = time.perf_counter()
            run_id = (
                await hub.ok("POST", "/api/v1/admin/sources/bench-os/run", 202, params={"mode": "full"})
            )["run_id"]
            while True:
                await asyncio.sleep(0.25)
                run = await hub.ok("GET", f"/api/v1/admin/sources/bench-os/runs/{run_id}")
                if run["status"] not in {"running", "queued", "pending"}:
                    break
            seconds = time.perf_counter() - started
    if run["status"] != "success":
        raise RuntimeError(f"openstack run ended {run['status']}: {run.get('error')}")
    log(
        f"  openstack full sync: {sizes.vms:,} VMs in {seconds:.1f} s (fetch only {baseline_s:.1f} s, "
        f"×{seconds / baseline_s:.2f}); server RSS +{rss.growth_mb:.0f} MB"
    )
    return [
        Result(
            "openstack full sync",
            db.kind,
            round(seconds, 1),
            "s",
            round(baseline_s, 1),
            "≤ 60 s and ≤ 300 MB growth",
            verdict(seconds <= 60 and rss.growth_mb <= 300),
            ratio=round(seconds / baseline_s, 2),
            details={
                "vms": sizes.vms,
                "hosts": sizes.hosts,
                "page": sizes.vm_page,
                "latency_ms": sizes.latency_ms,
                "records": run.get("records"),
                "accepted": run.get("accepted"),
                "rejected": run.get("rejected"),
                "pages": run.get("pages"),
                "baseline_records": counted,
                "server_rss_growth_mb": rss.growth_mb,
                "server_peak_rss_mb": rss.peak_mb,
                "baseline_method": "the same collector fetching every page and dropping the records",
            },
        )
    ]


# --- one database -----------------------------------------------------------------------------
async def run_database(
    kind: str, sizes: Sizes, args: argparse.Namespace
) -> tuple[list[Result], dict[str, Any]]:
    info: dict[str, Any] = {}
    wanted = set(args.only.split(",")) if args.only else set(FIGURES)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="suphub-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with database(kind, tmp) as db:
            log(f"\n=== {kind}: migrating")
            await asyncio.to_thread(command.upgrade, alembic_config(db.url), "head")
            spec = SeedSpec(assets=sizes.assets, samples=sizes.samples, alarms=0, logs=0)
            log(f"=== {kind}: seeding {spec.assets:,} assets and {spec.samples:,} samples in bulk")
            started = time.perf_counter()
            data = await seed_database(db, spec)
            info["seed_s"] = round(time.perf_counter() - started, 1)
            info["seeded"] = {
                "assets": data.counts.get("asset"),
                "samples": data.samples,
                "dense_series": data.dense_series,
            }
            log(f"=== {kind}: seeded in {info['seed_s']:.0f} s")
            secret = secrets.token_hex(32)
            settings = Settings(database_url=db.url, data_dir=tmp, secret_key=secret, _env_file=None)  # type: ignore[call-arg]
            engine = create_engine(settings)
            try:
                async with create_sessionmaker(engine)() as session:
                    admin = await create_client(
                        session, load_server_key(settings), ClientCreate(name="bench admin", role="admin")
                    )
                    await session.commit()
            finally:
                await engine.dispose()
            unlimited = "[1000000.0, 1000000.0]"
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("SUPHUB_")},
                "SUPHUB_DATABASE_URL": db.url,
                "SUPHUB_DATA_DIR": str(tmp),
                "SUPHUB_SECRET_KEY": secret,
                # the limits stay on (their cost is measured), only high enough for a benchmark
                "SUPHUB_RATE_LIMIT_ROLES": orjson.dumps(
                    {r: [1e6, 1e6] for r in ("admin", "regulator", "provider", "integrator")}
                ).decode(),
                "SUPHUB_RATE_LIMIT_IP": unlimited,
                # the OpenStack peer listens on loopback, which §8 refuses unless the host is listed
                "SUPHUB_SOURCE_ALLOWED_HOSTS": '["127.0.0.1"]',
            }
            if args.gc_defaults:
                env["SUPHUB_GC_TUNING"] = "false"
            with hub_server(env, tmp) as server:
                log(f"=== {kind}: hub on {server.base} (uvicorn pid {server.pid})")
                hub = Hub(server, admin["bearer"], settings)
                try:
                    info["server_rss_start_mb"] = round(
                        proc_status(server.pid).get("VmRSS", 0) * 1024 / MB, 1
                    )
                    steps: list[tuple[str, Callable[[], Any]]] = [
                        ("asset_page", lambda: asset_page(hub, db, sizes, args.smoke)),
                        ("series", lambda: series(hub, db, data, sizes)),
                        ("export", lambda: exports(hub, db, data, sizes)),
                        ("push_metrics", lambda: push_metrics(hub, db, sizes)),
                        ("push_assets", lambda: push_assets(hub, db, sizes)),
                        ("openstack", lambda: openstack(hub, db, sizes)),
                    ]
                    for name, step in steps:
                        if name not in wanted:
                            continue
                        log(f"--- {kind}: {name}")
                        started = time.perf_counter()
                        results.extend(await step())
                        info.setdefault("figure_s", {})[name] = round(time.perf_counter() - started, 1)
                finally:
                    await hub.close()
            if db.kind == "postgres":
                conn = await asyncpg.connect(db.dsn)
                try:
                    info["server_version"] = await conn.fetchval("SHOW server_version")
                finally:
                    await conn.close()
            else:
                info["server_version"] = sqlite3.sqlite_version
    return results, info


# --- the machine and the report ---------------------------------------------------------------
def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:")), 0)
    model = ""
    with contextlib.suppress(OSError):
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    commit = ""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        commit += "+uncommitted changes" if dirty else ""
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(total_kib / 2**20, 1),
        "python": platform_module.python_version(),
        "os": platform_module.platform(),
        "commit": commit,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def print_table(results: list[Result]) -> None:
    print()
    header = (
        f"{'figure':<22}{'db':<10}{'value':>12} {'unit':<15}{'baseline':>11}{'ratio':>8}  "
        f"{'goal':<54}{'verdict':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        value = "—" if r.value is None else f"{r.value:,.1f}" if r.value < 1000 else f"{r.value:,.0f}"
        base = (
            "—" if r.baseline is None else f"{r.baseline:,.1f}" if r.baseline < 1000 else f"{r.baseline:,.0f}"
        )
        ratio = "—" if r.ratio is None else f"{r.ratio:g}"
        extra = ""
        if r.figure.startswith("export"):
            extra = f"  ({r.details['rows_per_s']:,} rows/s)"
        print(
            f"{r.figure:<22}{r.database:<10}{value:>12} {r.unit:<15}{base:>11}{ratio:>8}  "
            f"{r.goal:<54}{r.verdict:>7}{extra}"
        )


async def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, same code paths (about a minute)")
    parser.add_argument("--databases", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--only", help=f"comma-separated figures: {', '.join(FIGURES)}")
    parser.add_argument("--assets", type=int, help="assets to seed")
    parser.add_argument("--samples", type=int, help="metric samples to seed")
    parser.add_argument(
        "--sqlite-samples", type=int, help="metric samples to seed on SQLite (default: --samples)"
    )
    parser.add_argument("--vms", type=int, help="VMs of the OpenStack-shaped server")
    parser.add_argument("--exports", help="export formats ('' for none)")
    parser.add_argument("--output", help="JSON path (default bench/results/<date>[-smoke].json)")
    parser.add_argument(
        "--gc-defaults",
        action="store_true",
        help="experiment: the server keeps CPython's garbage collector defaults (SUPHUB_GC_TUNING=false)",
    )
    args = parser.parse_args()
    sizes = SMOKE if args.smoke else Sizes()
    if args.assets is not None:
        sizes = replace(sizes, assets=args.assets)
    if args.samples is not None:
        sizes = replace(sizes, samples=args.samples)
    if args.vms is not None:
        sizes = replace(sizes, vms=args.vms)
    if args.exports is not None:
        sizes = replace(sizes, exports=tuple(f for f in args.exports.split(",") if f))
    started = time.perf_counter()
    summary: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "smoke": args.smoke,
        "gc_defaults_experiment": args.gc_defaults,
        "started": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "sizes": asdict(sizes),
        "databases": {},
    }
    results: list[Result] = []
    for kind in [d.strip() for d in args.databases.split(",") if d.strip()]:
        db_sizes = (
            replace(sizes, samples=args.sqlite_samples) if kind == "sqlite" and args.sqlite_samples else sizes
        )
        got, info = await run_database(kind, db_sizes, args)
        if db_sizes != sizes:
            info["sizes"] = asdict(db_sizes)
        results.extend(got)
        summary["databases"][kind] = info
    summary["results"] = [asdict(r) for r in results]
    summary["finished"] = datetime.now(UTC).isoformat()
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    summary["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print_table(results)
    if args.smoke:
        print("\n(smoke sizes: the verdicts say nothing about the goals; the code paths ran)")
    output = (
        Path(args.output)
        if args.output
        else RESULTS / f"{datetime.now(UTC):%Y-%m-%d}{'-smoke' if args.smoke else ''}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2, default=str))
    log(
        f"\nwritten {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output} "
        f"in {summary['wall_s']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
