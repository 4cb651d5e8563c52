"""§7 indicators on the reference dataset (issue 6), pushed through the API and computed by hand.

Two platforms of Guangdong (Guangzhou 440100, Shenzhen 440300) and one of Foshan (440600) that
never reports, over a closed four-hour window two days ago, queried with explicit ``from`` /
``to`` so neither *now* nor the freezing of closed months changes a figure. Every expected value
below is worked out in this file from the data pushed (docs/indicators.md is the contract):
nothing is read back from the hub to build an expectation.

Window ``[T0, T0 + 4 h)``, W = 14 400 s; ``at(k)`` is T0 + k minutes.

availability (time-weighted ``service.availability``; a sample stands until the next one, at most
2 × the usual interval; the newest one stands one interval, cut at the end of the period)
  GZ: one sample a minute, k = 0…99 and 110…239 (a 10-minute hole), 100 % except k = 30, 31, 32
      (0 %). Sample 99 stands min(660, 2 × 60) = 120 s, the other 229 stand 60 s:
      covered 13 860 s, available 13 860 − 180 = 13 680 s → 98.7013 %, coverage 0.9625;
      target 99.99 → fail.
  SZ: one sample every 5 minutes, k = 0, 5, …, 235, 100 % except the 11th (99 %):
      14 100 + 297 = 14 397 / 14 400 → 99.9792 %, target 99.5 → pass.
  44: (13 680 + 14 397) / (13 860 + 14 400) = 28 077 / 28 260 → 99.3524 %; target the highest
      of its platforms (99.99) → fail.

storage_bandwidth (latest ``tested`` before ``to``; caution when the period's observed peak
> 80 % of it)
  GZ: tested 12.0 (k=10), 11.0 (k=180), 5.0 after ``to`` → 11.0 / 10; observed 20.0 before
      ``from``, 6.0, 9.5, 4.0 inside → peak 9.5 > 8.8 → caution.
  SZ: tested 8.0 / 10 → fail (observed peak 3.0).
  44: the lowest platform, 8.0 → fail.

pue (meters: Σ increases, a decrease is a reset counted from zero; power: Σ kW × standing h)
  GZ-DC1 (room R1, meters every 30 min, k = 0, 30, …, 210):
      facility 10 000 + 160 i → 1 120 kWh; IT 1 000, 1 100, 1 200, 1 300, 100 (reset), 200,
      300, 400 → 700 kWh; PUE 1.6 → fail.
  GZ-DC2 (room R2): facility 5 000 + 120 i → 840; IT 3 000 + 100 i → 700; PUE 1.2 → pass.
  GZ: 1 960 / 1 400 = 1.4, status the worst data centre → fail.
  SZ-DC1 (room S1, power every 15 min, interval_s 900, 16 samples of 0.25 h each):
      facility 400 / 440 kW alternating → 1 680 kWh; IT 300 kW → 1 200 kWh; PUE 1.4 → caution.
  44: 3 640 / 2 600 = 1.4 → fail (worst of three).

env_compliance (covered time = union of the standing intervals of temperature / humidity points,
dew points derived included; excursion time = union of their excursions)
  GZ R1: T1 cold_aisle_temp every minute (interval_s 60) k = 0…239 at 22.0, except k = 60…99
      above 27 (28.0, peak 29.5 at k = 77: 40 min ≥ the 300 s dwell → excursion
      [at(60), at(100))), k = 150, 151 at 28.5 (a 2-minute spike: caution, no excursion) and
      k = 200…209 at 26.5 (caution band); H1 cold_aisle_rh every 5 minutes at 40 %; the derived
      dew point ``dp~H1`` (Magnus) stays inside 6.5…14 ℃; an informational hot-aisle point at 38 ℃.
      covered 14 400, compliant 12 000 → 83.333 %.
  GZ R2: T2 rack_inlet_temp every minute k = 0…119 at 23.0: covered 7 200, compliant 7 200.
  GZ: 19 200 / 21 600 → 88.889 %, coverage 21 600 / (2 × 14 400) = 0.75 → fail.
  SZ S1: cold_aisle_temp every minute at 24.0 → 14 400 / 14 400 = 100 % → pass; a water leak (1
      then 0) is an excursion of a point that is not a temperature / humidity point: not counted.
  44: 33 600 / 36 000 → 93.333 %, coverage 36 000 / (3 × 14 400) = 0.8333 → fail.

utilisation (Σ latest used / Σ latest total of hosts; 低效 VM = p95 (nearest rank, the ⌈0.95 n⌉-th
smallest) of its 5-minute cpu.util averages < 10 %)
  GZ: vCPU h1 80/96, h2 32/64 → 112 / 160 = 70 %; memory (131 072 + 98 304) /
      (262 144 + 131 072) = 229 376 / 393 216 → 58.333 %.
      48 buckets → the 46th smallest. vm-a 5 → low; vm-b 5 with 2 buckets at 50 → p95 5 → low;
      vm-c 5 with 3 buckets at 50 → p95 50; vm-d 30; vm-e (retired) and vm-f (no cpu.util) not
      counted → 2 / 4 = 50 %.
  SZ: vCPU 64 / 128, memory 50 000 / 100 000; sz-vm1 8 → low, sz-vm2 60 → 1 / 2.
  44: vCPU 176 / 288 → 61.111 %; memory 279 376 / 493 216; low VMs 3 / 6.

domestic_rate (non-retired assets; count ratios; cores weighted; coverage = judged / all)
  GZ server_cpu: srv-1 Hygon, h1 Kunpeng, bm-1 Phytium domestic; srv-2, h2 Intel; srv-3 without
      CPU data not judged; srv-old retired → 3 / 5 = 60 %, coverage 5 / 6;
      cores (32 + 64 + 64) / (32 + 40 + 64 + 48 + 64) = 160 / 248;
      os: Kylin ×2 (srv-1, vm-a), openEuler, UOS, 银河麒麟 domestic; CentOS ×2, Windows → 5 / 8;
      database: DM8, KingbaseES vs Oracle, MySQL → 2 / 4; middleware TongWeb vs WebLogic, Tomcat →
      1 / 3; security Sangfor vs Fortinet → 1 / 2; storage Huawei vs NetApp, Dell EMC → 1 / 3;
      network Huawei, H3C vs Cisco, one device without any vendor → 2 / 3, coverage 3 / 4.
  SZ: server_cpu Kunpeng, Hygon vs Intel → 2 / 3, cores 80 / 136; os openEuler, Kylin vs CentOS ×2
      → 2 / 4; database Oracle → 0 / 1; network Ruijie vs Cisco → 1 / 2; middleware, security,
      storage: nothing to judge → no_data.
  44: server_cpu 5 / 8, cores 240 / 384, os 7 / 12, database 2 / 5, middleware 1 / 3,
      security 1 / 2, storage 1 / 3, network 3 / 5.

freshness (kinds that ever reported; stale after 2 expected intervals)
  GZ: logs (expected every 1 s, last pushed ≥ 3 s before the query: stale), assets, metrics,
      environment fresh → 3 / 4 = 75 % → fail.  SZ: 3 / 3 → pass.  44: 6 / 7 → fail.

FS (440600): nothing pushed → every indicator ``no_data``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.api.test_query_lists import assert_error, data_of, log, room, sample
from tests.api.test_query_metrics import ENV_LATEST, ENV_SERIES, hour_floor, metric, pushed
from tests.helpers import Hub, now_utc, rfc3339, vm

GZ, SZ, FS = "GD-GZ-REF", "GD-SZ-REF", "GD-FS-REF"
INDICATORS = "/api/v1/indicators"
CODES = (
    "availability",
    "domestic_rate",
    "storage_bandwidth",
    "pue",
    "env_compliance",
    "utilisation",
    "freshness",
)
W = 14_400.0  # the window, seconds
MAGNUS_B, MAGNUS_C = 17.62, 243.12


def approx(value: float) -> Any:
    return pytest.approx(value, rel=1e-6, abs=1e-9)


def magnus(temp: float, rh: float) -> float:
    """Dew point (℃) by the Magnus formula with b = 17.62, c = 243.12 ℃."""
    gamma = math.log(rh / 100.0) + MAGNUS_B * temp / (MAGNUS_C + temp)
    return MAGNUS_C * gamma / (MAGNUS_B - gamma)


def nearest_rank_p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


# --- the dataset ---------------------------------------------------------------------------------


def t1_value(k: int) -> float:
    """GZ R1 cold-aisle temperature at minute k."""
    if k == 77:
        return 29.5
    if 60 <= k <= 99:
        return 28.0
    if k in (150, 151):
        return 28.5
    if 200 <= k <= 209:
        return 26.5
    return 22.0


RH = 40.0
#: cpu.util per VM: (base, 5-minute buckets at 50 %) — p95 over 48 buckets is the 46th smallest
VM_CPU = {"vm-a": (5.0, 0), "vm-b": (5.0, 2), "vm-c": (5.0, 3), "vm-d": (30.0, 0), "vm-e": (2.0, 0)}
SZ_VM_CPU = {"sz-vm1": 8.0, "sz-vm2": 60.0}


def server(asset_id: str, asset_type: str = "server", **fields: Any) -> dict[str, Any]:
    return {"asset_id": asset_id, "asset_type": asset_type, "name": asset_id, "status": "running", **fields}


def device(asset_id: str, asset_type: str, **fields: Any) -> dict[str, Any]:
    return {"asset_id": asset_id, "asset_type": asset_type, "name": asset_id, "status": "running", **fields}


GZ_ASSETS = [
    server(
        "srv-1",
        cpu_vendor="Hygon",
        cpu_model="Hygon C86 7285",
        cpu_cores=32,
        os_name="Kylin Linux Advanced Server V10",
    ),
    server("srv-2", cpu_vendor="Intel", cpu_model="Intel Xeon Gold 6248", cpu_cores=40, os_name="CentOS 7.9"),
    server("srv-3", cpu_cores=16),  # no CPU data: not judged
    server("srv-old", cpu_vendor="Hygon", cpu_cores=64, os_name="Kylin V10", lifecycle="retired"),
    server(
        "h1",
        "hypervisor_host",
        cpu_vendor="HiSilicon",
        cpu_model="Kunpeng 920",
        cpu_cores=64,
        os_name="openEuler 22.03",
    ),
    server("h2", "hypervisor_host", cpu_vendor="Intel", cpu_model="Xeon E5-2680", cpu_cores=48),
    server(
        "bm-1", "bare_metal", cpu_vendor="Phytium", cpu_model="FT-2000+/64", cpu_cores=64, os_name="UOS 20"
    ),
    vm("vm-a", os_name="Kylin V10 SP2"),
    vm("vm-b", os_name="CentOS 7"),
    vm("vm-c", os_name="Windows Server 2019"),
    vm("vm-d", os_name="银河麒麟 V10"),
    vm("vm-e", os_name="CentOS 8", lifecycle="retired"),
    vm("vm-f"),
    device("db-1", "database_instance", product="DM8", vendor="达梦"),
    device("db-2", "database_instance", product="Oracle Database 19c", vendor="Oracle"),
    device("db-3", "database_instance", product="KingbaseES V8"),
    device("db-4", "database_instance", product="MySQL", vendor="Oracle"),
    device("mw-1", "middleware_instance", product="TongWeb 7"),
    device("mw-2", "middleware_instance", product="WebLogic", vendor="Oracle"),
    device("mw-3", "middleware_instance", product="Tomcat", vendor="Apache"),
    device("sec-1", "security_device", product="AF", vendor="Sangfor"),
    device("sec-2", "security_device", product="FortiGate", vendor="Fortinet"),
    device("sto-1", "storage_device", manufacturer="Huawei", product="OceanStor 5310"),
    device("sto-2", "storage_device", manufacturer="NetApp", product="FAS8300"),
    device("sto-3", "storage_device", manufacturer="Dell EMC", product="Unity"),
    device("net-1", "network_device", manufacturer="Huawei", product="CE6881"),
    device("net-2", "network_device", manufacturer="H3C", product="S6850"),
    device("net-3", "network_device", manufacturer="Cisco", product="Nexus 9300"),
    device("net-4", "network_device"),  # nothing to judge by
]
SZ_ASSETS = [
    server("sz-srv-1", cpu_model="Kunpeng 920", cpu_cores=48, os_name="openEuler 22.03"),
    server(
        "sz-srv-2", cpu_vendor="Intel", cpu_model="Xeon Platinum 8358", cpu_cores=56, os_name="CentOS 7.6"
    ),
    server("s-h1", "hypervisor_host", cpu_vendor="Hygon", cpu_cores=32),
    vm("sz-vm1", os_name="Kylin V10"),
    vm("sz-vm2", os_name="CentOS 7"),
    device("sz-db-1", "database_instance", product="Oracle Database 12c", vendor="Oracle"),
    device("sz-net-1", "network_device", manufacturer="Cisco", product="Catalyst 9300"),
    device("sz-net-2", "network_device", manufacturer="Ruijie", product="RG-S6220"),
]


class Reference:
    """The pushed dataset's window and the times the checks need."""

    def __init__(self, t0: datetime) -> None:
        self.t0 = t0
        self.end = t0 + timedelta(hours=4)
        self.logs_pushed_at = 0.0

    def at(self, minutes: float) -> datetime:
        return self.t0 + timedelta(minutes=minutes)

    @property
    def window(self) -> dict[str, str]:
        return {"from": rfc3339(self.t0), "to": rfc3339(self.end)}


