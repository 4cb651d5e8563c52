"""What every drill needs: a throw-away database, the hub under a real ``uvicorn``, keys, one line.

The hub is started exactly as an operator starts it — ``python -m app.cli serve`` (the
``supervision-hub serve`` entry point: it migrates, then runs uvicorn in the same process) — on a
free port of 127.0.0.1, with ``SUPHUB_*`` variables naming a throw-away database and data folder.
Its PID is the server's, so a drill can SIGKILL, SIGSTOP or read ``/proc/<pid>/status`` of the
process that answers, and every process started here is stopped by its PID in a ``finally``.

Progress goes to stderr; the one line of figures a drill exists for goes to stdout (:func:`emit`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from app.security.signing import signed_headers

ROOT = Path(__file__).resolve().parents[2]
#: the tree whose ``app`` the hub processes run: this checkout, or another one (e.g. a release
#: unpacked with ``git archive``) to measure it with the same drills
HUB_TREE = Path(os.environ.get("SUPHUB_DRILL_HUB_TREE") or ROOT)
#: the maintenance database of the machine's PostgreSQL; drills only CREATE / DROP their own
#: ``suphub_drill_*`` databases through it
PG_MAINTENANCE_DSN = os.environ.get("SUPHUB_DRILL_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
#: limits high enough for a drill; the limiter stays on, so its code path is part of every request
UNLIMITED = {
    "SUPHUB_RATE_LIMIT_ROLES": orjson.dumps(
        {r: [1e6, 1e6] for r in ("admin", "regulator", "provider", "integrator")}
    ).decode(),
    "SUPHUB_RATE_LIMIT_IP": "[1000000.0, 1000000.0]",
}
MIB = 1024 * 1024


def exit_on_sigterm() -> None:
    """SIGTERM raises ``SystemExit``, so that the ``finally`` blocks stop what the drill started."""

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def log(message: str) -> None:
    """Progress, to stderr (stdout carries only the figures)."""
    print(message, file=sys.stderr, flush=True)


def emit(name: str, figures: dict[str, Any], ok: bool) -> None:
    """The drill's one line of figures, ending in ``goal=pass`` or ``goal=FAIL``."""
    parts = [f"{k}={v}" for k, v in figures.items()]
    print(f"{name}: {' '.join(parts)} goal={'pass' if ok else 'FAIL'}", flush=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    """``VmRSS`` of ``pid`` in KiB (0 once it is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class PeakRSS:
    """The peak RSS growth of ``pid`` while the block runs (VmRSS sampled every 10 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start_kib = self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak_kib = max(self.peak_kib, rss_kib(self.pid))

    def __enter__(self) -> PeakRSS:
        self.start_kib = self.peak_kib = rss_kib(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, rss_kib(self.pid))

    @property
    def growth_mib(self) -> float:
        return round((self.peak_kib - self.start_kib) / 1024, 1)


# --- databases --------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def throwaway_database(kind: str, tmp: Path) -> AsyncIterator[str]:
    """A new empty database's SQLAlchemy URL: a SQLite file in ``tmp``, or a ``suphub_drill_*``
    database on the local PostgreSQL, made and dropped through its maintenance database."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / 'hub.db'}"
        return
    name = f"suphub_drill_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG_MAINTENANCE_DSN, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        try:
            base = PG_MAINTENANCE_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
            yield f"{base}/{name}"
        finally:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def asyncpg_dsn(url: str) -> str:
    """The plain ``postgresql://`` DSN of a ``postgresql+asyncpg://`` URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def hub_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a hub process: this one's, less any ``SUPHUB_*``, plus the drill's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPHUB_")}
    env.update(
        {
            "SUPHUB_ENV": "production",
            "SUPHUB_DATABASE_URL": database_url,
            "SUPHUB_DATA_DIR": str(data_dir),
            "SUPHUB_SECRET_KEY": secrets.token_hex(32),
            **UNLIMITED,
            **extra,
        }
    )
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    """``supervision-hub <args>`` (as ``python -m app.cli``); its stdout, or an error with stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=HUB_TREE,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"supervision-hub {' '.join(args)}: exit {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def cli_create_client(env: dict[str, str], name: str, role: str, *options: str) -> dict[str, Any]:
    """A key made with ``supervision-hub clients create`` (``app_key``, ``secret``, ``bearer``…)."""
    created: dict[str, Any] = json.loads(
        cli(env, "clients", "create", "--name", name, "--role", role, *options)
    )
    return created


# --- the hub process --------------------------------------------------------------------------
class HubServer:
    """``supervision-hub serve`` on a free loopback port; restartable on the same port."""

    def __init__(
        self, env: dict[str, str], log_path: Path, *, scheduler: bool = False, log_level: str = "warning"
    ) -> None:
        self.env = env
        self.log_level = log_level
        self.log_path = log_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.scheduler = scheduler
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 120) -> None:
        """Start (migrating first, as ``serve`` does) and wait until ``/healthz`` answers 200."""
        command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--log-level", self.log_level]
        if not self.scheduler:
            command.append("--no-scheduler")
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                command, cwd=HUB_TREE, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the hub exited with {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the hub did not answer /healthz within {timeout:.0f} s: {self.log_tail()}"
                )
            time.sleep(0.1)

    def kill9(self) -> None:
        """SIGKILL, as a crash or the OOM killer would, and reap it."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        """SIGTERM by PID; SIGKILL when it has not exited within 15 s (a stopped one is continued)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(15)

    def log_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def keep_log(self, name: str) -> str:
        """Copy the server's log out of the drill's temporary folder (it names the tracebacks the
        figures count) and say where; returns its text."""
        text = self.log_text()
        kept = Path(tempfile.gettempdir()) / f"suphub-drill-{name}.log"
        kept.write_text(text)
        log(f"  the hub's log: {kept} ({count_tracebacks(text)} tracebacks)")
        return text


@contextlib.contextmanager
def running(server: HubServer) -> Iterator[HubServer]:
    """Start ``server``; stop it by its PID however the block ends."""
    try:
        server.start()
        yield server
    finally:
        server.stop()


# --- users of the hub -------------------------------------------------------------------------
@dataclass(frozen=True)
class Provider:
    """A provider key bound to one platform; every push signed (HMAC-SM3, §3)."""

    app_key: str
    secret: str
    platform: str

    def headers(self, path: str, body: bytes, method: str = "POST", query: str = "") -> dict[str, str]:
        headers = signed_headers(
            app_key=self.app_key, secret=self.secret, method=method, path=path, query=query, body=body
        )
        headers["Content-Type"] = "application/json"
        return headers


class Admin:
    """The first admin key, used through the API as an operator would."""

    def __init__(self, base: str, bearer: str) -> None:
        self.bearer = bearer
        self.headers = {"Authorization": f"Bearer {bearer}"}
        self.http = httpx.AsyncClient(base_url=base, timeout=60)

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, headers=self.headers, **kwargs)
        if response.status_code != expect:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()["data"]

    async def platform(self, code: str, region: str = "440100") -> None:
        body = {
            "platform_code": code,
            "name": f"演练平台 {code}",
            "region_code": region,
            "network_zone": "gov_extranet",
            "level": "city",
        }
        await self.call("POST", "/api/v1/admin/platforms", 201, json=body)

    async def key(self, role: str, **fields: Any) -> dict[str, Any]:
        created: dict[str, Any] = await self.call(
            "POST", "/api/v1/admin/clients", 201, json={"name": f"drill {role}", "role": role, **fields}
        )
        return created

    async def provider(self, platform: str) -> Provider:
        created = await self.key("provider", platforms=[platform], require_signature=True)
        return Provider(created["app_key"], created["secret"], platform)


def log_record(log_id: str, message: str, event_time: str) -> dict[str, Any]:
    """One valid operation log (§4.3)."""
    return {
        "log_id": log_id,
        "category": "operation",
        "type": "login",
        "event_time": event_time,
        "severity": 6,
        "actor": "drill",
        "action": "login",
        "outcome": "success",
        "message": message,
    }


def batch_body(platform: str, batch_id: str, records: list[dict[str, Any]], collected_at: str) -> bytes:
    """The bytes of one push; a retry sends exactly these again (the same body, §4 idempotency)."""
    return orjson.dumps(
        {"batch_id": batch_id, "platform_code": platform, "collected_at": collected_at, "records": records}
    )


def count_tracebacks(text: str) -> int:
    """Tracebacks the server logged (each one an unhandled exception somewhere)."""
    return text.count("Traceback (most recent call last)")
