"""Bulk seeding of a benchmark PostgreSQL database: platforms, assets, history, alarms, logs, metric
series and samples (and their rollups when the schema has them), written with COPY and
``INSERT … SELECT`` instead of the API, so a 1M-asset / 50M-sample database takes minutes.

The schema is read from ``information_schema`` at run time: a NOT NULL column this module does not
know (the schema moves while benchmarks are written) is filled with a neutral value of its type,
and a table partitioned by range of time gets the partitions the seeded rows need. Values are
varied and deterministic (one seeded ``random.Random``) so two runs plan alike.
"""

from __future__ import annotations

import itertools
import random
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from app.schemas.types import normalise_region
from app.services.ingest.kinds import asset_uid, labels_key, series_id

# --- what the seeded data looks like ---------------------------------------------------------
REGIONS = (
    ("440000", "广东省", "GD", "province"),
    ("440100", "广州市", "GZ", "city"),
    ("440300", "深圳市", "SZ", "city"),
    ("440600", "佛山市", "FS", "city"),
    ("441900", "东莞市", "DG", "city"),
)
PLATFORMS_PER_REGION = 4
ASSET_TYPES = (
    ("vm", 55.0),
    ("volume", 15.0),
    ("server", 5.0),
    ("hypervisor_host", 3.0),
    ("bare_metal", 1.0),
    ("container_cluster", 1.0),
    ("object_bucket", 3.0),
    ("file_share", 2.0),
    ("storage_device", 1.0),
    ("storage_pool", 1.0),
    ("network_device", 4.0),
    ("security_device", 2.0),
    ("database_instance", 4.0),
    ("middleware_instance", 2.0),
    ("facility_device", 0.5),
    ("rack", 0.5),
)
COMPUTE = frozenset({"vm", "server", "hypervisor_host", "bare_metal"})
PHYSICAL = frozenset(
    {"server", "hypervisor_host", "storage_device", "network_device", "security_device", "facility_device"}
    | {"rack"}
)
STORAGE = frozenset({"volume", "object_bucket", "file_share", "storage_device", "storage_pool"})
SOFTWARE = frozenset({"database_instance", "middleware_instance", "container_cluster"})
STATUSES: tuple[tuple[str, float], ...] = (
    ("running", 80.0),
    ("stopped", 10.0),
    ("suspended", 2.0),
    ("building", 1.0),
)
STATUSES += (("migrating", 0.5), ("error", 1.0), ("deleted", 0.5), ("unknown", 5.0))
LIFECYCLES = (("in_use", 85.0), ("in_stock", 5.0), ("maintenance", 3.0), ("retired", 7.0))
CPUS = (  # arch, vendor, model, domestic, weight
    ("x86_64", "Intel", "Xeon Gold 6330", False, 35.0),
    ("x86_64", "AMD", "EPYC 7543", False, 8.0),
    ("x86_64", "Hygon", "C86 7285", True, 17.0),
    ("x86_64", "Zhaoxin", "KH-40000", True, 2.0),
    ("aarch64", "HiSilicon", "Kunpeng 920", True, 20.0),
    ("aarch64", "Phytium", "FT-2000+/64", True, 9.0),
    ("loongarch64", "Loongson", "3C5000", True, 5.0),
    ("sw_64", "Sunway", "SW3231", True, 1.5),
    ("mips64el", "Loongson", "3A4000", True, 0.5),
    ("other", "Unknown", "generic", False, 2.0),
)
OSES = (
    ("Kylin", "V10 SP3", True),
    ("UOS", "20 1060e", True),
    ("openEuler", "22.03 LTS", True),
    ("CentOS", "7.9", False),
    ("Ubuntu", "22.04", False),
    ("Windows Server", "2019", False),
)
VENDORS = (
    ("Huawei", True),
    ("H3C", True),
    ("Inspur", True),
    ("Sugon", True),
    ("Dell", False),
    ("HPE", False),
    ("Cisco", False),
)
PRODUCTS: tuple[tuple[str, str, str], ...] = (
    ("DM8", "达梦", "8.1"),
    ("KingbaseES", "人大金仓", "V8R6"),
    ("MySQL", "Oracle", "8.0"),
)
PRODUCTS += (("TongWeb", "东方通", "7.0"), ("Redis", "Redis Ltd", "6.2"), ("Kubernetes", "CNCF", "1.28"))
DEPARTMENTS = (
    "政务服务数据管理局",
    "公安局",
    "卫生健康委员会",
    "教育局",
    "人力资源和社会保障局",
    "自然资源局",
    "交通运输局",
    "市场监督管理局",
    "税务局",
    "住房和城乡建设局",
    "应急管理局",
    "生态环境局",
    "民政局",
    "财政局",
    "农业农村局",
    "文化广电旅游局",
    "水务局",
    "统计局",
    "司法局",
    "医疗保障局",
)
SYSTEMS: tuple[str, ...] = (
    "一网通办",
    "电子证照",
    "视频监控",
    "不动产登记",
    "社保经办",
    "医保结算",
    "12345热线",
)
SYSTEMS += ("数据共享交换", "办公OA", "财政一体化", "智慧交通", "应急指挥", "网格化管理", "电子档案")
LOG_TYPES: tuple[tuple[str, str], ...] = (
    ("operation", "login"),
    ("operation", "vm.create"),
    ("operation", "vm.delete"),
)
LOG_TYPES += (("security", "intrusion"), ("security", "auth.failure"), ("audit", "policy.change"))
LOG_TYPES += (("system", "service.restart"), ("system", "disk.full"))
ALARM_TITLES = ("CPU使用率过高", "内存使用率过高", "磁盘空间不足", "网络中断", "主机宕机", "备份失败")
#: the metric of the dense (30-day) and wide (last minutes of every compute asset) series
METRIC = "cpu.util"
INTERVAL_S = 60
ROLES = ("web", "app", "db", "cache", "mq", "gw", "etl")


