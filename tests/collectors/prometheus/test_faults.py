"""A prometheus source whose server misbehaves: each fault ends as a failed run with a clear error.

The faults are served through ``httpx.MockTransport`` (the hub's ``collector_transport``); a
server that accepts and never answers is a real TCP socket. A source that keeps failing counts
its failures and shows stale; the next good run recovers it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import create_sessionmaker
from app.main import create_app
from app.schemas.common import ClientCreate
from app.security.keys import load_server_key
from app.services.clients import create_client
from tests.collectors.prometheus.conftest import P, PrometheusPeer, create_source, run
from tests.conftest import _empty_tables
from tests.helpers import Hub

CASES = Path(__file__).parent / "cases"
TOKEN = "prom-secret-token-123"
Fault = Callable[[httpx.Request, dict[str, str]], httpx.Response]


def form_of(request: httpx.Request) -> dict[str, str]:
    raw = request.content.decode() if request.method == "POST" else request.url.query.decode()
    return {k: v[0] for k, v in parse_qs(raw).items()}


def grid(form: dict[str, str]) -> list[float]:
    start, end, step = (float(form[k]) for k in ("start", "end", "step"))
    count = round((end - start) / step) + 1
    return [round(start + i * step, 3) for i in range(count)]


def good_answer(form: dict[str, str], *, empty: bool = False) -> httpx.Response:
    """What Prometheus answers for one node's series evaluated on the asked grid."""
    values = [] if empty else [[t, "42.5"] for t in grid(form)]
    result = [{"metric": {"instance": "10.0.0.5:9100", "job": "node"}, "values": values}]
    return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": result}})


class FakePrometheus:
    """``/api/v1/query_range`` in memory: one node's series on the asked grid, or the test's fault."""

    def __init__(self) -> None:
        self.fault: Fault | None = None
        self.requests: list[httpx.Request] = []
        self.empty = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query_range"
        self.requests.append(request)
        form = form_of(request)
        if self.fault is not None:
            return self.fault(request, form)
        return good_answer(form, empty=self.empty)


def timeout(request: httpx.Request, form: dict[str, str]) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def recorded(case: str, status: int, only: str | None = None) -> Fault:
    """A recorded error answer (for the query ``only`` when given; the others answer well)."""

    def answer(request: httpx.Request, form: dict[str, str]) -> httpx.Response:
        if only is not None and form["query"] != only:
            return good_answer(form)
        return httpx.Response(status, content=(CASES / case).read_bytes())

    return answer


def status(code: int, body: bytes = b"", retry_after: str | None = None) -> Fault:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return lambda request, form: httpx.Response(code, content=body, headers=headers)


FAULTS: list[tuple[str, Fault, tuple[str, ...]]] = [
    ("timeout", timeout, ("ReadTimeout", "已重试 4 次")),
    ("500", status(500, b"internal error"), ("HTTP 500", "/api/v1/query_range")),
    ("429", status(429, retry_after="0"), ("HTTP 429", "已重试 4 次")),
    ("503", status(503, b'{"status":"error","errorType":"timeout"}', retry_after="0"), ("HTTP 503",)),
    ("not json", status(200, b"<html>upstream</html>"), ("不是 JSON",)),
    ("no data", status(200, b'{"status":"success"}'), ("cpu.util", "缺少 data")),
    ("vector", status(200, b'{"status":"success","data":{"resultType":"vector","result":[]}}'), ("matrix",)),
    ("bad query", recorded("bad_data_400.json", 400), ("cpu.util", "bad_data", "unclosed left parenthesis")),
    ("execution", recorded("execution_error_422.json", 422, only="mem_query"), ("mem.util", "execution")),
]


async def source_health(hub: Hub, source_id: str) -> tuple[int, bool]:
    data = (await hub.get(f"/api/v1/admin/sources/{source_id}")).json()["data"]
    return int(data["consecutive_failures"]), bool(data["stale"])


async def fake_source(hub: Hub, **options: Any) -> str:
    body = {
        "source_id": "gz-prom",
        "platform_code": P,
        "type": "prometheus",
        "base_url": "http://prom.test:9090",
        "credentials": {"token": TOKEN},
        "interval_s": 10,
        "kinds": ["metrics"],
        "options": {
            "asset_label": "instance",
            "asset_map": {"10.0.0.5:9100": "vm-5"},
            "step_s": 1,
            "queries": {"cpu.util": "cpu_query", "mem.util": "mem_query"},
            **options,
        },
    }
    answer = await hub.http.post("/api/v1/admin/sources", json=body, headers=hub.auth(hub.admin))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["data"]["source_id"])


async def test_every_fault_fails_the_run_clearly_counts_and_shows_stale_until_a_good_run(
    hub: Hub, app: Any
) -> None:
    fake = FakePrometheus()
    app.state.collector_transport = httpx.MockTransport(fake)  # before the runner is made
    await hub.create_platform(P)
    source_id = await fake_source(hub)

    for n, (name, fault, words) in enumerate(FAULTS, start=1):
        fake.fault = fault
        done = await run(hub, app, source_id)
        assert done["status"] == "failed", name
        assert done["finished_at"] and all(w in done["error"] for w in words), (name, done["error"])
        assert TOKEN not in done["error"]
        assert await source_health(hub, source_id) == (n, True), name
    assert done["accepted"] == 10  # cpu.util answered before mem.util failed: its page is kept

    fake.fault = None
    good = await run(hub, app, source_id)
    assert good["status"] == "success", good["error"]
    assert (good["records"], good["accepted"], good["rejected"]) == (20, 20, 0)
    assert await source_health(hub, source_id) == (0, False)
    latest = await hub.get("/api/v1/metrics/latest", metric="mem.util", platform_code=P)
    (item,) = latest.json()["data"]["items"]
    assert (item["asset_id"], item["value"], item["labels"]) == ("vm-5", 42.5, {"job": "node"})
    # every request carried the token, as form parameters of a POST
    assert {r.headers["Authorization"] for r in fake.requests} == {f"Bearer {TOKEN}"}
    assert {r.method for r in fake.requests} == {"POST"}

    # the failed runs did not move the window: the next good run starts after the good one's end
    ends = [float(form_of(r)["end"]) for r in fake.requests[-2:]]
    await asyncio.sleep(1.1)
    fake.requests.clear()
    assert (await run(hub, app, source_id))["status"] == "success"
    assert {float(form_of(r)["start"]) for r in fake.requests} == {max(ends) + 1}


