"""Slow and vanishing clients against a real ``supervision-hub serve`` (§14, issue 13 item 15).

uvicorn has no time limit on request headers or bodies of its own: a client sending one byte a
second held a connection (and a request) for ever, and a body sent one byte just inside the time
limit between pieces was never cut off either. The hub is started here as an operator starts it,
with a short ``SUPHUB_REQUEST_READ_TIMEOUT_S`` and a low ``SUPHUB_REQUEST_MIN_RATE_BPS``, and
driven over raw sockets.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.collectors.peers import free_port, stop

CLI = [sys.executable, "-m", "app.cli"]
ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 1.0
#: bytes a second a body must average after its first ``TIMEOUT_S`` seconds
MIN_RATE_BPS = 1000
#: what the hub may take beyond the limit (a loaded test machine), and how long a test waits at most
SLACK_S = 2.0


@dataclass(frozen=True)
class Served:
    port: int
    bearer: str
    log: Path

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT_S + 2 * SLACK_S)

    def log_from(self, offset: int) -> str:
        return self.log.read_bytes()[offset:].decode("utf-8", "replace")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPHUB_")}
    env.update(
        SUPHUB_DATA_DIR=str(tmp / "var"),
        PYTHONPATH=str(ROOT),
        SUPHUB_REQUEST_READ_TIMEOUT_S=str(TIMEOUT_S),
        SUPHUB_REQUEST_MIN_RATE_BPS=str(MIN_RATE_BPS),
    )
    created = subprocess.run(
        [*CLI, "clients", "create", "--init", "--name", "root", "--role", "admin"],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    bearer = json.loads(created.stdout)["bearer"]
    port = free_port()
    log = tmp / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), "--no-scheduler"], cwd=tmp, env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield Served(port, bearer, log)
    finally:
        stop(process)


def _closed_within(sock: socket.socket, wait_s: float) -> bool:
    """Whether the hub closed the connection (after whatever it answered) within ``wait_s``."""
    readable, _, _ = select.select([sock], [], [], wait_s)
    if not readable:
        return False
    try:
        while chunk := sock.recv(65536):
            del chunk
            readable, _, _ = select.select([sock], [], [], wait_s)
            if not readable:
                return False
    except ConnectionResetError:
        pass
    return True


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def _post_head(served: Served, length: int, path: str = "/api/v1/admin/platforms") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {served.bearer}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_request_headers_sent_a_byte_at_a_time_are_cut_off_at_the_limit(served: Served) -> None:
    request = f"GET /api/v1/platforms HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {served.bearer}\r\n\r\n"
    with served.connect() as sock:
        started = time.monotonic()
        closed = False
        for byte in request.encode()[:-1]:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
            if closed or _closed_within(sock, 0.25):
                closed = True
                break
            if time.monotonic() - started > TIMEOUT_S + SLACK_S:
                break
        elapsed = time.monotonic() - started
    assert closed, f"still open after {elapsed:.1f} s of headers"
    assert TIMEOUT_S * 0.9 <= elapsed <= TIMEOUT_S + SLACK_S


def test_a_body_that_stops_arriving_is_answered_408_and_the_connection_closed(served: Served) -> None:
    with served.connect() as sock:
        started = time.monotonic()
        sock.sendall(_post_head(served, 1000) + b'{"platform_code": ')
        answer = _read_until_closed(sock)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"code":"1001"' in answer and b"connection: close" in answer.lower()
    assert elapsed <= TIMEOUT_S + SLACK_S


def _trickle(sock: socket.socket, body: bytes, piece: int, every_s: float, give_up_s: float) -> bool:
    """Sends ``body`` ``piece`` bytes every ``every_s`` seconds; whether all of it went out before
    the hub answered or closed the connection (what it answered is left to read), or ``give_up_s``
    passed."""
    started = time.monotonic()
    for at in range(0, len(body), piece):
        try:
            sock.sendall(body[at : at + piece])
        except OSError:
            return False
        if at + piece >= len(body):
            return True
        answered, _, _ = select.select([sock], [], [], every_s)
        if answered or time.monotonic() - started > give_up_s:
            return False
    return True


def test_a_body_trickled_inside_the_piece_limit_is_cut_off_by_its_minimum_rate(served: Served) -> None:
    """One byte every 0.4 s never waits the 1 s between pieces, but averages far under 1000 B/s."""
    with served.connect() as sock:
        started = time.monotonic()
        sock.sendall(_post_head(served, 1000))
        sent_whole = _trickle(sock, b" " * 1000, 1, 0.4, give_up_s=TIMEOUT_S + 2 * SLACK_S)
        elapsed = time.monotonic() - started
        answer = _read_until_closed(sock)
    assert not sent_whole, f"still reading after {elapsed:.1f} s"
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"code":"1001"' in answer and b"connection: close" in answer.lower()
    assert elapsed <= TIMEOUT_S + SLACK_S


def test_a_slow_body_above_the_minimum_rate_is_read_however_long_it_takes(served: Served) -> None:
    """The allowance grows with what arrives: 6 000 bytes at 2 000 B/s take 3 s, three time limits."""
    platform = {
        "platform_code": "GD-SLOW-01",
        "name": "慢",
        "region_code": "440100",
        "network_zone": "gov_extranet",
        "level": "city",
    }
    body = json.dumps(platform).encode().ljust(6000)
    with served.connect() as sock:
        started = time.monotonic()
        sock.sendall(_post_head(served, len(body)))
        assert _trickle(sock, body, 600, 0.3, give_up_s=60), "the hub closed a connection sending 2 000 B/s"
        answer = _read_until_closed(sock)
        elapsed = time.monotonic() - started
    assert elapsed > 2 * TIMEOUT_S
    assert answer.startswith(b"HTTP/1.1 201 "), answer[:300]


def test_a_well_behaved_client_keeps_its_connection(served: Served) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{served.port}") as client:
        for _ in range(2):
            answer = client.get("/api/v1/platforms", headers={"Authorization": f"Bearer {served.bearer}"})
            assert answer.status_code == 200, answer.text
        time.sleep(TIMEOUT_S * 0.5)
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/reports/assets", "/api/v1/admin/platforms"])
def test_a_client_that_disconnects_mid_body_is_one_log_line(served: Served, path: str) -> None:
    offset = served.log.stat().st_size
    with served.connect() as sock:
        sock.sendall(_post_head(served, 100_000, path) + b'{"platform_code": "GD-')
        time.sleep(0.2)
    deadline = time.monotonic() + TIMEOUT_S + SLACK_S
    while "went away" not in served.log_from(offset) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # anything logged after the line
    logged = served.log_from(offset)
    assert "Traceback" not in logged, logged
    assert len([line for line in logged.splitlines() if "went away" in line]) == 1, logged
    assert len([line for line in logged.splitlines() if "ERROR" in line or "Exception" in line]) == 0, logged