@dataclass(frozen=True)
class SeedSpec:
    """How much to seed; samples split into dense 30+-day series and a wide recent layer."""

    assets: int
    samples: int
    alarms: int
    logs: int
    days: int = 31
    #: share of ``samples`` in the dense series (the rest: a few recent samples of every compute asset)
    dense_share: float = 0.9
    #: per-sample recent layer: how many minutes of samples each wide series gets (at most)
    wide_minutes: int = 10
    rollups: bool = True
    reporting_tz: str = "Asia/Shanghai"
    seed: int = 20261121


@dataclass
class SeedResult:
    """What the requests of a benchmark need to know about the seeded data, and how long it took."""

    now: datetime
    platforms: list[dict[str, Any]]
    #: the platform with the most assets, and one of its compute assets with a dense series
    big_platform: str = ""
    dense_asset: tuple[str, str] = ("", "")
    dense_series: int = 0
    wide_series: int = 0
    samples: int = 0
    sample_start: datetime | None = None
    using_unit: str = ""
    business_system: str = ""
    name_fragment: str = ""
    ip_fragment: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --- the schema as the database has it ---------------------------------------------------------
@dataclass(frozen=True)
class Column:
    name: str
    udt: str
    nullable: bool
    has_default: bool


async def table_columns(conn: asyncpg.Connection, table: str) -> list[Column]:
    """The columns of ``table`` in order (empty when the table does not exist)."""
    rows = await conn.fetch(
        """
        SELECT column_name, udt_name, is_nullable = 'YES' AS nullable,
               (column_default IS NOT NULL OR is_identity = 'YES' OR is_generated = 'ALWAYS') AS has_default
        FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = $1
        ORDER BY ordinal_position
        """,
        table,
    )
    return [Column(r["column_name"], r["udt_name"], r["nullable"], r["has_default"]) for r in rows]


def neutral_value(udt: str, now: datetime) -> Any:
    """A value of type ``udt`` for a NOT NULL column this module does not know."""
    if udt in {"int2", "int4", "int8"}:
        return 0
    if udt in {"float4", "float8"}:
        return 0.0
    if udt == "numeric":
        return Decimal(0)
    if udt == "bool":
        return False
    if udt in {"timestamptz"}:
        return now
    if udt == "timestamp":
        return now.replace(tzinfo=None)
    if udt == "date":
        return now.date()
    if udt in {"json", "jsonb"}:
        return "{}"
    if udt == "uuid":
        return uuid.uuid4()
    if udt == "bytea":
        return b""
    return ""


def neutral_sql(udt: str) -> str:
    """The same as :func:`neutral_value`, as SQL (for ``INSERT … SELECT``)."""
    return {
        "int2": "0",
        "int4": "0",
        "int8": "0",
        "float4": "0",
        "float8": "0",
        "numeric": "0",
        "bool": "false",
        "timestamptz": "now()",
        "timestamp": "localtimestamp",
        "date": "current_date",
        "json": "'{}'::json",
        "jsonb": "'{}'::jsonb",
        "uuid": "gen_random_uuid()",
        "bytea": "''::bytea",
    }.get(udt, "''")


async def copy_rows(
    conn: asyncpg.Connection, table: str, fields: Sequence[str], rows: Iterable[dict[str, Any]], now: datetime
) -> int:
    """COPY dict rows into ``table``: the known ``fields``, plus neutral values for unknown NOT NULLs.

    Fields the table lacks are dropped (a column renamed or removed by a later migration).
    """
    columns = await table_columns(conn, table)
    if not columns:
        return 0
    known = set(fields)
    chosen = [c for c in columns if c.name in known or (not c.nullable and not c.has_default)]
    fillers = {c.name: neutral_value(c.udt, now) for c in chosen if c.name not in known}
    names = [c.name for c in chosen]
    count = 0

    def records() -> Iterator[tuple[Any, ...]]:
        nonlocal count
        for row in rows:
            count += 1
            yield tuple(row[n] if n in known else fillers[n] for n in names)

    await conn.copy_records_to_table(table, records=records(), columns=names)
    return count