def chunks(records: list[dict[str, Any]], size: int = 2000) -> Iterable[tuple[int, list[dict[str, Any]]]]:
    for n in range(0, len(records), size):
        yield n, records[n : n + size]


async def push_all(hub: Hub, kind: str, platform: str, prefix: str, records: list[dict[str, Any]]) -> None:
    for n, part in chunks(records):
        await pushed(hub, kind, platform, f"{prefix}-{n}", part)


def gz_environment(ref: Reference) -> list[dict[str, Any]]:
    at = ref.at
    records = [
        sample(
            "R1",
            "T1",
            "cold_aisle_temp",
            at(k),
            t1_value(k),
            rack_code="A01",
            position="cold_aisle",
            interval_s=60,
        )
        for k in range(240)
    ]
    records += [
        sample("R1", "H1", "cold_aisle_rh", at(k), RH, rack_code="A01", position="cold_aisle", interval_s=300)
        for k in range(0, 240, 5)
    ]
    records += [
        sample(
            "R1", "HA1", "hot_aisle_temp", at(k), 38.0, rack_code="A01", position="hot_aisle", interval_s=300
        )
        for k in range(0, 240, 5)
    ]
    records += [
        sample(
            "R2", "T2", "rack_inlet_temp", at(k), 23.0, rack_code="B01", position="rack_inlet", interval_s=60
        )
        for k in range(120)
    ]
    it_dc1 = [1000.0, 1100.0, 1200.0, 1300.0, 100.0, 200.0, 300.0, 400.0]  # a reset after the 4th
    for i in range(8):
        t = at(30 * i)
        records += [
            sample("R1", "FM1", "facility_energy_kwh", t, 10_000.0 + 160 * i, interval_s=1800),
            sample("R1", "IM1", "it_energy_kwh", t, it_dc1[i], interval_s=1800),
            sample("R2", "FM2", "facility_energy_kwh", t, 5000.0 + 120 * i, interval_s=1800),
            sample("R2", "IM2", "it_energy_kwh", t, 3000.0 + 100 * i, interval_s=1800),
        ]
    return records