async def test_a_429_is_retried_after_the_time_retry_after_names(hub: Hub, app: Any) -> None:
    fake = FakePrometheus()
    app.state.collector_transport = httpx.MockTransport(fake)
    await hub.create_platform(P)
    source_id = await fake_source(hub)
    answers = iter([httpx.Response(429, headers={"Retry-After": "1"})])

    def busy_once(request: httpx.Request, form: dict[str, str]) -> httpx.Response:
        fake.fault = None
        return next(answers)

    fake.fault = busy_once
    began = time.monotonic()
    done = await run(hub, app, source_id)
    assert done["status"] == "success", done["error"]
    assert time.monotonic() - began >= 1.0  # jitter alone waits at most 0.5 s before the 2nd try
    assert len(fake.requests) == 3  # cpu.util twice, mem.util once


async def test_a_long_window_is_asked_in_pieces_of_at_most_11000_steps_by_get(hub: Hub, app: Any) -> None:
    fake = FakePrometheus()
    fake.empty = True
    app.state.collector_transport = httpx.MockTransport(fake)
    await hub.create_platform(P)
    source_id = await fake_source(hub, queries={"cpu.util": "cpu_query"}, method="GET")
    await hub.http.patch(
        f"/api/v1/admin/sources/{source_id}", json={"interval_s": 86_400}, headers=hub.auth(hub.admin)
    )
    done = await run(hub, app, source_id)
    assert (done["status"], done["records"]) == ("success", 0)
    assert {r.method for r in fake.requests} == {"GET"} and all(not r.content for r in fake.requests)
    pieces = [grid(form_of(r)) for r in fake.requests]
    assert len(pieces) == 8 and max(len(p) for p in pieces) == 11_000
    joined = [t for piece in pieces for t in piece]
    assert len(joined) == 86_400 and joined == sorted(set(joined))
    assert all(round(b - a, 3) == 1 for a, b in itertools.pairwise(joined))


# --- a source that accepts and never answers -----------------------------------------------------


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A TCP server on loopback that accepts connections and never answers."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # until the client gives up and closes
        finally:
            writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


REQUEST_TIMEOUT_S, BACKOFF_S = 0.3, 0.05


@pytest.fixture
async def quick(settings: Settings, engine: AsyncEngine) -> AsyncIterator[tuple[Hub, Any]]:
    """A hub whose collectors give up on a silent source after 0.3 s per request (and retry soon)."""
    await _empty_tables(engine, settings)
    fast = settings.model_copy(
        update={
            "collector_request_timeout_s": REQUEST_TIMEOUT_S,
            "collector_backoff_s": BACKOFF_S,
            # the real and the silent server listen on loopback: §8 needs the host listed
            "source_allowed_hosts": ["127.0.0.1"],
        }
    )
    application = create_app(fast)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        async with create_sessionmaker(application.state.engine)() as session:
            created = await create_client(
                session, load_server_key(fast), ClientCreate(name="root", role="admin")
            )
            await session.commit()
        yield Hub(client, created["bearer"], fast), application
    await application.state.audit_writer.close()
    await application.state.rate_limiter.close()
    await application.state.engine.dispose()


async def test_a_source_that_never_answers_fails_within_the_request_timeout_and_then_recovers(
    quick: tuple[Hub, Any], silent_server: str, prometheus: PrometheusPeer
) -> None:
    hub, app = quick
    await hub.create_platform(P)
    source_id = await create_source(hub, prometheus)
    moved = await hub.http.patch(
        f"/api/v1/admin/sources/{source_id}", json={"base_url": silent_server}, headers=hub.auth(hub.admin)
    )
    assert moved.status_code == 200, moved.text

    began = time.monotonic()
    done = await run(hub, app, source_id)
    took = time.monotonic() - began
    assert done["status"] == "failed"
    assert "ReadTimeout" in done["error"] and "已重试 4 次" in done["error"], done["error"]
    # 4 attempts of 0.3 s each, and back-off of at most 0.05 + 0.1 + 0.2 s between them
    assert 4 * REQUEST_TIMEOUT_S <= took < 4 * REQUEST_TIMEOUT_S + 7 * BACKOFF_S + 1.5
    assert await source_health(hub, source_id) == (1, True)

    back = await hub.http.patch(
        f"/api/v1/admin/sources/{source_id}", json={"base_url": prometheus.url}, headers=hub.auth(hub.admin)
    )
    assert back.status_code == 200, back.text
    good = await run(hub, app, source_id)
    assert good["status"] == "success" and good["accepted"] > 0, good["error"]
    assert await source_health(hub, source_id) == (0, False)
