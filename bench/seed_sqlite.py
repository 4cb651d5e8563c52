"""Bulk seeding of a benchmark SQLite database, the counterpart of :mod:`bench.seed` (PostgreSQL).

The same platforms, assets and history rows (:class:`bench.seed.AssetFactory`), written with the
standard ``sqlite3`` module: ``executemany`` in big transactions, values converted to what
SQLAlchemy stores on SQLite (UTC times as ``YYYY-MM-DD HH:MM:SS.ffffff``, UUIDs as 32 hex digits,
JSON as text, booleans as 0/1). Metric samples and their 5m / 1h / 1d rollups are generated inside
SQLite (a recursive CTE of times × a temporary table of series), so nothing passes through Python
row by row. Sample values are a deterministic function of (series, time) — a daily triangle wave
plus a small ripple — so each bucket's ``last`` is that function at its ``last_ts`` and the
rollups need no second read of the samples.

The schema is read with ``PRAGMA table_info``: a NOT NULL column without a default that this
module does not know gets a neutral value, like :func:`bench.seed.copy_rows` does.
"""

from __future__ import annotations

import random
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from app.services.ingest.kinds import labels_key, series_id
from bench.seed import (
    ASSET_FIELDS,
    CHANGE_FIELDS,
    INTERVAL_S,
    METRIC,
    AssetFactory,
    SeedResult,
    SeedSpec,
    changes,
    platforms,
)

_TIME = "%Y-%m-%d %H:%M:%S.%f"


def sql_time(expr: str) -> str:
    """SQL turning an epoch (integer seconds) expression into the stored text of a UTC time."""
    return f"(strftime('%Y-%m-%d %H:%M:%S', {expr}, 'unixepoch') || '.000000')"


def sql_value(series: str, epoch: str) -> str:
    """The sample value of ``series`` at ``epoch`` (both SQL expressions): 20 … 98, two decimals."""
    return (
        f"round(20 + abs({series} % 50) + 20.0 * abs((({epoch} / 60 + abs({series} % 1440)) % 1440) - 720)"
        f" / 720.0 + abs(({epoch} / 60 * 7 + {series}) % 9) / 4.0, 2)"
    )


def _stored(value: Any, declared: str) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(_TIME)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, Decimal):
        return float(value)
    return value


def _neutral(declared: str, now: datetime) -> Any:
    kind = declared.upper()
    if any(k in kind for k in ("INT", "BOOL")):
        return 0
    if any(k in kind for k in ("FLOAT", "REAL", "NUMERIC", "DOUBLE")):
        return 0.0
    if "DATETIME" in kind or "TIMESTAMP" in kind:
        return now.strftime(_TIME)
    if kind == "DATE":
        return now.date().isoformat()
    if "JSON" in kind:
        return "{}"
    return ""


def columns_of(conn: sqlite3.Connection, table: str) -> list[tuple[str, str, bool, bool]]:
    """(name, declared type, NOT NULL, has default or is the rowid alias) of ``table``."""
    rows = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    return [(r[1], r[2], bool(r[3]), r[4] is not None or (r[5] == 1 and "INT" in r[2].upper())) for r in rows]


def insert_rows(
    conn: sqlite3.Connection,
    table: str,
    fields: Sequence[str],
    rows: Iterable[dict[str, Any]],
    now: datetime,
    batch: int = 20_000,
) -> int:
    """``executemany`` of dict rows in chunks: known fields converted, unknown NOT NULLs neutral."""
    columns = columns_of(conn, table)
    if not columns:
        return 0
    known = set(fields)
    chosen = [c for c in columns if c[0] in known or (c[2] and not c[3])]
    names = [c[0] for c in chosen]
    declared = {c[0]: c[1] for c in chosen}
    fillers = {c[0]: _neutral(c[1], now) for c in chosen if c[0] not in known}
    sql = f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ({", ".join("?" * len(names))})'
    count = 0
    pending: list[tuple[Any, ...]] = []
    for row in rows:
        pending.append(tuple(_stored(row[n], declared[n]) if n in known else fillers[n] for n in names))
        if len(pending) >= batch:
            conn.executemany(sql, pending)
            count += len(pending)
            pending = []
    if pending:
        conn.executemany(sql, pending)
        count += len(pending)
    return count