def sz_environment(ref: Reference) -> list[dict[str, Any]]:
    at = ref.at
    records = [
        sample(
            "S1", "TS1", "cold_aisle_temp", at(k), 24.0, rack_code="C01", position="cold_aisle", interval_s=60
        )
        for k in range(240)
    ]
    for i in range(16):
        records += [
            sample(
                "S1", "FP", "facility_power_kw", at(15 * i), 400.0 if i % 2 == 0 else 440.0, interval_s=900
            ),
            sample("S1", "IP", "it_power_kw", at(15 * i), 300.0, interval_s=900),
        ]
    records += [
        sample("S1", "WL1", "water_leak", at(100), 1.0, interval_s=60),
        sample("S1", "WL1", "water_leak", at(101), 0.0, interval_s=60),
    ]
    return records


def gz_metrics(ref: Reference) -> list[dict[str, Any]]:
    at = ref.at
    records = [
        metric("service.availability", at(k), 0.0 if k in (30, 31, 32) else 100.0, asset_id=None)
        for k in [*range(100), *range(110, 240)]
    ]
    records += [
        metric("storage.bw.tested_gbps", at(10), 12.0, asset_id=None),
        metric("storage.bw.tested_gbps", at(180), 11.0, asset_id=None),
        metric("storage.bw.tested_gbps", at(300), 5.0, asset_id=None),  # after `to`
        metric("storage.bw.observed_gbps", at(-30), 20.0, asset_id=None),  # before `from`
        metric("storage.bw.observed_gbps", at(60), 6.0, asset_id=None),
        metric("storage.bw.observed_gbps", at(120), 9.5, asset_id=None),
        metric("storage.bw.observed_gbps", at(210), 4.0, asset_id=None),
        metric("host.vcpu.total", at(10), 64.0, asset_id="h1"),
        metric("host.vcpu.total", at(120), 96.0, asset_id="h1"),
        metric("host.vcpu.used", at(10), 40.0, asset_id="h1"),
        metric("host.vcpu.used", at(120), 80.0, asset_id="h1"),
        metric("host.vcpu.total", at(10), 64.0, asset_id="h2"),
        metric("host.vcpu.used", at(5), 60.0, asset_id="h2"),
        metric("host.vcpu.used", at(10), 32.0, asset_id="h2"),
        metric("host.mem.total_mib", at(10), 262_144.0, asset_id="h1"),
        metric("host.mem.used_mib", at(10), 131_072.0, asset_id="h1"),
        metric("host.mem.total_mib", at(10), 131_072.0, asset_id="h2"),
        metric("host.mem.used_mib", at(10), 98_304.0, asset_id="h2"),
    ]
    for asset_id, (base, high_buckets) in VM_CPU.items():
        records += [
            metric("cpu.util", at(k), 50.0 if 10 <= k // 5 < 10 + high_buckets else base, asset_id=asset_id)
            for k in range(240)
        ]
    return records


def sz_metrics(ref: Reference) -> list[dict[str, Any]]:
    at = ref.at
    records = [
        metric("service.availability", at(k), 99.0 if k == 50 else 100.0, asset_id=None)
        for k in range(0, 240, 5)
    ]
    records += [
        metric("storage.bw.tested_gbps", at(20), 8.0, asset_id=None),
        metric("storage.bw.observed_gbps", at(60), 3.0, asset_id=None),
        metric("host.vcpu.total", at(10), 128.0, asset_id="s-h1"),
        metric("host.vcpu.used", at(10), 64.0, asset_id="s-h1"),
        metric("host.mem.total_mib", at(10), 100_000.0, asset_id="s-h1"),
        metric("host.mem.used_mib", at(10), 50_000.0, asset_id="s-h1"),
    ]
    for asset_id, value in SZ_VM_CPU.items():
        records += [metric("cpu.util", at(k), value, asset_id=asset_id) for k in range(240)]
    return records


async def build_reference(hub: Hub) -> Reference:
    """Pushes the whole dataset through ``/api/v1/reports/*``."""
    ref = Reference(hour_floor(now_utc() - timedelta(days=2)))
    await hub.create_platform(GZ, "440100", expected_intervals={"logs": 1})
    await hub.create_platform(SZ, "440300", availability_target=99.5)
    await hub.create_platform(FS, "440600")
    await pushed(hub, "logs", GZ, "l-1", [log("l-1", now_utc())])
    ref.logs_pushed_at = time.monotonic()
    await pushed(
        hub,
        "rooms",
        GZ,
        "r-1",
        [
            room("R1", datacenter_code="GZ-DC1", datacenter_name="广州一号数据中心", region_code="440115"),
            room("R2", datacenter_code="GZ-DC2", datacenter_name="广州二号数据中心", region_code="440106"),
        ],
    )
    await pushed(
        hub,
        "rooms",
        SZ,
        "r-1",
        [room("S1", datacenter_code="SZ-DC1", datacenter_name="深圳数据中心", region_code="440305")],
    )
    await pushed(hub, "assets", GZ, "a-1", GZ_ASSETS)
    await pushed(hub, "assets", SZ, "a-1", SZ_ASSETS)
    await push_all(hub, "environment", GZ, "e", gz_environment(ref))
    await push_all(hub, "environment", SZ, "e", sz_environment(ref))
    await push_all(hub, "metrics", GZ, "m", gz_metrics(ref))
    await push_all(hub, "metrics", SZ, "m", sz_metrics(ref))
    return ref


async def indicators(hub: Hub, ref: Reference, key: str | None = None, **params: str) -> dict[str, Any]:
    # the GZ logs feed is expected every second: it is stale (> 2 s old) by the time we ask
    wait = 3.0 - (time.monotonic() - ref.logs_pushed_at)
    if wait > 0:
        await asyncio.sleep(wait)
    return data_of(await hub.get(INDICATORS, key, **params, **ref.window))


# --- checking, every mismatch reported at once ---------------------------------------------------


class Checks:
    """Collects mismatches so one run names every figure that differs, not only the first."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.errors: list[str] = []

    def eq(self, what: str, got: Any, want: Any) -> None:
        ok = got == approx(want) if isinstance(want, float) else got == want
        if not ok:
            self.errors.append(f"[{self.scope}] {what}: expected {want!r}, got {got!r}")

    def true(self, what: str, condition: bool, detail: Any = None) -> None:
        if not condition:
            self.errors.append(f"[{self.scope}] {what}" + (f" ({detail!r})" if detail is not None else ""))

    def figure(
        self,
        what: str,
        item: dict[str, Any] | None,
        *,
        value: float | None = None,
        numerator: float | None = None,
        denominator: float | None = None,
        status: str | None = None,
        coverage: float | None = None,
        target: float | None = None,
    ) -> None:
        if item is None:
            self.errors.append(f"[{self.scope}] {what}: missing")
            return
        for name, want in (
            ("value", value),
            ("numerator", numerator),
            ("denominator", denominator),
            ("coverage", coverage),
            ("target", target),
        ):
            if want is not None:
                got = item.get(name)
                if not isinstance(got, int | float) or got != approx(want):
                    self.errors.append(f"[{self.scope}] {what}.{name}: expected {want!r}, got {got!r}")
        if status is not None:
            self.eq(f"{what}.status", item.get("status"), status)

    def done(self) -> None:
        assert not self.errors, "\n".join(self.errors)


def by_code(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["code"]: item for item in data["items"]}


def component(item: dict[str, Any], code: str, **match: Any) -> dict[str, Any] | None:
    found = [
        c
        for c in item.get("components") or []
        if c.get("code") == code and all(c.get(k) == v for k, v in match.items())
    ]
    return found[0] if len(found) == 1 else None


def components(item: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [c for c in item.get("components") or [] if c.get("code") == code]


def datacenter(item: dict[str, Any], code: str) -> dict[str, Any] | None:
    """The per-data-centre component of ``pue`` (named by ``datacenter_code`` or by ``code``)."""
    found = [
        c
        for c in item.get("components") or []
        if c.get("datacenter_code") == code or (c.get("code") == code and c.get("code") != "platform")
    ]
    return found[0] if len(found) == 1 else None


def method(component_item: dict[str, Any] | None) -> Any:
    basis = (component_item or {}).get("basis") or {}
    return basis.get("method") if isinstance(basis, dict) else None


def same_time(a: Any, b: datetime) -> bool:
    return isinstance(a, str) and datetime.fromisoformat(a) == b


# --- expected figures, by hand (see the module docstring) ----------------------------------------

AVAIL = {GZ: (13_680.0, 13_860.0), SZ: (14_397.0, 14_400.0)}
STORAGE = {GZ: 11.0, SZ: 8.0}
PUE_DC = {
    "GZ-DC1": (1_120.0, 700.0, "fail", "meters"),
    "GZ-DC2": (840.0, 700.0, "pass", "meters"),
    "SZ-DC1": (1_680.0, 1_200.0, "caution", "power"),
}
PUE_PLATFORM = {GZ: ("GZ-DC1", "GZ-DC2"), SZ: ("SZ-DC1",)}
#: per room: (compliant s, covered s)
ENV_ROOMS = {GZ: {"R1": (12_000.0, W), "R2": (7_200.0, 7_200.0)}, SZ: {"S1": (W, W)}}
VCPU = {GZ: (112.0, 160.0), SZ: (64.0, 128.0)}
MEM = {GZ: (229_376.0, 393_216.0), SZ: (50_000.0, 100_000.0)}
LOW_VMS = {GZ: ({"vm-a", "vm-b"}, 4), SZ: ({"sz-vm1"}, 2)}
#: category: (domestic, judged, all non-retired in the category) — None: nothing to judge
DOMESTIC: dict[str, dict[str, tuple[float, float, float] | None]] = {
    GZ: {
        "server_cpu": (3, 5, 6),
        "server_cpu_cores": (160, 248, 0),
        "os": (5, 8, 8),
        "database": (2, 4, 4),
        "middleware": (1, 3, 3),
        "security": (1, 2, 2),
        "storage": (1, 3, 3),
        "network": (2, 3, 4),
    },
    SZ: {
        "server_cpu": (2, 3, 3),
        "server_cpu_cores": (80, 136, 0),
        "os": (2, 4, 4),
        "database": (0, 1, 1),
        "middleware": None,
        "security": None,
        "storage": None,
        "network": (1, 2, 2),
    },
}
FRESH = {GZ: (3, 4), SZ: (3, 3)}


def test_the_hand_computed_figures_hold_together() -> None:
    """The expectations above re-derived from the generators, so a typo in a table cannot hide."""
    minutes = [*range(100), *range(110, 240)]
    standing = [min(b - a, 2) * 60 for a, b in itertools.pairwise(minutes)] + [60]
    available = sum(s for k, s in zip(minutes, standing, strict=True) if k not in (30, 31, 32))
    assert (available, sum(standing)) == AVAIL[GZ]
    assert sum((99.0 if k == 50 else 100.0) / 100 * 300 for k in range(0, 240, 5)) == approx(AVAIL[SZ][0])
    it_dc1 = [1000.0, 1100.0, 1200.0, 1300.0, 100.0, 200.0, 300.0, 400.0]
    assert sum(b - a if b >= a else b for a, b in itertools.pairwise(it_dc1)) == 700.0
    assert sum((400.0 if i % 2 == 0 else 440.0) * 0.25 for i in range(16)) == 1680.0
    # T1's excursion: the run k = 60…99 stands 40 × 60 s; the spike 2 × 60 s < 300 s
    assert [k for k in range(240) if t1_value(k) > 27] == [*range(60, 100), 150, 151]
    for name, (base, high) in VM_CPU.items():
        buckets = [50.0 if 10 <= j < 10 + high else base for j in range(48)]
        assert (nearest_rank_p95(buckets) < 10) == (name in {"vm-a", "vm-b", "vm-e"})
    # the derived dew point stays normal (6.5 … 14 ℃) at every humidity sample
    assert all(6.5 < magnus(t1_value(k), RH) < 14 for k in range(0, 240, 5))


def pooled(table: dict[str, tuple[float, float]]) -> tuple[float, float]:
    return sum(v[0] for v in table.values()), sum(v[1] for v in table.values())


def check_availability(c: Checks, item: dict[str, Any], nums: tuple[float, float], target: float) -> None:
    num, den = nums
    value = 100 * num / den
    c.figure(
        "availability",
        item,
        value=value,
        numerator=num,
        denominator=den,
        target=target,
        status="fail" if value < target else "pass",
    )


def check_pue(c: Checks, item: dict[str, Any], dcs: Iterable[str]) -> None:
    dcs = list(dcs)
    facility = sum(PUE_DC[d][0] for d in dcs)
    it = sum(PUE_DC[d][1] for d in dcs)
    order = ["pass", "caution", "fail"]
    worst = max((PUE_DC[d][2] for d in dcs), key=order.index)
    c.figure("pue", item, value=facility / it, numerator=facility, denominator=it, status=worst)
    for d in dcs:
        f, i, status, how = PUE_DC[d]
        found = datacenter(item, d)
        c.figure(f"pue[{d}]", found, value=f / i, numerator=f, denominator=i, status=status)
        c.eq(f"pue[{d}].basis.method", method(found), how)


def check_env(c: Checks, item: dict[str, Any], rooms: dict[str, tuple[float, float]], n_rooms: int) -> None:
    compliant = sum(v[0] for v in rooms.values())
    covered = sum(v[1] for v in rooms.values())
    value = 100 * compliant / covered
    status = "fail" if value < 99 else "caution" if value < 99.9 else "pass"
    c.figure(
        "env_compliance",
        item,
        value=value,
        numerator=compliant,
        denominator=covered,
        coverage=covered / (n_rooms * W),
        status=status,
    )


def check_room_components(c: Checks, item: dict[str, Any], platform: str) -> None:
    for room_code, (compliant, covered) in ENV_ROOMS[platform].items():
        value = 100 * compliant / covered
        c.figure(
            f"env_compliance.room[{room_code}]",
            component(item, "room", room_code=room_code),
            value=value,
            numerator=compliant,
            denominator=covered,
            coverage=covered / W,
            status="fail" if value < 99 else "caution" if value < 99.9 else "pass",
        )


def check_excursions(c: Checks, item: dict[str, Any], ref: Reference, platform: str) -> None:
    found = components(item, "excursion")
    if platform == SZ:
        c.eq("env_compliance excursions (a water leak is not a temperature / humidity point)", found, [])
        return
    c.eq("env_compliance excursion count", len(found), 1)
    if len(found) == 1:
        exc = found[0]
        c.eq("excursion.room_code", exc.get("room_code"), "R1")
        c.eq("excursion.point_code", exc.get("point_code"), "T1")
        c.true("excursion.start = at(60)", same_time(exc.get("start"), ref.at(60)), exc.get("start"))
        c.true("excursion.end = at(100)", same_time(exc.get("end"), ref.at(100)), exc.get("end"))
        c.eq("excursion.peak_value", exc.get("peak_value"), 29.5)


def check_utilisation(c: Checks, item: dict[str, Any], platforms: Iterable[str]) -> None:
    platforms = list(platforms)
    vcpu = pooled({p: VCPU[p] for p in platforms})
    mem = pooled({p: MEM[p] for p in platforms})
    low = sum(len(LOW_VMS[p][0]) for p in platforms)
    counted = sum(LOW_VMS[p][1] for p in platforms)
    c.figure(
        "utilisation",
        item,
        value=100 * vcpu[0] / vcpu[1],
        numerator=vcpu[0],
        denominator=vcpu[1],
        status="pass",
    )
    c.figure(
        "utilisation.vcpu_allocation",
        component(item, "vcpu_allocation"),
        value=100 * vcpu[0] / vcpu[1],
        numerator=vcpu[0],
        denominator=vcpu[1],
    )
    c.figure(
        "utilisation.memory_allocation",
        component(item, "memory_allocation"),
        value=100 * mem[0] / mem[1],
        numerator=mem[0],
        denominator=mem[1],
    )
    low_item = component(item, "low_utilisation_vms")
    c.figure(
        "utilisation.low_utilisation_vms",
        low_item,
        value=100 * low / counted,
        numerator=low,
        denominator=counted,
    )
    if low_item is not None and len(platforms) == 1:
        named = set(_asset_ids(low_item))
        c.true(
            "utilisation.low_utilisation_vms names exactly the low VMs",
            named == LOW_VMS[platforms[0]][0],
            sorted(named),
        )


def _asset_ids(node: Any) -> Iterable[str]:
    """Every VM ``asset_id`` named anywhere inside a component (its basis or sub-components)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "asset_id" and isinstance(value, str):
                yield value
            else:
                yield from _asset_ids(value)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, str) and value.startswith(("vm-", "sz-vm")):
                yield value
            else:
                yield from _asset_ids(value)


