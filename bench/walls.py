"""Where the time of one push batch goes, each stage measured in isolation (issue 7, "the wall").

For a 5 000-sample metrics batch and a 1 000-record assets batch (the shapes of ``bench/run.py``)
on a fresh SQLite or PostgreSQL database, in this process, no HTTP:

* ``json``: ``orjson.loads`` of the body;
* ``validate``: pydantic ``model_validate`` of every record (the wire model, nothing else);
* ``service validate``: the ingest service's per-record pass (validation, null and unknown-field
  checks, the kind's static checks such as the age of a sample);
* ``keys + dedupe``: the batch's keys, last-occurrence-wins and the sort into lock order;
* ``accept_batch``: the whole ingest of the batch (validation, checks against the store, the
  writes, snapshot, quarantine and receipt), committed;
* ``bulk baseline``: the rows the batch stores, written the fastest way the database offers
  (PostgreSQL: COPY into a staging table + one ``INSERT … ON CONFLICT``; SQLite: one-transaction
  ``executemany``) — the same baseline as ``bench/run.py``.

Usage::

    .venv/bin/python bench/walls.py [--database sqlite|postgres] [--batches 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from alembic import command

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.cli import alembic_config  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import create_engine, create_sessionmaker  # noqa: E402
from app.main import tune_garbage_collector  # noqa: E402
from app.models import Platform  # noqa: E402
from app.schemas.ingest import RECORD_MODELS  # noqa: E402
from app.services.ingest.core import BatchContext  # noqa: E402
from app.services.ingest.kinds import HANDLERS  # noqa: E402
from app.services.ingest.service import IngestService  # noqa: E402
from bench.run import PG_DSN, asset_records, metric_records, process_cpu_s, sample_rows  # noqa: E402


def per_batch(fn: Callable[[], Any], repeat: int) -> float:
    """Best of ``repeat`` runs, in ms."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--database", default="sqlite", choices=("sqlite", "postgres"))
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument(
        "--gc",
        default="tuned",
        choices=("tuned", "default", "off"),
        help="the garbage collector: tuned as the serving hub tunes it (app.main.tune_garbage_collector), "
        "CPython's defaults, or disabled (to measure its share)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        name = None
        if args.database == "postgres":
            name = f"suphub_bench_{uuid.uuid4().hex[:8]}"
            admin = await asyncpg.connect(PG_DSN)
            await admin.execute(f'CREATE DATABASE "{name}"')
            url = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
        else:
            url = f"sqlite+aiosqlite:///{tmp}/walls.db"
        try:
            await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
            await measure(url, Path(tmp), args, name)
        finally:
            if name is not None:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()


async def measure(url: str, tmp: Path, args: Any, pg_name: str | None) -> None:
    settings = Settings(database_url=url, data_dir=tmp, _env_file=None)  # type: ignore[call-arg]
    engine = create_engine(settings)
    maker = create_sessionmaker(engine)
    async with maker() as session:
        for code in ("WALL-01", "WALL-02"):
            session.add(
                Platform(
                    platform_code=code,
                    name=code,
                    region_code="440100",
                    region_prefix="4401",
                    network_zone="gov_extranet",
                    level="city",
                )
            )
        await session.commit()
    service = IngestService(maker, settings)
    if args.gc == "tuned":
        tune_garbage_collector()
    elif args.gc == "off":
        gc.disable()
    print(f"{args.database}: one batch, best of {args.batches} (ms), in-process, gc {args.gc}")
    print(
        f"{'kind':<9}{'records':>8}{'json':>8}{'validate':>10}{'svc valid.':>11}{'dedupe':>8}"
        f"{'accept':>9}{'baseline':>10}{'µs/rec validate':>17}{'µs/rec accept':>15}{'µs/rec base':>13}"
    )
    for kind, n in (("metrics", 5000), ("assets", 1000)):
        await measure_kind(kind, n, service, settings, args, url, pg_name)
    await engine.dispose()
    if CPU_LINES:
        print("\nCPU per batch (median): what a saturated machine pays for one batch")
        print("\n".join(CPU_LINES))


async def measure_kind(
    kind: str, n: int, service: IngestService, settings: Settings, args: Any, url: str, pg_name: str | None
) -> None:
    """One kind's row of the table."""
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=args.batches + 10)
    bodies = []
    for b in range(args.batches):
        records = metric_records(b, n, base) if kind == "metrics" else asset_records(b, n, False)
        bodies.append(
            orjson.dumps(
                {
                    "batch_id": f"w-{kind}-{b}",
                    "platform_code": "WALL-01",
                    "collected_at": datetime.now(UTC).isoformat(),
                    "records": records,
                }
            )
        )
    raw = orjson.loads(bodies[0])["records"]
    model = RECORD_MODELS[kind]
    handler = HANDLERS[kind](settings)
    json_ms = per_batch(lambda: orjson.loads(bodies[0]), args.batches)
    validate_ms = per_batch(lambda: [model.model_validate(r) for r in raw], args.batches)
    now = datetime.now(UTC)

    def ctx() -> BatchContext:
        return BatchContext(
            kind=kind,
            platform_code="WALL-01",
            platform_network_zone="gov_extranet",
            batch_id="x",
            reporter="walls",
            collected_at=now,
            now=now,
            snapshot=None,
        )

    service_ms = per_batch(lambda: service._validate(handler, ctx(), raw, scan_nul=False), args.batches)
    items = service._validate(handler, ctx(), raw, scan_nul=False)
    dedupe_ms = per_batch(lambda: service._deduplicate(handler, ctx(), items), args.batches)
    accept = []
    accept_cpu: list[tuple[float, float]] = []  # (this process, the database server) per batch
    for number, body in enumerate(bodies):
        pids = await server_pids(pg_name) if number else []  # the pool is warm after batch 0
        cpu_before = (time.process_time(), sum(process_cpu_s(pid) for pid in pids))
        started = time.perf_counter()
        outcome = await service.accept_batch(kind, body, reporter="walls", authorize=lambda p: None)
        accept.append(time.perf_counter() - started)
        if number:
            db_s = sum(process_cpu_s(pid) for pid in pids) - cpu_before[1]
            accept_cpu.append((time.process_time() - cpu_before[0], db_s))
        assert outcome.receipt["accepted"] == n, outcome.receipt
    accept_ms = min(accept) * 1000
    baseline_ms, baseline_cpu = await baseline(kind, url, pg_name, raw, n, args.batches, base)
    print(
        f"{kind:<9}{n:>8}{json_ms:>8.1f}{validate_ms:>10.1f}{service_ms:>11.1f}{dedupe_ms:>8.1f}"
        f"{accept_ms:>9.1f}{baseline_ms:>10.1f}{validate_ms * 1000 / n:>17.1f}"
        f"{accept_ms * 1000 / n:>15.1f}{baseline_ms * 1000 / n:>13.1f}"
    )
    if baseline_cpu is not None:
        py_ms = statistics.median(c[0] for c in accept_cpu) * 1000
        db_ms = statistics.median(c[1] for c in accept_cpu) * 1000
        base_py, base_db = (statistics.median(c[i] for c in baseline_cpu) * 1000 for i in (0, 1))
        CPU_LINES.append(
            f"{kind:<9}{n:>8}  accept: {py_ms:6.1f} ms Python + {db_ms:6.1f} ms database = "
            f"{py_ms + db_ms:6.1f} ms;  baseline: {base_py:6.1f} + {base_db:6.1f} = "
            f"{base_py + base_db:6.1f} ms"
            f"  (×{(base_py + base_db) / (py_ms + db_ms):.2f})"
        )


