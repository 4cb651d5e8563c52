"""A full ``openstack`` run against 100 000 VMs: total time and peak memory (§8, §11).

A local OpenStack-shaped HTTP server (Keystone, Nova, Placement; a separate process, so its work
is not measured) serves ``--vms`` servers, ``--page`` per page, with ``--latency-ms`` added to
every request. The hub polls it through the admin API exactly as in production (in-process over
ASGI, the runner, the ingest service, SQLite or PostgreSQL). The baseline, measured in the same
run, is the same collector reading the same pages with its records thrown away: the ratio says
what ingesting costs on top of fetching. Usage:
    .venv/bin/python bench/openstack_sync.py [--vms 100000] [--page 100] [--latency-ms 20]
        [--hosts 200] [--postgres] [--runs 2] [--no-metrics]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import asyncpg
import httpx
import orjson
from alembic import command

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.cli import alembic_config
from app.collectors.base import RunContext, SourceConfig
from app.collectors.http import SourceHTTP
from app.collectors.openstack.collector import OpenStackCollector
from app.config import Settings
from app.db import create_sessionmaker
from app.main import create_app
from app.schemas.common import ClientCreate
from app.security.keys import load_server_key
from app.services.clients import create_client

PG_DSN = os.environ.get("SUPHUB_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PROJECT = "6f70656e737461636b20342065766572"
PLATFORM = "BENCH-OS-01"
STATUSES = ("ACTIVE",) * 8 + ("SHUTOFF", "PAUSED")


# --- the OpenStack-shaped server (child process) -------------------------------------------------
def _server_id(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-{i:012x}"


def _host(i: int) -> str:
    return f"compute-{i:04d}.bench"


def _server(i: int, hosts: int, base: str) -> dict[str, Any]:
    sid, host = _server_id(i), _host(i % hosts)
    return {
        "OS-EXT-AZ:availability_zone": "nova",
        "OS-EXT-SRV-ATTR:host": host.split(".")[0],
        "OS-EXT-SRV-ATTR:hypervisor_hostname": host,
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{i:08x}",
        "OS-EXT-STS:power_state": 1,
        "OS-EXT-STS:task_state": None,
        "OS-EXT-STS:vm_state": "active",
        "OS-SRV-USG:launched_at": "2026-11-01T02:10:31.000000",
        "OS-SRV-USG:terminated_at": None,
        "addresses": {
            "private": [
                {
                    "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:4c:2c:30",
                    "OS-EXT-IPS:type": "fixed",
                    "addr": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                    "version": 4,
                }
            ]
        },
        "created": "2026-11-01T02:10:00Z",
        "flavor": {
            "disk": 40,
            "ephemeral": 0,
            "extra_specs": {},
            "original_name": "m1.medium",
            "ram": 4096,
            "swap": 0,
            "vcpus": 2,
        },
        "hostId": "2091634baaccdc4c5a1d57069c833e402921df696b7f970791b12ec6",
        "id": sid,
        "image": {"id": "70a599e0-31e7-49b7-b260-868f441e862b", "links": []},
        "links": [{"href": f"{base}/servers/{sid}", "rel": "self"}],
        "metadata": {"business_system": f"业务系统 {i % 50}"},
        "name": f"vm-{i:06d}",
        "os-extended-volumes:volumes_attached": [],
        "status": STATUSES[i % len(STATUSES)],
        "tenant_id": PROJECT,
        "updated": "2026-11-20T08:00:00Z",
        "user_id": "bench",
    }


def _hypervisor(i: int) -> dict[str, Any]:
    return {
        "cpu_info": {
            "arch": "x86_64" if i % 3 else "aarch64",
            "model": "Skylake-Server-IBRS" if i % 3 else "Kunpeng-920",
            "vendor": "Intel" if i % 3 else "HiSilicon",
            "topology": {"cores": 16, "threads": 2, "sockets": 2},
        },
        "state": "up",
        "status": "enabled",
        "host_ip": f"192.168.{i >> 8 & 255}.{i & 255}",
        "hypervisor_hostname": _host(i),
        "hypervisor_type": "QEMU",
        "hypervisor_version": 6002000,
        "id": _server_id(10_000_000 + i),
        "local_gb": 1800,
        "memory_mb": 385024,
        "service": {"host": _host(i).split(".")[0], "id": i, "disabled_reason": None},
        "vcpus": 64,
    }


def _serve(port: int, vms: int, hosts: int, latency_s: float) -> None:
    import uvicorn

    base = f"http://127.0.0.1:{port}"
    compute = f"{base}/compute/v2.1"
    placement = f"{base}/placement"
    catalog = [
        {
            "type": service_type,
            "name": name,
            "id": name,
            "endpoints": [{"id": name, "interface": "public", "region_id": "RegionOne", "url": url}],
        }
        for service_type, name, url in (
            ("identity", "keystone", f"{base}/v3"),
            ("compute", "nova", compute),
            ("placement", "placement", placement),
        )
    ]
    token = orjson.dumps(
        {
            "token": {
                "catalog": catalog,
                "expires_at": "2026-11-21T12:14:05.000000Z",
                "issued_at": "2026-11-21T11:14:05.000000Z",
                "methods": ["application_credential"],
                "project": {"id": PROJECT, "name": "admin", "domain": {"id": "default"}},
            }
        }
    )
    requests = 0

    def paged(key: str, query: dict[str, list[str]], total: int, item: Any, link: str) -> bytes:
        limit = int(query.get("limit", ["1000"])[0])
        marker = query.get("marker", [None])[0]
        start = int(marker.rsplit("-", 1)[1], 16) % 10_000_000 + 1 if marker else 0
        end = min(total, start + limit)
        body: dict[str, Any] = {key: [item(i) for i in range(start, end)]}
        if end < total:
            last = body[key][-1]["id"]
            body[f"{key}_links"] = [{"rel": "next", "href": f"{link}?limit={limit}&marker={last}"}]
        return orjson.dumps(body)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal requests
        if scope["type"] != "http":
            return
        requests += 1
        await asyncio.sleep(latency_s)
        path, query = scope["path"], parse_qs(scope["query_string"].decode())
        status, headers, body = 200, [(b"content-type", b"application/json")], b"{}"
        if path == "/v3/auth/tokens":
            status, body = 201, token
            headers.append((b"x-subject-token", b"gAAAAAB-bench-token"))
        elif path == "/compute/v2.1/servers/detail":
            link = f"{compute}/servers/detail"
            body = paged("servers", query, vms, lambda i: _server(i, hosts, compute), link)
        elif path == "/compute/v2.1/os-hypervisors/detail":
            link = f"{compute}/os-hypervisors/detail"
            body = paged("hypervisors", query, hosts, _hypervisor, link)
        elif path == "/placement/resource_providers":
            providers = [
                {"uuid": _server_id(20_000_000 + i), "name": _host(i), "root_provider_uuid": None}
                for i in range(hosts)
            ]
            body = orjson.dumps({"resource_providers": providers})
        elif path.endswith("/inventories"):
            body = orjson.dumps(
                {
                    "inventories": {
                        "VCPU": {"total": 64, "reserved": 4, "allocation_ratio": 4.0},
                        "MEMORY_MB": {"total": 385024, "reserved": 8192, "allocation_ratio": 1.5},
                    }
                }
            )
        elif path.endswith("/usages"):
            body = orjson.dumps({"usages": {"VCPU": vms * 2 // hosts, "MEMORY_MB": vms * 4096 // hosts}})
        elif path == "/_stats":
            body = orjson.dumps({"requests": requests})
        else:
            status = 404
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def openstack(vms: int, hosts: int, latency_s: float) -> Iterator[str]:
    port = _free_port()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(port, vms, hosts, latency_s), daemon=True
    )
    process.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.join(5)


# --- measuring -----------------------------------------------------------------------------------
def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakRSS:
    """The highest resident set size seen while the block runs (sampled every 20 ms)."""

    def __init__(self) -> None:
        self.start = self.peak = _rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_mib())

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())


async def _requests(base: str) -> int:
    async with httpx.AsyncClient() as client:
        return int((await client.get(f"{base}/_stats")).json()["requests"])


async def fetch_only(base: str, options: dict[str, Any], kinds: tuple[str, ...]) -> tuple[float, int, float]:
    """The baseline: the collector reads every page; records are counted and dropped."""
    config = SourceConfig(
        source_id="baseline",
        platform_code=PLATFORM,
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

    with PeakRSS() as rss:
        started = time.perf_counter()
        async with SourceHTTP(config.base_url, allowed_hosts=frozenset({"127.0.0.1"})) as http:
            ctx = RunContext(
                run_id="baseline", mode="full", started_at=datetime.now(UTC), http=http, state={}, _emit=drop
            )
            await OpenStackCollector(config).run(ctx)
        elapsed = time.perf_counter() - started
    return elapsed, counted, rss.peak - rss.start


async def hub_runs(
    url: str, data_dir: Path, base: str, options: dict[str, Any], kinds: tuple[str, ...], runs: int
) -> list[dict[str, Any]]:
    settings = Settings(  # type: ignore[call-arg]
        database_url=url, data_dir=data_dir, source_allowed_hosts=["127.0.0.1"], _env_file=None
    )
    app = create_app(settings)
    async with create_sessionmaker(app.state.engine)() as session:
        admin = await create_client(session, load_server_key(settings), ClientCreate(name="b", role="admin"))
        await session.commit()
    auth = {"Authorization": f"Bearer {admin['bearer']}"}
    results = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub", timeout=600) as http:
        platform = {
            "platform_code": PLATFORM,
            "name": "bench",
            "region_code": "440100",
            "network_zone": "gov_extranet",
            "level": "city",
        }
        assert (await http.post("/api/v1/admin/platforms", headers=auth, json=platform)).status_code == 201
        source = {
            "source_id": "bench-os",
            "platform_code": PLATFORM,
            "type": "openstack",
            "base_url": f"{base}/v3",
            "credentials": {"application_credential_id": "bench", "application_credential_secret": "bench"},
            "kinds": list(kinds),
            "options": options,
        }
        response = await http.post("/api/v1/admin/sources", headers=auth, json=source)
        assert response.status_code == 201, response.text
        for _ in range(runs):
            before = await _requests(base)
            with PeakRSS() as rss:
                started = time.perf_counter()
                response = await http.post("/api/v1/admin/sources/bench-os/run?mode=full", headers=auth)
                run_id = response.json()["data"]["run_id"]
                await app.state.collector_runner.wait_idle()
                elapsed = time.perf_counter() - started
            answer = await http.get(f"/api/v1/admin/sources/bench-os/runs/{run_id}", headers=auth)
            run = answer.json()["data"]
            run.update(elapsed=elapsed, rss_delta=rss.peak - rss.start, rss_peak=rss.peak)
            run["requests"] = await _requests(base) - before
            results.append(run)
    await app.state.engine.dispose()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vms", type=int, default=100_000)
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1, help="full runs in a row (the 2nd finds nothing new)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL (SUPHUB_TEST_PG_DSN) not SQLite")
    parser.add_argument("--no-metrics", action="store_true", help="assets only (no Placement)")
    args = parser.parse_args()
    kinds = ("assets",) if args.no_metrics else ("assets", "metrics")
    options = {"limit": args.page, "volumes": False}

    cloud = openstack(args.vms, args.hosts, args.latency_ms / 1000)
    with cloud as base, tempfile.TemporaryDirectory() as tmp:
        baseline, counted, baseline_rss = await fetch_only(base, options, kinds)
        if args.postgres:
            name = f"suphub_bench_{uuid.uuid4().hex[:8]}"
            conn = await asyncpg.connect(PG_DSN)
            await conn.execute(f'CREATE DATABASE "{name}"')
            url = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
        else:
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        try:
            await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
            runs = await hub_runs(url, Path(tmp), base, options, kinds, args.runs)
        finally:
            if args.postgres:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.close()

    pages = -(-args.vms // args.page) + -(-args.hosts // args.page)
    print(
        f"openstack full run: {args.vms:,} VMs, {args.hosts} hosts, {args.page}/page, "
        f"{args.latency_ms:g} ms per request, {'PostgreSQL' if args.postgres else 'SQLite'}"
    )
    print(f"  Nova pages: {pages:,}; latency floor (serial): {pages * args.latency_ms / 1000:.1f} s")
    print(f"  baseline (fetch and drop): {baseline:8.1f} s  {counted:,} records  RSS +{baseline_rss:.0f} MiB")
    for n, run in enumerate(runs, 1):
        print(
            f"  hub run {n}: {run['status']:>7}  {run['elapsed']:8.1f} s"
            f"  ×{run['elapsed'] / baseline:.2f} baseline"
            f"  {run['records'] / run['elapsed']:,.0f} records/s  {run['requests']:,} requests"
            f"  pages {run['pages']:,}  accepted {run['accepted']:,}  rejected {run['rejected']}"
            f"  peak RSS {run['rss_peak']:.0f} MiB (+{run['rss_delta']:.0f})"
        )
        if run["error"]:
            print(f"    error: {run['error']}")


if __name__ == "__main__":
    asyncio.run(main())