def check_domestic(c: Checks, item: dict[str, Any], platforms: Iterable[str]) -> None:
    platforms = list(platforms)
    for category in DOMESTIC[GZ]:
        rows = [DOMESTIC[p][category] for p in platforms]
        present = [r for r in rows if r is not None]
        found = component(item, category)
        if not present or sum(r[1] for r in present) == 0:
            c.eq(f"domestic_rate.{category}.status", (found or {}).get("status"), "no_data")
            continue
        dom = sum(r[0] for r in present)
        judged = sum(r[1] for r in present)
        total = sum(r[2] for r in present)
        coverage = judged / total if category != "server_cpu_cores" else None
        c.figure(
            f"domestic_rate.{category}",
            found,
            value=100 * dom / judged,
            numerator=dom,
            denominator=judged,
            coverage=coverage,
            status="pass",
        )
        if category == "server_cpu":
            c.figure(
                "domestic_rate",
                item,
                value=100 * dom / judged,
                numerator=dom,
                denominator=judged,
                coverage=coverage,
                status="pass",
            )


def check_storage(c: Checks, item: dict[str, Any], platform: str) -> None:
    tested = STORAGE[platform]
    status = "fail" if tested < 10 else "caution" if platform == GZ else "pass"
    c.figure(
        "storage_bandwidth",
        item,
        value=tested,
        numerator=tested,
        denominator=10.0,
        target=10.0,
        status=status,
    )