#: CPU per batch, printed after the table (metrics only: the assets baseline opens its own connections)
CPU_LINES: list[str] = []


async def server_pids(pg_name: str | None) -> list[int]:
    """PostgreSQL: the server processes of the database's open connections (the pool's)."""
    if pg_name is None:
        return []
    conn = await asyncpg.connect(PG_DSN)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
            pg_name,
        )
    finally:
        await conn.close()
    return [row["pid"] for row in rows]


async def baseline(
    kind: str, url: str, pg_name: str | None, raw: list[Any], n: int, repeat: int, base: datetime
) -> tuple[float, list[tuple[float, float]] | None]:
    """The fastest bulk write of one batch's rows (samples; for assets, the stored rows copied).

    Milliseconds per batch and, for samples, the CPU seconds per batch of this process (SQLite
    writes here too) and of the database server (PostgreSQL).
    """
    from bench.run import Database, Sizes, bulk_assets, bulk_samples

    if pg_name is not None:
        db = Database("postgres", url, pg_name=pg_name)
    else:
        db = Database("sqlite", url, sqlite_path=url.split("///", 1)[1])
    if kind == "assets":  # every pushed batch's stored rows, inserted then updated, per batch
        seconds, _ = await bulk_assets(db, "WALL-01", "WALL-02", Sizes(asset_batch=n))
        return seconds / (2 * repeat) * 1000, None
    best = float("inf")
    cpu: list[tuple[float, float]] = []
    for b in range(repeat):
        records = metric_records(b, n, base - timedelta(minutes=60))
        rows = sample_rows("WALL-02", records, b + 1, datetime.now(UTC))
        server: dict[str, float] = {}
        py_before = time.process_time()
        best = min(best, await bulk_samples(db, [[rows]], server))
        # this process's CPU includes connecting; the server's is the writes alone
        cpu.append((time.process_time() - py_before, server.get("db_s", 0.0)))
    return best * 1000, cpu


if __name__ == "__main__":
    asyncio.run(main())
