"""A PostgreSQL cluster of the test's own, on a spare port: to stop, freeze and restart at will.

The machine's shared PostgreSQL (5432) serves every other test and engineer; an outage drill must
never touch it. ``initdb`` and ``pg_ctl`` refuse to run as root, so when the tests run as root the
cluster is made and driven as the ``postgres`` user (``runuser -u postgres --``) in a directory
that user owns (pytest's own temporary directories are 0700 root and out of its reach).

Usage::

    cluster = PrivateCluster(tmp_path)
    cluster.start()
    url = cluster.create_database("hub")  # postgresql+asyncpg://…
    cluster.freeze(); cluster.thaw(); cluster.stop(); cluster.start()
    cluster.destroy()

or the fixtures ``private_cluster`` (module scope, started) and ``private_database_url``
(module scope, a database migrated to head), made a test module's own by assignment::

    from tests import pgcluster

    pytestmark = pgcluster.requires_private_cluster
    private_cluster = pgcluster.private_cluster
    private_database_url = pgcluster.private_database_url
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_CONF = """
# tests/pgcluster.py: a private, throw-away cluster
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockets}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
shared_buffers = 32MB
log_min_messages = warning
"""


def _bin_dir() -> Path | None:
    """Where initdb and pg_ctl live: PATH first, then Debian's /usr/lib/postgresql/<ver>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


def _as_root() -> bool:
    return os.geteuid() == 0


def private_cluster_available() -> bool:
    """initdb and pg_ctl are installed (and, as root, a ``postgres`` user and runuser to use them)."""
    if _bin_dir() is None:
        return False
    if _as_root():
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return False
        return shutil.which("runuser") is not None
    return True


#: ``@requires_private_cluster`` on a test or ``pytestmark = requires_private_cluster`` on a module
requires_private_cluster = pytest.mark.skipif(
    not private_cluster_available(),
    reason="initdb/pg_ctl not found: the database-outage tests need a private PostgreSQL cluster",
)


def free_port() -> int:
    """A TCP port nothing listens on right now (on 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (the postmaster's backends and auxiliary processes)."""
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


class PrivateCluster:
    """A PostgreSQL cluster of the test's own, never the shared one on 5432."""

    def __init__(self, base_dir: Path, port: int | None = None) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError("initdb/pg_ctl not found")
        self.bin_dir = bin_dir
        self.base_dir = Path(base_dir)
        self.port = port or free_port()
        if _as_root():
            # pytest's tmp_path is 0700 root: the postgres user could not reach a data dir there
            self.root = Path(tempfile.mkdtemp(prefix="suphub-pg-"))
            shutil.chown(self.root, "postgres", "postgres")
        else:
            self.root = self.base_dir / f"pg-{self.port}"
            self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self.data_dir = self.root / "data"
        self.log_file = self.root / "server.log"
        self._frozen: list[int] = []

    # -- commands ----------------------------------------------------------------------------
    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if _as_root():
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this cluster."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def postmaster_pid(self) -> int | None:
        """The running postmaster's PID, from ``postmaster.pid`` (None when it is not running)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    @property
    def running(self) -> bool:
        return self.postmaster_pid is not None

    def start(self) -> None:
        """initdb (the first time) and ``pg_ctl start -w``."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            )
            with (self.data_dir / "postgresql.conf").open("a") as conf:
                conf.write(_CONF.format(port=self.port, sockets=self.root))
        if self.running:
            return
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir), "-l", str(self.log_file))

    def stop(self, mode: str = "fast", *, wait: bool = True) -> None:
        """``pg_ctl stop -m mode`` (a frozen cluster is thawed first, or it could not stop).

        ``wait=False`` returns at once: with ``mode="smart"`` and a session open, the server then
        stays up refusing new connections ("the database system is shutting down") until that
        session ends; :meth:`wait_stopped` waits for the end.
        """
        if self._frozen:
            self.thaw()
        if not self.running:
            return
        self._run("pg_ctl", "stop", "-w" if wait else "-W", "-t", "60", "-m", mode, "-D", str(self.data_dir))

    def wait_stopped(self, timeout: float = 60) -> None:
        """Wait until the postmaster has exited (after ``stop(wait=False)``)."""
        deadline = time.monotonic() + timeout
        while self.running:
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not stop")
            time.sleep(0.05)

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: a database that accepts TCP and never answers."""
        pid = self.postmaster_pid
        if pid is None:
            raise RuntimeError("the cluster is not running")
        # the postmaster first, so that it forks no new backend while its children are stopped
        os.kill(pid, signal.SIGSTOP)
        self._frozen = [pid]
        for child in _children(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGSTOP)
                self._frozen.append(child)

    def thaw(self) -> None:
        """SIGCONT every process :meth:`freeze` stopped (backends first, the postmaster last)."""
        for pid in reversed(self._frozen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._frozen = []

    def destroy(self) -> None:
        """Stop the cluster if it runs (by PID if pg_ctl cannot) and remove its directory."""
        pid = self.postmaster_pid
        if pid is not None:
            children = _children(pid)
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                for victim in [pid, *children]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(victim, signal.SIGCONT)
                        os.kill(victim, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and any(_alive(p) for p in [pid, *children]):
                    time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` through psql on this cluster; returns its unaligned output."""
        result = self._run(
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-c",
            sql,
        )
        return result.stdout.strip()

    def create_database(self, name: str) -> str:
        """A new empty database; returns its ``postgresql+asyncpg://`` URL."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r}: letters, digits and _ only")
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> PrivateCluster:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.destroy()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    """A started private cluster for the module (skips the module when initdb is missing)."""
    if not private_cluster_available():
        pytest.skip("initdb/pg_ctl not found: the database-outage tests need a private PostgreSQL cluster")
    cluster = PrivateCluster(tmp_path_factory.mktemp("pgcluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def private_database_url(private_cluster: PrivateCluster) -> str:
    """A database on the private cluster, migrated to head by the real migrations."""
    from alembic import command

    from app.cli import alembic_config

    url = private_cluster.create_database(f"suphub_{uuid.uuid4().hex[:8]}")
    command.upgrade(alembic_config(url), "head")
    return url