def check_freshness(c: Checks, item: dict[str, Any], platforms: Iterable[str]) -> None:
    fresh = sum(FRESH[p][0] for p in platforms)
    judged = sum(FRESH[p][1] for p in platforms)
    c.figure(
        "freshness",
        item,
        value=100 * fresh / judged,
        numerator=fresh,
        denominator=judged,
        status="pass" if fresh == judged else "fail",
    )


def check_platform(c: Checks, data: dict[str, Any], ref: Reference, platform: str) -> None:
    items = by_code(data)
    c.eq("item codes", sorted(items), sorted(CODES))
    c.eq("platform_code", data.get("platform_code"), platform)
    c.eq("platforms", data.get("platforms"), [platform])
    c.eq("closed", data.get("closed"), False)
    c.true("from echoed", same_time(data.get("from"), ref.t0), data.get("from"))
    c.true("to echoed", same_time(data.get("to"), ref.end), data.get("to"))
    if set(items) != set(CODES):
        return
    check_availability(c, items["availability"], AVAIL[platform], 99.99 if platform == GZ else 99.5)
    c.figure(
        "availability.coverage",
        items["availability"],
        coverage=AVAIL[platform][1] / W,
    )
    check_domestic(c, items["domestic_rate"], [platform])
    check_storage(c, items["storage_bandwidth"], platform)
    check_pue(c, items["pue"], PUE_PLATFORM[platform])
    check_env(c, items["env_compliance"], ENV_ROOMS[platform], len(ENV_ROOMS[platform]))
    check_room_components(c, items["env_compliance"], platform)
    check_excursions(c, items["env_compliance"], ref, platform)
    check_utilisation(c, items["utilisation"], [platform])
    check_freshness(c, items["freshness"], [platform])
    if platform == GZ:
        logs = component(items["freshness"], "logs")
        c.true("freshness.logs is stale", logs is not None and logs.get("status") == "fail", logs)
        if logs is not None:
            c.eq("freshness.logs.target (2 × 1 s)", logs.get("target"), 2.0)
            c.true(
                "freshness.logs.value is the age (≥ 3 s)", (logs.get("value") or 0) >= 3, logs.get("value")
            )
        c.eq(
            "availability components",
            [x.get("value") == approx(100 * 13_680 / 13_860) for x in items["availability"]["components"]],
            [True],
        )


