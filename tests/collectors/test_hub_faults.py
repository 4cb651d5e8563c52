"""Faults of a ``hub`` source (§8): timeouts, 500s, 429, malformed answers, a peer that hangs.

Each ends as a failed run with a clear error, the source backed off and shown stale — and a
later good run recovers it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from app.collectors.runner import CollectorRunner
from app.config import Settings
from app.security.keys import load_server_key
from tests.helpers import Hub

SOURCES = "/api/v1/admin/sources"
EMPTY = {"code": "0", "data": {"items": [], "next_cursor": None}}


def _timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


FAULTS: dict[str, tuple[Callable[[httpx.Request], httpx.Response], str]] = {
    "timeout": (_timeout, "ReadTimeout"),
    "500": (lambda request: httpx.Response(500, text="boom"), "HTTP 500"),
    "429": (lambda request: httpx.Response(429, headers={"Retry-After": "0"}), "HTTP 429"),
    "not json": (lambda request: httpx.Response(200, text="<html>login</html>"), "JSON"),
    "not a hub": (lambda request: httpx.Response(200, json={"items": []}), "hub"),
}


def _fast(settings: Settings, **extra: Any) -> Settings:
    return settings.model_copy(update={"collector_backoff_s": 0.001, **extra})


async def _create(hub: Hub, base_url: str = "http://city-hub.example") -> None:
    body = {
        "source_id": "city",
        "type": "hub",
        "base_url": base_url,
        "credentials": {"token": "ak_0123456789abcdef0123.secret-value"},
        "kinds": ["assets"],
        "options": {"region": "4401"},
    }
    response = await hub.http.post(SOURCES, json=body, headers=hub.auth(hub.admin))
    assert response.status_code == 201, response.text


async def _run(hub: Hub, runner: CollectorRunner) -> dict[str, Any]:
    run_id, started = await runner.run_now("city")
    assert started
    await runner.wait_idle()
    run = (await hub.get(f"{SOURCES}/city/runs/{run_id}")).json()["data"]
    return run  # type: ignore[no-any-return]


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_a_fault_fails_the_run_backs_off_and_a_good_run_recovers(
    hub: Hub, app: Any, settings: Settings, fault: str
) -> None:
    handler, expected = FAULTS[fault]
    await _create(hub)
    key = load_server_key(settings)
    broken = CollectorRunner(
        app.state.sessionmaker, _fast(settings), key, transport=httpx.MockTransport(handler)
    )
    run = await _run(hub, broken)
    assert run["status"] == "failed" and expected in run["error"], run
    assert "secret-value" not in run["error"] and run["finished_at"]
    source = (await hub.get(f"{SOURCES}/city")).json()["data"]
    assert (
        source["consecutive_failures"] == 1 and source["stale"] is True and source["running_run_id"] is None
    )

    healthy = httpx.MockTransport(lambda request: httpx.Response(200, json=EMPTY))
    good = CollectorRunner(app.state.sessionmaker, _fast(settings), key, transport=healthy)
    assert (await _run(hub, good))["status"] == "success"
    source = (await hub.get(f"{SOURCES}/city")).json()["data"]
    assert source["consecutive_failures"] == 0 and source["stale"] is False


@pytest.fixture
def hanging_peer() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


async def test_a_peer_that_hangs_fails_the_run_within_the_request_timeout(
    hub: Hub, app: Any, settings: Settings, hanging_peer: str
) -> None:
    # the hanging peer listens on loopback, which §8 refuses unless the host is listed (also when
    # the source is saved)
    quick = _fast(settings, collector_request_timeout_s=0.3, source_allowed_hosts=["127.0.0.1"])
    app.state.settings = quick
    await _create(hub, hanging_peer)
    runner = CollectorRunner(app.state.sessionmaker, quick, load_server_key(settings))
    started = asyncio.get_running_loop().time()
    run = await _run(hub, runner)
    assert run["status"] == "failed" and "Timeout" in run["error"], run
    assert asyncio.get_running_loop().time() - started < 10  # 4 attempts of 0.3 s, not forever
