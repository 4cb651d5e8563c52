"""Two ``supervision-hub scheduler`` processes on one database run each due source once (§8).

A slow peer on 127.0.0.1 counts the requests it is sent per source and how many overlap: with
two schedulers ticking every second, each source must be polled by exactly one run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.security.keys import load_server_key
from tests.collectors.peers import stop
from tests.helpers import Hub

ROOT = Path(__file__).resolve().parent.parent.parent
SOURCES = "/api/v1/admin/sources"


@dataclass
class Peer:
    url: str
    requests: Counter[str] = field(default_factory=Counter)
    in_flight: Counter[str] = field(default_factory=Counter)
    most_in_flight: int = 0


@pytest.fixture
def slow_peer() -> Iterator[Peer]:
    """A hub-shaped peer answering every list empty after 1 s (so overlapping runs would show)."""
    lock = threading.Lock()
    peer = Peer("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            source = self.path.strip("/").split("/")[0]
            with lock:
                peer.requests[source] += 1
                peer.in_flight[source] += 1
                peer.most_in_flight = max(peer.most_in_flight, peer.in_flight[source])
            time.sleep(1.0)
            body = json.dumps({"code": "0", "data": {"items": [], "next_cursor": None}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with lock:
                peer.in_flight[source] -= 1

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    peer.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield peer
    server.shutdown()
    server.server_close()


def _scheduler(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPHUB_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "SUPHUB_DATABASE_URL": settings.database_url,
            "SUPHUB_DATA_DIR": str(settings.data_dir),
            "SUPHUB_COLLECTOR_TICK_S": "1",
            "SUPHUB_ROLLUP_INTERVAL_S": "3600",
            "SUPHUB_MAINTENANCE_INTERVAL_S": "3600",
            # the slow peer listens on loopback, which §8 refuses unless the host is listed
            "SUPHUB_SOURCE_ALLOWED_HOSTS": '["127.0.0.1"]',
        }
    )
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "scheduler"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def test_two_scheduler_processes_run_each_due_source_once(
    hub: Hub, app: Any, settings: Settings, slow_peer: Peer, tmp_path: Path
) -> None:
    load_server_key(settings)  # both processes read the key this hub made
    # the slow peer listens on loopback: listed here too, or §8 refuses the source when it is saved
    app.state.settings = settings.model_copy(update={"source_allowed_hosts": ["127.0.0.1"]})
    names = ["s1", "s2", "s3"]
    for name in names:
        body = {
            "source_id": name,
            "type": "hub",
            "base_url": f"{slow_peer.url}/{name}",
            "credentials": {"token": "ak_0123456789abcdef0123.secret"},
            "interval_s": 3600,
            "kinds": ["assets"],
            "options": {"region": "4401"},
        }
        response = await hub.http.post(SOURCES, json=body, headers=hub.auth(hub.admin))
        assert response.status_code == 201, response.text
    processes = [_scheduler(settings, tmp_path / f"scheduler-{n}.log") for n in (1, 2)]
    try:
        deadline = time.monotonic() + 40
        runs: dict[str, list[dict[str, Any]]] = {}
        while time.monotonic() < deadline:
            runs = {n: (await hub.get(f"{SOURCES}/{n}/runs")).json()["data"]["items"] for n in names}
            if all(r and r[0]["status"] != "running" for r in runs.values()):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # three more ticks of each scheduler: nothing may start again
        runs = {n: (await hub.get(f"{SOURCES}/{n}/runs")).json()["data"]["items"] for n in names}
    finally:
        for process in processes:
            stop(process)
    logs = "\n".join((tmp_path / f"scheduler-{n}.log").read_text(errors="replace")[-2000:] for n in (1, 2))
    assert {n: [r["status"] for r in r_] for n, r_ in runs.items()} == {n: ["success"] for n in names}, logs
    assert dict(slow_peer.requests) == dict.fromkeys(names, 1) and slow_peer.most_in_flight == 1