# --- tests ---------------------------------------------------------------------------------------


async def test_each_platform_answers_the_figures_computed_by_hand(hub: Hub) -> None:
    ref = await build_reference(hub)
    c = Checks("GZ")
    check_platform(c, await indicators(hub, ref, platform_code=GZ), ref, GZ)
    sz = Checks("SZ")
    check_platform(sz, await indicators(hub, ref, platform_code=SZ), ref, SZ)
    c.errors += sz.errors
    c.done()


def per_platform(platform: str) -> dict[str, tuple[float, float, float, str]]:
    """Each indicator of one platform: (value, numerator, denominator, status), from the tables."""
    avail = AVAIL[platform]
    target = 99.99 if platform == GZ else 99.5
    dom, judged, _ = DOMESTIC[platform]["server_cpu"] or (0, 0, 0)
    dcs = PUE_PLATFORM[platform]
    facility, it = sum(PUE_DC[d][0] for d in dcs), sum(PUE_DC[d][1] for d in dcs)
    compliant = sum(v[0] for v in ENV_ROOMS[platform].values())
    covered = sum(v[1] for v in ENV_ROOMS[platform].values())
    vcpu = VCPU[platform]
    fresh, feeds = FRESH[platform]
    tested = STORAGE[platform]
    return {
        "availability": (
            100 * avail[0] / avail[1],
            *avail,
            "fail" if 100 * avail[0] / avail[1] < target else "pass",
        ),
        "domestic_rate": (100 * dom / judged, dom, judged, "pass"),
        "storage_bandwidth": (tested, tested, 10.0, "fail" if tested < 10 else "caution"),
        "pue": (facility / it, facility, it, "fail" if platform == GZ else "caution"),
        "env_compliance": (
            100 * compliant / covered,
            compliant,
            covered,
            "fail" if platform == GZ else "pass",
        ),
        "utilisation": (100 * vcpu[0] / vcpu[1], *vcpu, "pass"),
        "freshness": (100 * fresh / feeds, fresh, feeds, "pass" if fresh == feeds else "fail"),
    }