async def ensure_time_partitions(
    conn: asyncpg.Connection, table: str, start: datetime, end: datetime
) -> list[str]:
    """Daily range partitions covering ``[start, end)`` when ``table`` is range-partitioned.

    Existing partitions are kept; only the gaps between them get a partition of their own, so
    this works whatever bounds (UTC or local days) the application chose for its own.
    """
    kind = await conn.fetchval("SELECT c.relkind::text FROM pg_class c WHERE c.oid = to_regclass($1)", table)
    if kind != "p":
        return []
    key = await conn.fetchval("SELECT pg_get_partkeydef(to_regclass($1))", table)
    if not key or not key.upper().startswith("RANGE"):
        return []
    bounds = await conn.fetch(
        """
        SELECT pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = to_regclass($1)
        """,
        table,
    )
    covered: list[tuple[datetime, datetime]] = []
    for row in bounds:
        match = re.search(r"FROM \((.+?)\) TO \((.+?)\)", row["bound"] or "")
        if not match:
            continue
        covered.append((await _bound_time(conn, match[1]), await _bound_time(conn, match[2])))
    created: list[str] = []
    day = datetime.combine(start.date(), datetime.min.time(), tzinfo=UTC)
    while day < end:
        gaps = [(day, day + timedelta(days=1))]
        for low, high in covered:
            gaps = [piece for gap in gaps for piece in _subtract(gap, (low, high))]
        for number, (low, high) in enumerate(gaps):
            # a whole UTC day is named as app.services.partitions names it (retention finds it)
            whole = (low, high) == (day, day + timedelta(days=1))
            name = f"{table}_p{day:%Y%m%d}" if whole else f"{table}_bench_{day:%Y%m%d}_{number}"
            await conn.execute(
                f'CREATE TABLE "{name}" PARTITION OF "{table}" FOR VALUES FROM ($b${low.isoformat()}$b$) '
                f"TO ($b${high.isoformat()}$b$)"
            )
            created.append(name)
        day += timedelta(days=1)
    return created


async def _bound_time(conn: asyncpg.Connection, text: str) -> datetime:
    text = text.strip()
    if text.upper() == "MINVALUE":
        return datetime(1, 1, 1, tzinfo=UTC)
    if text.upper() == "MAXVALUE":
        return datetime(9999, 1, 1, tzinfo=UTC)
    value: datetime = await conn.fetchval(f"SELECT {text}::timestamptz")
    return value


def _subtract(
    gap: tuple[datetime, datetime], taken: tuple[datetime, datetime]
) -> list[tuple[datetime, datetime]]:
    low, high = gap
    if taken[1] <= low or taken[0] >= high:
        return [gap]
    pieces = []
    if taken[0] > low:
        pieces.append((low, taken[0]))
    if taken[1] < high:
        pieces.append((taken[1], high))
    return pieces


# --- the seeding ------------------------------------------------------------------------------
def _weighted(rnd: random.Random, choices: Sequence[tuple[Any, float]], k: int) -> list[Any]:
    return rnd.choices([c for c, _ in choices], weights=[w for _, w in choices], k=k)


def platforms(now: datetime) -> list[dict[str, Any]]:
    """Twenty platforms in five regions (a province and four cities)."""
    out = []
    for region, city, abbrev, level in REGIONS:
        for k in range(1, PLATFORMS_PER_REGION + 1):
            out.append(
                {
                    "platform_code": f"{abbrev}-GOV-{k:02d}",
                    "name": f"{city}政务云{k}号平台",
                    "region_code": region,
                    "region_prefix": normalise_region(region),
                    "network_zone": "internet" if k == 4 else "gov_extranet",
                    "provider_name": ("中国电信", "中国移动", "华为云", "浪潮云")[k - 1],
                    "provider_uscc": f"914400{k:02d}MA5{abbrev}00000",
                    "level": level,
                    "virtualization": orjson.dumps(["kvm"]).decode(),
                    "protection_level": 3,
                    "availability_target": 99.99,
                    "storage_bw_target_gbps": 10.0,
                    "expected_intervals": orjson.dumps({}).decode(),
                    "status": "active",
                    "created_at": now - timedelta(days=800),
                    "updated_at": now - timedelta(days=30),
                }
            )
    return out