def seed_sqlite(path: str, spec: SeedSpec, log: Any = print) -> SeedResult:
    """Fill an empty, migrated SQLite database; the same result shape as :func:`bench.seed.seed`."""
    rnd = random.Random(spec.seed)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-524288")  # 512 MiB
    conn.execute("PRAGMA temp_store=MEMORY")
    plats = platforms(now)
    result = SeedResult(now=now, platforms=plats)

    def step(name: str, work: Any) -> Any:
        started = time.perf_counter()
        conn.execute("BEGIN")
        value = work()
        conn.execute("COMMIT")
        result.timings[name] = round(time.perf_counter() - started, 1)
        if isinstance(value, int):
            result.counts[name] = value
        shown = f"{value:,}" if isinstance(value, int) else ""
        log(f"  seeded {name:<14} {shown:>12} in {result.timings[name]:.1f} s")
        return value

    try:
        step("platform", lambda: insert_rows(conn, "platform", list(plats[0]), plats, now))
        factory = AssetFactory(rnd, plats, spec.assets, now)
        step("asset", lambda: insert_rows(conn, "asset", ASSET_FIELDS, factory.rows(), now))
        step(
            "asset_change",
            lambda: insert_rows(conn, "asset_change", CHANGE_FIELDS, changes(factory, rnd), now),
        )
        counts = {p["platform_code"]: 0 for p in plats}
        for platform, _ in factory.ids:
            counts[platform] += 1
        result.big_platform = max(counts, key=lambda p: counts[p])
        step("metrics", lambda: _metrics(conn, spec, factory, result, log))
        step("counters", lambda: _counters(conn, spec, result))
    finally:
        conn.close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        started = time.perf_counter()
        conn.execute("PRAGMA analysis_limit=1000")
        conn.execute("ANALYZE")
        result.timings["analyze"] = round(time.perf_counter() - started, 1)
        log(f"  ANALYZE in {result.timings['analyze']:.1f} s")
    finally:
        conn.close()
    return result