async def test_the_province_pools_numerators_and_denominators(hub: Hub) -> None:
    ref = await build_reference(hub)
    data = await indicators(hub, ref, region_code="44")
    c = Checks("44")
    c.eq("platforms", data.get("platforms"), sorted([GZ, SZ, FS]))
    c.eq("region_code", data.get("region_code"), "44")
    c.eq("platform_code", data.get("platform_code"), None)
    items = by_code(data)
    c.eq("item codes", sorted(items), sorted(CODES))
    if set(items) != set(CODES):
        c.done()
    both = [GZ, SZ]

    # pooled: 28 077 / 28 260 = 99.3524 %, where the mean of the two percentages is 99.3402 %
    check_availability(c, items["availability"], pooled(AVAIL), 99.99)  # the highest target
    check_domestic(c, items["domestic_rate"], both)  # 5 / 8, where the mean would be 63.33 %
    c.figure("storage_bandwidth", items["storage_bandwidth"], value=8.0, status="fail")  # the lowest
    check_pue(c, items["pue"], PUE_DC)  # 3 640 / 2 600 = 1.4, the worst data centre fails
    check_env(c, items["env_compliance"], {**ENV_ROOMS[GZ], **ENV_ROOMS[SZ]}, 3)
    c.eq("env_compliance excursions", len(components(items["env_compliance"], "excursion")), 1)
    check_utilisation(c, items["utilisation"], both)
    check_freshness(c, items["freshness"], both)

    # "a region's components then include one figure per platform" — for every indicator
    for p in both:
        for code, (value, num, den, status) in per_platform(p).items():
            c.figure(
                f"{code}.platform[{p}]",
                component(items[code], "platform", platform_code=p),
                value=value,
                numerator=num,
                denominator=den,
                status=status,
            )
    c.done()