class AssetFactory:
    """Varied, realistic asset rows; remembers which compute assets each platform has."""

    def __init__(self, rnd: random.Random, plats: list[dict[str, Any]], total: int, now: datetime) -> None:
        self.rnd, self.total, self.now = rnd, total, now
        weights = [1.0 / (i + 1) ** 0.8 for i in range(len(plats))]
        rnd.shuffle(weights)
        self.platform_of = rnd.choices([p["platform_code"] for p in plats], weights=weights, k=total)
        self.zone = {p["platform_code"]: p["network_zone"] for p in plats}
        self.city = {p["platform_code"]: p["name"][:3] for p in plats}
        self.types = _weighted(rnd, ASSET_TYPES, total)
        #: change order is unrelated to key order: a random permutation, updated_at follows it
        self.change_seq = list(range(1, total + 1))
        rnd.shuffle(self.change_seq)
        self.compute: dict[str, list[str]] = {}
        self.ids: list[tuple[str, str]] = []
        self.span = timedelta(days=365)

    def rows(self) -> Iterator[dict[str, Any]]:
        rnd, now = self.rnd, self.now
        statuses = _weighted(rnd, STATUSES, self.total)
        lifecycles = _weighted(rnd, LIFECYCLES, self.total)
        cpus = _weighted(rnd, [(c, c[4]) for c in CPUS], self.total)
        for i in range(self.total):
            platform, kind = self.platform_of[i], self.types[i]
            asset_id = f"{rnd.getrandbits(40):010x}-{i:07d}"
            self.ids.append((platform, asset_id))
            if kind in COMPUTE:
                self.compute.setdefault(platform, []).append(asset_id)
            seq = self.change_seq[i]
            updated = now - self.span + self.span * seq / (self.total + 1)
            dept = DEPARTMENTS[min(int(rnd.paretovariate(1.2)) - 1, len(DEPARTMENTS) - 1)]
            unit = f"{self.city[platform]}{dept}"
            system = f"{unit}{SYSTEMS[rnd.randrange(len(SYSTEMS))]}{rnd.randrange(1, 40)}期"
            row: dict[str, Any] = dict.fromkeys(_OPTIONAL)
            row.update(
                {
                    "platform_code": platform,
                    "asset_id": asset_id,
                    "asset_uid": asset_uid(platform, asset_id),
                    "asset_type": kind,
                    "name": f"{kind.split('_')[0]}-{rnd.choice(ROLES)}-{i:07d}",
                    "status": statuses[i],
                    "lifecycle": lifecycles[i],
                    "network_zone": self.zone[platform] if rnd.random() < 0.9 else "private",
                    "using_unit": unit,
                    "using_unit_uscc": f"11440100{rnd.randrange(10**9):09d}X"[:18],
                    "business_system": system,
                    "ip_addresses": orjson.dumps(self._ips(i)).decode(),
                    "tags": orjson.dumps({"env": rnd.choice(("prod", "test", "dev"))}).decode(),
                    "source_updated_at": updated - timedelta(minutes=rnd.randrange(1, 60)),
                    "reporter": f"bench-{platform}",
                    "revision": 1 + (i % 3 == 0),
                    "last_batch_id": f"seed-{i // 10_000}",
                    "created_at": updated - timedelta(days=rnd.randrange(0, 400)),
                    "updated_at": updated,
                    "last_seen_at": now - timedelta(seconds=rnd.randrange(0, 7200)),
                    "change_seq": seq,
                }
            )
            row.update(self._details(kind, cpus[i]))
            yield row

    def _ips(self, i: int) -> list[dict[str, str]]:
        ips = [{"ip": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", "kind": "business"}]
        if i % 4 == 0:
            ips.append({"ip": f"192.168.{(i >> 8) & 255}.{i & 255}", "kind": "mgmt"})
        return ips

    def _details(self, kind: str, cpu: tuple[Any, ...]) -> dict[str, Any]:
        rnd = self.rnd
        out: dict[str, Any] = {}
        domestic: bool | None = None
        primary = "cpu" if kind in COMPUTE else "product"
        if kind in COMPUTE:
            os_name, os_version, _ = OSES[rnd.randrange(len(OSES))]
            vcpus = rnd.choice((1, 2, 4, 8, 16, 32, 64))
            out.update(
                cpu_arch=cpu[0],
                cpu_vendor=cpu[1],
                cpu_model=cpu[2],
                cpu_cores=vcpus if kind == "vm" else vcpus * 2,
                vcpus=vcpus,
                memory_mib=vcpus * rnd.choice((2048, 4096, 8192)),
                disk_gib=float(rnd.choice((40, 100, 200, 500, 1000))),
                os_name=os_name,
                os_version=os_version,
                virtualization="kvm" if kind == "vm" else "bare_metal",
                host_asset_id=f"host-{rnd.randrange(5000):05d}" if kind == "vm" else None,
            )
            domestic = bool(cpu[3])
        if kind in PHYSICAL:
            vendor, vendor_domestic = VENDORS[rnd.randrange(len(VENDORS))]
            bought = self.now.date() - timedelta(days=rnd.randrange(100, 2500))
            out.update(
                manufacturer=vendor,
                model=f"{vendor}-{rnd.randrange(1000, 9999)}",
                serial_number=f"SN{rnd.getrandbits(48):012X}",
                asset_tag=f"GZZW-{rnd.randrange(10**6):06d}",
                room_code=f"ROOM-{rnd.randrange(1, 9)}",
                rack_code=f"R{rnd.randrange(1, 400):03d}",
                u_position=rnd.randrange(1, 42),
                u_height=rnd.choice((1, 2, 4)),
                purchase_date=bought,
                warranty_end=bought + timedelta(days=1095),
                rated_power_w=float(rnd.choice((300, 550, 800, 1200))),
            )
            if kind not in COMPUTE:
                domestic = vendor_domestic
        if kind in STORAGE:
            capacity = float(rnd.choice((100, 500, 1024, 10240, 102400)))
            out.update(
                capacity_gib=capacity,
                used_gib=round(capacity * rnd.random(), 1),
                storage_protocol=rnd.choice(("iscsi", "nfs", "s3", "rbd")),
            )
            domestic = rnd.random() < 0.6
        if kind in SOFTWARE:
            product, vendor, version = PRODUCTS[rnd.randrange(len(PRODUCTS))]
            out.update(product=product, vendor=vendor, version=version)
            domestic = product in {"DM8", "KingbaseES", "TongWeb"}
        if rnd.random() < 0.05:
            domestic = None
        out["is_domestic_reported"] = None
        out["is_domestic"] = domestic
        out["domestic"] = orjson.dumps(
            {primary: {"value": domestic, "basis": {"source": "bench"}}, "primary": primary}
        ).decode()
        return out


def _words(text: str) -> list[str]:
    """Column lists written as one string (they are long)."""
    return text.split()


_OPTIONAL = _words(
    "manufacturer model serial_number asset_tag room_code rack_code u_position u_height "
    "purchase_date warranty_end rated_power_w cpu_arch cpu_vendor cpu_model cpu_cores vcpus "
    "memory_mib disk_gib os_name os_version virtualization host_asset_id capacity_gib used_gib "
    "storage_protocol product vendor version is_domestic_reported is_domestic domestic "
    "retired_by_snapshot"
)
ASSET_FIELDS = (
    _words(
        "platform_code asset_id asset_uid asset_type name status lifecycle network_zone using_unit "
        "using_unit_uscc business_system ip_addresses tags source_updated_at reporter revision "
        "last_batch_id created_at updated_at last_seen_at change_seq"
    )
    + _OPTIONAL
)


async def seed(conn: asyncpg.Connection, spec: SeedSpec, log: Any = print) -> SeedResult:
    """Fill an empty, migrated database; returns what the requests need and per-table timings."""
    rnd = random.Random(spec.seed)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    await conn.execute("SET synchronous_commit = off")
    await conn.execute("SET work_mem = '256MB'")
    await conn.execute("SET maintenance_work_mem = '512MB'")
    await conn.execute("SET TimeZone = 'UTC'")
    plats = platforms(now)
    result = SeedResult(now=now, platforms=plats)

    async def step(name: str, coro: Any) -> Any:
        started = time.perf_counter()
        value = await coro
        result.timings[name] = round(time.perf_counter() - started, 1)
        if isinstance(value, int):
            result.counts[name] = value
        shown = f"{value:,}" if isinstance(value, int) else ""
        log(f"  seeded {name:<14} {shown:>12} in {result.timings[name]:.1f} s")
        return value

    await step("platform", copy_rows(conn, "platform", list(plats[0]), plats, now))
    factory = AssetFactory(rnd, plats, spec.assets, now)
    await step("asset", copy_rows(conn, "asset", ASSET_FIELDS, factory.rows(), now))
    await step("asset_change", copy_rows(conn, "asset_change", CHANGE_FIELDS, changes(factory, rnd), now))
    counts = {p["platform_code"]: 0 for p in plats}
    for platform, _ in factory.ids:
        counts[platform] += 1
    result.big_platform = max(counts, key=lambda p: counts[p])
    sample_row = factory.ids[len(factory.ids) // 2]
    result.name_fragment = f"-{len(factory.ids) // 2:07d}"
    result.ip_fragment = "10.0.1."
    unit_row = await conn.fetchrow(
        "SELECT using_unit, business_system FROM asset WHERE platform_code = $1 AND asset_id = $2",
        *sample_row,
    )
    result.using_unit, result.business_system = unit_row["using_unit"], unit_row["business_system"]
    await step("alarm", copy_rows(conn, "alarm", ALARM_FIELDS, alarms(factory, rnd, spec.alarms), now))
    await step("log_record", copy_rows(conn, "log_record", LOG_FIELDS, logs(factory, rnd, spec.logs), now))
    await step("metrics", seed_metrics(conn, spec, factory, result, log))
    if spec.rollups:
        await step("rollups", seed_rollups(conn, spec, result))
    await step("counters", set_counters(conn, spec, result))
    await step("vacuum", vacuum(conn))
    return result


CHANGE_FIELDS = _words(
    "platform_code asset_id revision field old_value new_value changed_at batch_id reporter"
)


def changes(factory: AssetFactory, rnd: random.Random) -> Iterator[dict[str, Any]]:
    """A ``(created)`` revision per asset, and a status change for every third one."""
    now = factory.now
    for i, (platform, asset_id) in enumerate(factory.ids):
        created = now - timedelta(days=400) + timedelta(seconds=i % 86400)
        base = {"platform_code": platform, "asset_id": asset_id, "batch_id": f"seed-{i // 10_000}"}
        base["reporter"] = f"bench-{platform}"
        yield base | {
            "revision": 1,
            "field": "(created)",
            "old_value": "null",
            "new_value": "null",
            "changed_at": created,
        }
        if i % 3 == 0:
            yield base | {
                "revision": 2,
                "field": "status",
                "old_value": '"building"',
                "new_value": '"running"',
                "changed_at": created + timedelta(minutes=rnd.randrange(1, 600)),
            }


ALARM_FIELDS = _words(
    "platform_code alarm_id level status title message asset_id room_code first_at last_at "
    "cleared_at last_batch_id created_at updated_at change_seq"
)


def alarms(factory: AssetFactory, rnd: random.Random, total: int) -> Iterator[dict[str, Any]]:
    """Alarms over the last year, a fifth still active, most naming an asset that exists."""
    now, ids = factory.now, factory.ids
    order = list(range(1, total + 1))
    rnd.shuffle(order)
    for i in range(total):
        platform, asset_id = ids[rnd.randrange(len(ids))]
        if rnd.random() < 0.1:
            asset_id = f"gone-{i:07d}"
        first = now - timedelta(seconds=rnd.randrange(365 * 86400))
        active = rnd.random() < 0.2
        last = first + timedelta(minutes=rnd.randrange(0, 600))
        title = ALARM_TITLES[rnd.randrange(len(ALARM_TITLES))]
        seq = order[i]
        yield {
            "platform_code": platform,
            "alarm_id": f"alm-{i:08d}",
            "level": rnd.choice((1, 2, 2, 3, 3, 3, 4, 4)),
            "status": "active" if active else "cleared",
            "title": title,
            "message": f"{title}：{asset_id} 超过阈值",
            "asset_id": asset_id,
            "room_code": None,
            "first_at": first,
            "last_at": last,
            "cleared_at": None if active else last + timedelta(minutes=5),
            "last_batch_id": f"seed-alarm-{i // 10_000}",
            "created_at": first,
            "updated_at": now - timedelta(days=365) + timedelta(days=365) * seq / (total + 1),
            "change_seq": seq,
        }


LOG_FIELDS = _words(
    "platform_code seq log_key log_id category type event_time severity actor actor_type "
    "source_ip action object_type object_id outcome message asset_id raw origin_hash "
    "content_sha256 prev_hash hash batch_id received_at"
)


def logs(factory: AssetFactory, rnd: random.Random, total: int) -> Iterator[dict[str, Any]]:
    """Logs of the last 7 days in time order; each platform's ``seq`` follows it."""
    now, ids = factory.now, factory.ids
    seqs: dict[str, int] = {}
    span = 7 * 86400
    for i in range(total):
        platform, asset_id = ids[rnd.randrange(len(ids))]
        seq = seqs[platform] = seqs.get(platform, 0) + 1
        event = now - timedelta(seconds=span - span * i / total)
        category, kind = LOG_TYPES[rnd.randrange(len(LOG_TYPES))]
        actor = f"user{rnd.randrange(5000):04d}"
        yield {
            "platform_code": platform,
            "seq": seq,
            "log_key": f"log-{i:09d}",
            "log_id": f"log-{i:09d}",
            "category": category,
            "type": kind,
            "event_time": event,
            "severity": rnd.choice((3, 4, 5, 6, 6, 6, 7)),
            "actor": actor,
            "actor_type": "user",
            "source_ip": f"172.16.{rnd.randrange(256)}.{rnd.randrange(256)}",
            "action": kind,
            "object_type": "asset",
            "object_id": asset_id,
            "outcome": "success" if rnd.random() < 0.9 else "failure",
            "message": f"{actor} {kind} {asset_id} from console session {rnd.getrandbits(32):08x}",
            "asset_id": asset_id,
            "raw": None,
            "origin_hash": None,
            "content_sha256": f"{rnd.getrandbits(256):064x}",
            "prev_hash": f"{rnd.getrandbits(256):064x}",
            "hash": f"{rnd.getrandbits(256):064x}",
            "batch_id": f"seed-log-{i // 10_000}",
            "received_at": event + timedelta(seconds=3),
        }


async def seed_metrics(
    conn: asyncpg.Connection, spec: SeedSpec, factory: AssetFactory, result: SeedResult, log: Any = print
) -> int:
    """Series rows by COPY, samples generated by the server (``generate_series``) in time order.

    Dense series: ``cpu.util`` every 60 s over ``days`` days for a few compute assets of every
    platform. Wide series: the last ``wide_minutes`` of ``cpu.util`` for as many other compute
    assets as the remaining sample budget allows. Rows go in (ts, series) order, which keeps
    both the primary key and the change index appending at a few hot pages.
    """
    now, rnd = result.now, random.Random(spec.seed + 1)
    per_series = spec.days * 86400 // INTERVAL_S
    dense_budget = int(spec.samples * spec.dense_share)
    dense_count = max(1, dense_budget // per_series) if spec.samples else 0
    compute = {p: ids[:] for p, ids in factory.compute.items()}
    for ids in compute.values():
        rnd.shuffle(ids)
    platforms_with = sorted(compute, key=lambda p: -len(compute[p]))
    dense: list[tuple[str, str]] = []
    k = 0
    while len(dense) < dense_count and any(compute.values()):
        platform = platforms_with[k % len(platforms_with)]
        if compute[platform]:
            dense.append((platform, compute[platform].pop()))
        k += 1
    wide_budget = spec.samples - len(dense) * per_series
    wide_minutes = max(1, spec.wide_minutes)
    rest = [(p, a) for p in platforms_with for a in compute[p]]
    rnd.shuffle(rest)
    wide = rest[: max(0, wide_budget // wide_minutes)]
    if wide and len(wide) < len(rest) and wide_budget // len(wide) > wide_minutes:
        wide_minutes = wide_budget // len(wide)
    key = labels_key({})
    await conn.execute(
        "CREATE TEMP TABLE bench_series (platform_code text, series_id bigint, base float8, phase float8, "
        "dense bool)"
    )
    series_rows = []
    for layer, members in ((True, dense), (False, wide)):
        for platform, asset_id in members:
            sid = series_id(platform, METRIC, asset_id, key)
            series_rows.append((platform, sid, 20 + 50 * rnd.random(), 6.283 * rnd.random(), layer))
    await conn.copy_records_to_table("bench_series", records=series_rows)
    await copy_rows(
        conn,
        "metric_series",
        ["platform_code", "series_id", "metric", "asset_id", "labels", "labels_key", "created_at"],
        (
            {
                "platform_code": r[0],
                "series_id": r[1],
                "metric": METRIC,
                "asset_id": a,
                "labels": "{}",
                "labels_key": key,
                "created_at": now - timedelta(days=spec.days + 5),
            }
            for r, (_, a) in zip(series_rows, dense + wide, strict=True)
        ),
        now,
    )
    await conn.execute("CREATE INDEX ON bench_series (dense, platform_code, series_id)")
    await conn.execute("ANALYZE bench_series")
    result.dense_series, result.wide_series = len(dense), len(wide)
    if dense:
        result.dense_asset = next((d for d in dense if d[0] == result.big_platform), dense[0])
    start = now - timedelta(days=spec.days)
    result.sample_start = start
    created = await ensure_time_partitions(conn, "metric_sample", start, now)
    if created:
        result.notes.append(f"created {len(created)} partitions of metric_sample")
    insert = await _sample_insert(conn, spec)
    total = 0
    boundaries = [start]
    midnight = datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    while midnight < now:
        boundaries.append(midnight)
        midnight += timedelta(days=1)
    boundaries.append(now)
    if dense:
        for low, high in itertools.pairwise(boundaries):
            started = time.perf_counter()
            rows = int(await conn.fetchval(insert, low, high, True, start))
            total += rows
            rate = rows / (time.perf_counter() - started)
            log(f"    samples {low:%m-%d %H:%M} … {high:%m-%d %H:%M}: {rows:>10,} rows {rate:>10,.0f} rows/s")
    if wide:
        total += int(await conn.fetchval(insert, now - timedelta(minutes=wide_minutes), now, False, start))
    result.samples = total
    await keep_newest(conn, now - timedelta(minutes=wide_minutes), result)
    return total


async def keep_newest(conn: asyncpg.Connection, since: datetime, result: SeedResult) -> None:
    """Each series' newest sample on its row, where the schema keeps it (``last_ts`` / ``last_value``).

    Every seeded series has samples in the last minutes, so reading them (one or two partitions)
    is enough.
    """
    columns = {c.name for c in await table_columns(conn, "metric_series")}
    if not {"last_ts", "last_value"} <= columns:
        return
    status = await conn.execute(
        """
        UPDATE metric_series s SET last_ts = n.ts, last_value = n.value
        FROM (
            SELECT DISTINCT ON (platform_code, series_id) platform_code, series_id, ts, value
            FROM metric_sample WHERE ts >= $1 ORDER BY platform_code, series_id, ts DESC
        ) n
        WHERE s.platform_code = n.platform_code AND s.series_id = n.series_id
        """,
        since,
    )
    result.notes.append(f"metric_series.last_ts / last_value set on {status.split()[-1]} series")


async def _sample_insert(conn: asyncpg.Connection, spec: SeedSpec) -> str:
    """``INSERT … SELECT`` of one layer's samples in ``[$1, $2)``; $3 = dense layer, $4 = start.

    With rollup tables, the same statement also writes the samples' 5-minute buckets (a CTE over
    the inserted rows), so the rollups never need a scan of the sample table.
    """
    known = {
        "platform_code": "s.platform_code",
        "series_id": "s.series_id",
        "ts": "t.ts",
        # a daily wave per series plus noise, two decimals, clamped to [0, 100]
        "value": "round(greatest(0, least(100, s.base + 20 * sin(extract(epoch FROM t.ts) / 13751 "
        "+ s.phase) + 8 * random()))::numeric, 2)::float8",
        "received_at": "t.ts + interval '7 seconds'",
        # one batch per platform and minute: the platform's change sequence counts minutes
        "change_seq": "(extract(epoch FROM t.ts - $4::timestamptz) / 60)::bigint + 1",
    }
    columns = await table_columns(conn, "metric_sample")
    names, exprs = [], []
    for column in columns:
        if column.name in known:
            names.append(column.name)
            exprs.append(known[column.name])
        elif not column.nullable and not column.has_default:
            names.append(column.name)
            exprs.append(neutral_sql(column.udt))
    select = (
        f"SELECT {', '.join(exprs)} FROM generate_series($1::timestamptz, $2::timestamptz - interval "
        f"'{INTERVAL_S} seconds', interval '{INTERVAL_S} seconds') AS t(ts) "
        f"CROSS JOIN bench_series s WHERE s.dense = $3 ORDER BY t.ts, s.platform_code, s.series_id"
    )
    insert = f"INSERT INTO metric_sample ({', '.join(names)}) {select}"
    rollup = await table_columns(conn, "metric_rollup_5m")
    if not spec.rollups or not {c.name for c in rollup} >= set(ROLLUP_VALUES):
        return f"WITH ins AS ({insert} RETURNING 1) SELECT count(*) FROM ins"
    extra = [c for c in rollup if c.name not in ROLLUP_VALUES and not c.nullable and not c.has_default]
    return (
        f"WITH ins AS ({insert} RETURNING platform_code, series_id, ts, value), "
        f"r AS (INSERT INTO metric_rollup_5m ({', '.join([*ROLLUP_VALUES, *(c.name for c in extra)])}) "
        "SELECT platform_code, series_id, date_bin('5 minutes', ts, 'epoch'::timestamptz), count(*), "
        "sum(value), min(value), max(value), max(ts), (array_agg(value ORDER BY ts DESC))[1]"
        f"{''.join(', ' + neutral_sql(c.udt) for c in extra)} FROM ins GROUP BY 1, 2, 3 RETURNING 1) "
        "SELECT count(*) FROM ins"
    )


ROLLUP_VALUES: tuple[str, ...] = (
    "platform_code",
    "series_id",
    "bucket_start",
    "count",
    "total",
    "minimum",
    "maximum",
)
ROLLUP_VALUES += ("last_ts", "last")


async def seed_rollups(conn: asyncpg.Connection, spec: SeedSpec, result: SeedResult) -> int:
    """1h and 1d buckets from the 5m ones, and ``rollup_state`` saying they are built.

    Days are cut in the reporting time zone, as the application cuts them.
    """
    five = await table_columns(conn, "metric_rollup_5m")
    if not five or not await conn.fetchval("SELECT count(*) > 0 FROM metric_rollup_5m"):
        result.notes.append("no rollup tables (or rollups off): series read raw samples")
        return 0
    total = int(await conn.fetchval("SELECT count(*) FROM metric_rollup_5m"))
    tz = spec.reporting_tz.replace("'", "")
    for table, bucket in (
        ("metric_rollup_1h", "date_bin('1 hour', bucket_start, 'epoch'::timestamptz)"),
        ("metric_rollup_1d", f"date_trunc('day', bucket_start AT TIME ZONE '{tz}') AT TIME ZONE '{tz}'"),
    ):
        columns = await table_columns(conn, table)
        if not {c.name for c in columns} >= set(ROLLUP_VALUES):
            continue
        extra = [c for c in columns if c.name not in ROLLUP_VALUES and not c.nullable and not c.has_default]
        status = await conn.execute(
            f"INSERT INTO {table} ({', '.join([*ROLLUP_VALUES, *(c.name for c in extra)])}) "
            f"SELECT platform_code, series_id, {bucket}, sum(count), sum(total), min(minimum), max(maximum), "
            "max(last_ts), (array_agg(last ORDER BY last_ts DESC))[1]"
            f"{''.join(', ' + neutral_sql(c.udt) for c in extra)} FROM metric_rollup_5m GROUP BY 1, 2, 3"
        )
        total += int(status.split()[-1])
    state = await table_columns(conn, "rollup_state")
    if state:
        rows = await conn.fetch(
            "SELECT platform_code, max(change_seq) AS seq FROM metric_sample GROUP BY platform_code"
        )
        await copy_rows(
            conn,
            "rollup_state",
            ["kind", "platform_code", "built_seq", "day_tz", "updated_at"],
            (
                {
                    "kind": "metric_sample",
                    "platform_code": r["platform_code"],
                    "built_seq": r["seq"],
                    "day_tz": spec.reporting_tz,
                    "updated_at": result.now,
                }
                for r in rows
            ),
            result.now,
        )
    return total


async def set_counters(conn: asyncpg.Connection, spec: SeedSpec, result: SeedResult) -> int:
    """The change counters as a writer would have left them (sync tokens read them)."""
    if not await table_columns(conn, "change_counter"):
        return 0
    values = {"assets": spec.assets, "alarms": spec.alarms}
    if result.sample_start is not None:
        last = int((result.now - result.sample_start).total_seconds() // 60)
        values.update({f"metric_sample:{p['platform_code']}": last for p in result.platforms})
    await conn.executemany(
        "INSERT INTO change_counter (name, value) VALUES ($1, $2) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        list(values.items()),
    )
    return len(values)


async def vacuum(conn: asyncpg.Connection) -> int:
    """VACUUM ANALYZE: statistics for the planner, and a visibility map so index-only scans work."""
    await conn.execute("RESET maintenance_work_mem")
    await conn.execute("VACUUM (ANALYZE)")
    return 0
