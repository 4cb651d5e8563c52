"""A real Prometheus scraping a real node_exporter on loopback, once for the whole test session.

The Debian packages are installed when missing (``../shared/peers.md``); both servers listen on
free ports picked now, Prometheus scrapes every second into a temporary TSDB, and both are stopped
by PID at the end. The fixture returns only once the first ``rate()`` over the scraped CPU counters
has had a value for two seconds, so a test's first run already finds data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.collectors.peers import free_port, stop
from tests.helpers import Hub

PACKAGES = ("prometheus", "prometheus-node-exporter")
CPU_QUERY = '100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[1m])))'
MEM_QUERY = "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)"
P = "GD-GZ-ZWY-01"
HOST = "host-01"


@dataclass(frozen=True)
class PrometheusPeer:
    url: str
    instance: str  # the node_exporter target as Prometheus labels it ("127.0.0.1:PORT")


def ensure_installed() -> None:
    """apt-get install once; a no-op (no apt at all) when both binaries are already there."""
    if shutil.which("prometheus") and shutil.which("prometheus-node-exporter"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [
        "apt-get",
        "-o",
        "DPkg::Lock::Timeout=300",  # another session may be installing at the same moment
        "install",
        "-y",
        "--no-install-recommends",
        *PACKAGES,
    ]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)


def _wait_until(what: str, check: Callable[[], bool], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {deadline_s} s")


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusPeer]:
    ensure_installed()
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    node_port, prom_port = free_port(), free_port()
    instance = f"127.0.0.1:{node_port}"
    (workdir / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: node\n    static_configs:\n"
        f"      - targets: ['{instance}']\n"
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with (workdir / "node_exporter.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    ["prometheus-node-exporter", f"--web.listen-address={instance}"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        with (workdir / "prometheus.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [
                        "prometheus",
                        f"--config.file={workdir / 'prometheus.yml'}",
                        f"--storage.tsdb.path={workdir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                        "--storage.tsdb.retention.time=1d",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        url = f"http://127.0.0.1:{prom_port}"
        with httpx.Client(timeout=5) as client:
            _wait_until(
                "node_exporter", lambda: client.get(f"http://{instance}/metrics").status_code == 200, 20
            )
            _wait_until("prometheus", lambda: client.get(f"{url}/-/ready").status_code == 200, 20)

            def cpu_has_data() -> bool:
                # two seconds ago, so that whole steps of a first run's window already have a value
                params = {"query": CPU_QUERY, "time": f"{time.time() - 2:.3f}"}
                answer = client.get(f"{url}/api/v1/query", params=params).json()
                return bool(answer["data"]["result"])

            # service discovery hands the target to the scraper after ~5 s; rate() needs two scrapes
            _wait_until("the first scraped samples", cpu_has_data, 40)
        yield PrometheusPeer(url=url, instance=instance)
    finally:
        for process in reversed(processes):
            stop(process)


# --- the hub side ---------------------------------------------------------------------------------


async def create_source(hub: Hub, prometheus: PrometheusPeer, interval_s: int = 10, **options: Any) -> str:
    """The §8 example source, with the node_exporter instance mapped to an asset id."""
    body = {
        "source_id": "gz-prom",
        "platform_code": P,
        "type": "prometheus",
        "base_url": prometheus.url,
        "interval_s": interval_s,
        "kinds": ["metrics"],
        "options": {
            "asset_label": "instance",
            "asset_map": {prometheus.instance: HOST},
            "step_s": 1,
            "queries": {"cpu.util": CPU_QUERY, "mem.util": MEM_QUERY},
            **options,
        },
    }
    answer = await hub.http.post("/api/v1/admin/sources", json=body, headers=hub.auth(hub.admin))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["data"]["source_id"])


async def run(hub: Hub, app: Any, source_id: str) -> dict[str, Any]:
    """Run now, wait for the run to end, and answer its record."""
    started = await hub.http.post(f"/api/v1/admin/sources/{source_id}/run", headers=hub.auth(hub.admin))
    assert started.status_code == 202, started.text
    run_id = started.json()["data"]["run_id"]
    await app.state.collector_runner.wait_idle()
    runs = (await hub.get(f"/api/v1/admin/sources/{source_id}/runs")).json()["data"]["items"]
    assert runs[0]["run_id"] == run_id
    return dict(runs[0])