async def test_derived_dew_point_and_states_of_the_reference_room(hub: Hub) -> None:
    ref = await build_reference(hub)
    c = Checks("GZ R1")
    latest = {
        p["point_code"]: p
        for p in data_of(await hub.get(ENV_LATEST, platform_code=GZ, room_code="R1", limit=1000))["items"]
    }
    dew = latest.get("dp~H1")
    c.true("the derived point dp~H1 is listed", dew is not None, sorted(latest))
    if dew is not None:
        c.eq("dp~H1.point_type", dew.get("point_type"), "cold_aisle_dew_point")
        c.eq("dp~H1.derived_from", sorted(dew.get("derived_from") or []), ["H1", "T1"])
        c.true("dp~H1 latest at at(235)", same_time(dew.get("ts"), ref.at(235)), dew.get("ts"))
        # derived values are kept to 0.001 ℃ (a sensor's precision); the formula is the contract
        c.eq(
            "dp~H1 latest value (Magnus of 22 ℃, 40 %)",
            dew.get("value"),
            pytest.approx(magnus(22.0, RH), abs=5e-4),
        )
        c.eq("dp~H1 latest state", dew.get("state"), "normal")
    rooms = data_of(await hub.get("/api/v1/rooms", platform_code=GZ))["items"]
    r1_points = {p["point_code"]: p for r in rooms if r["room_code"] == "R1" for p in r["points"]}
    c.eq("/rooms R1 points", sorted(r1_points), sorted(["T1", "H1", "HA1", "FM1", "IM1", "dp~H1"]))
    c.eq("/rooms dp~H1 state", (r1_points.get("dp~H1") or {}).get("state"), "normal")
    for code, state in (("HA1", None), ("FM1", None), ("IM1", None), ("H1", "normal"), ("T1", "normal")):
        c.eq(f"{code} latest state", (latest.get(code) or {}).get("state"), state)

    window = ref.window
    raw = data_of(
        await hub.get(ENV_SERIES, platform_code=GZ, room_code="R1", point_code="dp~H1", step="raw", **window)
    )
    points = raw["points"]
    c.eq("dp~H1 sample count", len(points), 48)
    c.eq(
        "dp~H1 values",
        [p["value"] for p in points],
        [pytest.approx(magnus(t1_value(k), RH), abs=5e-4) for k in range(0, 240, 5)],
    )
    c.eq("dp~H1 states", {p["state"] for p in points}, {"normal"})

    t1 = data_of(
        await hub.get(ENV_SERIES, platform_code=GZ, room_code="R1", point_code="T1", step="raw", **window)
    )
    states = [p["state"] for p in t1["points"]]
    c.eq("T1 sample count", len(states), 240)
    if len(states) == 240:
        want = [
            "critical" if 60 <= k <= 99 else "caution" if t1_value(k) > 26 else "normal" for k in range(240)
        ]
        wrong = [(k, states[k], want[k]) for k in range(240) if states[k] != want[k]]
        c.eq("T1 states that differ (k, got, want)", wrong, [])
    c.done()


async def test_a_platform_without_data_answers_no_data_and_scope_hides_the_other_city(hub: Hub) -> None:
    ref = await build_reference(hub)
    c = Checks("FS")
    data = await indicators(hub, ref, platform_code=FS)
    items = by_code(data)
    c.eq("item codes", sorted(items), sorted(CODES))
    for code, item in items.items():
        c.eq(f"{code}.status", item.get("status"), "no_data")
        c.eq(f"{code}.value", item.get("value"), None)
    c.done()

    shenzhen = await hub.create_client("regulator", regions=["440300"])
    assert_error(await hub.get(INDICATORS, shenzhen, platform_code=GZ, **ref.window), 403, "2006")
    assert_error(await hub.get(INDICATORS, shenzhen, region_code="4401", **ref.window), 403, "2006")
    own = await indicators(hub, ref, shenzhen)
    assert own["platforms"] == [SZ]
    sz = Checks("SZ through its regulator")
    items = by_code(own)
    check_availability(sz, items["availability"], AVAIL[SZ], 99.5)
    check_env(sz, items["env_compliance"], ENV_ROOMS[SZ], 1)
    check_pue(sz, items["pue"], PUE_PLATFORM[SZ])
    check_utilisation(sz, items["utilisation"], [SZ])
    sz.done()

    no_kind = await hub.create_client("integrator", platforms=[SZ], kinds=["assets"])
    assert_error(await hub.get(INDICATORS, no_kind, platform_code=SZ, **ref.window), 403, "2006")
    granted = await hub.create_client("integrator", platforms=[SZ], kinds=["indicators"])
    assert data_of(await hub.get(INDICATORS, granted, platform_code=SZ, **ref.window))["platforms"] == [SZ]