def _metrics(
    conn: sqlite3.Connection, spec: SeedSpec, factory: AssetFactory, result: SeedResult, log: Any
) -> int:
    """Dense 30+-day series and a wide recent layer, as :func:`bench.seed.seed_metrics` chooses them."""
    now, rnd = result.now, random.Random(spec.seed + 1)
    per_series = spec.days * 86400 // INTERVAL_S
    dense_count = max(1, int(spec.samples * spec.dense_share) // per_series) if spec.samples else 0
    compute = {p: ids[:] for p, ids in factory.compute.items()}
    for ids in compute.values():
        rnd.shuffle(ids)
    order = sorted(compute, key=lambda p: -len(compute[p]))
    dense: list[tuple[str, str]] = []
    k = 0
    while len(dense) < dense_count and any(compute.values()):
        platform = order[k % len(order)]
        if compute[platform]:
            dense.append((platform, compute[platform].pop()))
        k += 1
    wide_budget = spec.samples - len(dense) * per_series
    wide_minutes = max(1, spec.wide_minutes)
    rest = [(p, a) for p in order for a in compute[p]]
    rnd.shuffle(rest)
    wide = rest[: max(0, wide_budget // wide_minutes)]
    if wide and len(wide) < len(rest) and wide_budget // len(wide) > wide_minutes:
        wide_minutes = wide_budget // len(wide)
    key = labels_key({})
    start = now - timedelta(days=spec.days)
    start_e, now_e = int(start.timestamp()), int(now.timestamp())
    last_e = now_e - INTERVAL_S
    conn.execute("CREATE TEMP TABLE bench_series (platform_code TEXT, series_id INTEGER, dense INTEGER)")
    members = [(p, a, 1) for p, a in dense] + [(p, a, 0) for p, a in wide]
    series_rows = [(p, series_id(p, METRIC, a, key), d) for p, a, d in members]
    conn.executemany("INSERT INTO bench_series VALUES (?, ?, ?)", series_rows)
    insert_rows(
        conn,
        "metric_series",
        ["platform_code", "series_id", "metric", "asset_id", "labels", "labels_key", "created_at", "last_ts"],
        (
            {
                "platform_code": p,
                "series_id": sid,
                "metric": METRIC,
                "asset_id": a,
                "labels": "{}",
                "labels_key": key,
                "created_at": now - timedelta(days=spec.days + 5),
                "last_ts": now - timedelta(seconds=INTERVAL_S),
            }
            for (p, sid, _), (_, a, _) in zip(series_rows, members, strict=True)
        ),
        now,
    )
    conn.execute(
        f"UPDATE metric_series SET last_value = {sql_value('series_id', str(last_e))} "
        "WHERE metric = ? AND last_ts IS NOT NULL",
        (METRIC,),
    )
    result.dense_series, result.wide_series = len(dense), len(wide)
    if dense:
        result.dense_asset = next((d for d in dense if d[0] == result.big_platform), dense[0])
    result.sample_start = start
    total = 0
    times = (
        f"WITH RECURSIVE t(e) AS (SELECT ?1 UNION ALL SELECT e + {INTERVAL_S} FROM t "
        f"WHERE e + {INTERVAL_S} < ?2) "
    )
    insert = (
        times + "INSERT INTO metric_sample (platform_code, series_id, ts, value, received_at, change_seq) "
        f"SELECT s.platform_code, s.series_id, {sql_time('t.e')}, {sql_value('s.series_id', 't.e')}, "
        f"{sql_time('t.e + 7')}, (t.e - ?3) / 60 + 1 FROM t CROSS JOIN bench_series s WHERE s.dense = ?4"
    )
    day = 86400
    if dense:
        low = start_e
        while low < now_e:
            high = min(now_e, (low // day + 1) * day)
            started = time.perf_counter()
            rows = _changed(conn, insert, (low, high, start_e, 1))
            total += rows
            rate = rows / max(time.perf_counter() - started, 1e-9)
            day_shown = datetime.fromtimestamp(low, UTC)
            log(f"    samples {day_shown:%m-%d %H:%M}: {rows:>10,} rows {rate:>10,.0f} rows/s")
            low = high
    if wide:
        total += _changed(conn, insert, (now_e - wide_minutes * 60, now_e, start_e, 0))
    result.samples = total
    if spec.rollups:
        started = time.perf_counter()
        built = _rollups(conn, spec, [(p, sid) for p, sid, d in series_rows if d], start_e, now_e, False)
        built += _rollups(conn, spec, [], now_e - wide_minutes * 60, now_e, True)
        built += _coarse_rollups(conn, spec)
        result.timings["rollups"] = round(time.perf_counter() - started, 1)
        result.counts["rollups"] = built
        log(f"    rollups {built:,} rows in {result.timings['rollups']:.1f} s")
        insert_rows(
            conn,
            "rollup_state",
            ["kind", "platform_code", "built_seq", "day_tz", "updated_at"],
            (
                {
                    "kind": "metric_sample",
                    "platform_code": p["platform_code"],
                    "built_seq": (now_e - start_e) // 60 + 1,
                    "day_tz": spec.reporting_tz,
                    "updated_at": now,
                }
                for p in result.platforms
            ),
            now,
        )
    return total


def _rollups(
    conn: sqlite3.Connection,
    spec: SeedSpec,
    dense: list[tuple[str, int]],
    low: int,
    high: int,
    wide: bool,
) -> int:
    """5m buckets of the generated samples (per dense series, or the whole wide layer at once)."""
    if not columns_of(conn, "metric_rollup_5m"):
        return 0
    times = (
        f"WITH RECURSIVE t(e) AS (SELECT {low} UNION ALL SELECT e + {INTERVAL_S} FROM t "
        f"WHERE e + {INTERVAL_S} < {high}) "
    )
    generated = (
        "SELECT s.platform_code AS p, s.series_id AS s, t.e AS e, "
        f"{sql_value('s.series_id', 't.e')} AS v FROM t CROSS JOIN bench_series s "
        + ("WHERE s.dense = 0" if wide else "WHERE s.platform_code = ?1 AND s.series_id = ?2")
    )
    sql = (
        times + "INSERT INTO metric_rollup_5m (platform_code, series_id, bucket_start, count, total, "
        "minimum, maximum, last_ts, last) "
        f"SELECT g.p, g.s, {sql_time('(g.e / 300) * 300')}, count(*), sum(g.v), min(g.v), max(g.v), "
        f"{sql_time('max(g.e)')}, {sql_value('g.s', 'max(g.e)')} FROM ({generated}) g "
        "GROUP BY g.p, g.s, g.e / 300"
    )
    if wide:
        return _changed(conn, sql, ())
    return sum(_changed(conn, sql, (platform, sid)) for platform, sid in dense)


def _coarse_rollups(conn: sqlite3.Connection, spec: SeedSpec) -> int:
    """1h and 1d buckets from the 5m ones (days in the reporting time zone, a fixed offset)."""
    offset = int(datetime.now(ZoneInfo(spec.reporting_tz)).utcoffset().total_seconds())  # type: ignore[union-attr]
    epoch = "CAST(strftime('%s', bucket_start) AS INTEGER)"
    total = 0
    for table, bucket in (
        ("metric_rollup_1h", f"({epoch} / 3600) * 3600"),
        ("metric_rollup_1d", f"(({epoch} + {offset}) / 86400) * 86400 - {offset}"),
    ):
        if not columns_of(conn, table):
            continue
        last = "CAST(strftime('%s', max(last_ts)) AS INTEGER)"
        total += _changed(
            conn,
            f"INSERT INTO {table} (platform_code, series_id, bucket_start, count, total, minimum, maximum, "
            f"last_ts, last) SELECT platform_code, series_id, {sql_time(bucket)}, sum(count), sum(total), "
            f"min(minimum), max(maximum), max(last_ts), {sql_value('series_id', last)} "
            f"FROM metric_rollup_5m GROUP BY platform_code, series_id, {bucket}",
            (),
        )
    return total


def _changed(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    """Rows written by one statement (``rowcount`` is -1 for statements that start with WITH)."""
    before = conn.total_changes
    conn.execute(sql, params)
    return conn.total_changes - before


def _counters(conn: sqlite3.Connection, spec: SeedSpec, result: SeedResult) -> int:
    if not columns_of(conn, "change_counter"):
        return 0
    values = {"assets": spec.assets}
    if result.sample_start is not None:
        last = int((result.now - result.sample_start).total_seconds() // 60)
        values.update({f"metric_sample:{p['platform_code']}": last + 1 for p in result.platforms})
    conn.executemany(
        "INSERT INTO change_counter (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        list(values.items()),
    )
    return len(values)
