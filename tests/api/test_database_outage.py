"""When the database goes away (§2.1 ``5001`` / ``1005``, §13 "Every statement has a time limit").

Run against a PostgreSQL cluster of the test module's own (``tests/pgcluster.py``) that the tests
stop, start and freeze; never the shared one. Skipped, with the reason, where initdb is missing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from alembic import command

from app.cli import alembic_config
from app.collectors.scheduler import build_scheduler
from app.config import Settings, get_settings
from app.db import CLIENT_GRACE_S, create_sessionmaker
from app.main import create_app
from app.schemas.common import ClientCreate
from app.security.keys import load_server_key
from app.services.clients import create_client
from tests import pgcluster
from tests.helpers import Hub, batch, new_key, signed_push, vm
from tests.pgcluster import PrivateCluster

pytestmark = pgcluster.requires_private_cluster
private_cluster = pgcluster.private_cluster
private_database_url = pgcluster.private_database_url

#: short limits keep the module's wall time small; the bounds below are what §13 promises
STATEMENT_LIMIT_S = 2.0
POOL_TIMEOUT_S = 0.5
POOL_SIZE = 2


@pytest.fixture
def cluster(private_cluster: PrivateCluster) -> Iterator[PrivateCluster]:
    """The module's cluster, running and thawed before and after each test."""
    private_cluster.thaw()
    private_cluster.start()
    yield private_cluster
    private_cluster.thaw()
    private_cluster.start()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory (one server key, one audit chain key) for the module's database."""
    return tmp_path_factory.mktemp("outage-data")


def outage_settings(url: str, data_dir: Path, **update: Any) -> Settings:
    fields: dict[str, Any] = {
        "database_url": url,
        "data_dir": data_dir,
        "env": "development",
        "statement_timeout_s": STATEMENT_LIMIT_S,
        "db_pool_timeout_s": POOL_TIMEOUT_S,
        "db_pool_size": POOL_SIZE,
        "rate_limit_ip": (100_000.0, 100_000.0),
        "rate_limit_roles": dict.fromkeys(("admin", "regulator", "provider", "integrator"), (1e5, 1e5)),
        **update,
    }
    return Settings(**fields, _env_file=None)


@asynccontextmanager
async def hub_on(settings: Settings) -> AsyncIterator[Hub]:
    """One hub process on ``settings`` with a new admin key; the same app for the whole block."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test", timeout=60) as http:
        async with create_sessionmaker(app.state.engine)() as session:
            created = await create_client(
                session, load_server_key(settings), ClientCreate(name="root", role="admin")
            )
            await session.commit()
        try:
            yield Hub(http, created["bearer"], settings)
        finally:
            await app.state.audit_writer.close()
            await app.state.rate_limiter.close()
            await app.state.engine.dispose()


def platform_code() -> str:
    return f"GD-GZ-T{uuid.uuid4().hex[:6].upper()}-01"


async def _requests(hub: Hub, platform: str, n: int) -> list[httpx.Response]:
    """A push, a read and a readiness probe: what a provider, a regulator and an orchestrator send."""
    return [
        await hub.push("assets", batch(platform, f"b-{n}-{uuid.uuid4().hex[:8]}", [vm(f"vm-{n}")])),
        await hub.get("/api/v1/assets", platform_code=platform),
        await hub.http.get("/readyz"),
    ]


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.request.url, response.text)
    body = response.json()
    assert body["code"] == "5001" and body["request_id"], body
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize("rate_limit", [True, False], ids=["rate-limited", "no-rate-limit"])
async def test_a_stopped_database_answers_503_and_the_hub_recovers_without_restart(
    cluster: PrivateCluster, private_database_url: str, data_dir: Path, rate_limit: bool
) -> None:
    settings = outage_settings(private_database_url, data_dir, rate_limit_enabled=rate_limit)
    async with hub_on(settings) as hub:
        platform = platform_code()
        await hub.create_platform(platform)
        assert [r.status_code for r in await _requests(hub, platform, 1)] == [200, 200, 200]

        cluster.stop("fast")  # the pooled connections are terminated under the hub
        for response in await _requests(hub, platform, 2) + await _requests(hub, platform, 3):
            assert_unavailable(response)

        cluster.start()  # the same app, no restart: broken pooled connections are replaced
        answers = await _requests(hub, platform, 4)
        assert [r.status_code for r in answers] == [200, 200, 200], [r.text for r in answers]
        assert {a["asset_id"] for a in await hub.assets(platform_code=platform)} == {"vm-1", "vm-4"}


async def test_a_database_shutting_down_answers_503(
    cluster: PrivateCluster, private_database_url: str, data_dir: Path
) -> None:
    """A smart shutdown waits for open sessions and meanwhile refuses new connections with
    "the database system is shutting down" (57P03): a hub whose pool is empty meets exactly that."""
    settings = outage_settings(private_database_url, data_dir)
    holder = await asyncpg.connect(cluster.dsn)
    try:
        cluster.stop("smart", wait=False)
        async with fresh_hub(settings) as http:
            assert_unavailable(await http.get("/readyz"))
            assert_unavailable(await http.get("/api/v1/assets", headers={"Authorization": "Bearer x.y"}))
    finally:
        await holder.close()
        cluster.wait_stopped()


@asynccontextmanager
async def fresh_hub(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A hub process whose pool is empty (every request needs a new connection)."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test", timeout=60) as http:
        try:
            yield http
        finally:
            await app.state.audit_writer.close()
            await app.state.rate_limiter.close()
            await app.state.engine.dispose()


async def test_a_hung_database_answers_503_within_the_statement_limit(
    cluster: PrivateCluster, private_database_url: str, data_dir: Path
) -> None:
    settings = outage_settings(private_database_url, data_dir)
    bound = STATEMENT_LIMIT_S + CLIENT_GRACE_S + 3
    async with hub_on(settings) as hub:
        platform = platform_code()
        await hub.create_platform(platform)
        assert (await hub.get("/api/v1/assets", platform_code=platform)).status_code == 200

        cluster.freeze()
        # a hub that waits for ever must fail this test, not hang it: thaw after the bound
        thaw_later = asyncio.get_running_loop().call_later(bound + 1, cluster.thaw)
        try:
            started = time.monotonic()
            # more requests than the pool holds (pool + overflow): the rest wait for a connection
            answers = await asyncio.gather(
                *(hub.get("/api/v1/assets", platform_code=platform) for _ in range(2 * POOL_SIZE + 2)),
                hub.http.get("/readyz"),
            )
            elapsed = time.monotonic() - started
        finally:
            thaw_later.cancel()
            cluster.thaw()
        assert elapsed < bound, f"a hung database held requests {elapsed:.1f} s (bound {bound} s)"
        for response in answers:
            assert_unavailable(response)

        answers = [await hub.get("/api/v1/assets", platform_code=platform), await hub.http.get("/readyz")]
        assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]


async def test_a_signed_push_and_a_read_on_a_hung_database_answer_503_within_the_limit(
    cluster: PrivateCluster, private_database_url: str, data_dir: Path
) -> None:
    """A request passes through several storage steps (rate limit, key lookup, nonce, ingest,
    audit): against a hung database they share one time limit, they do not add up (§13). The
    push refused with 503 was not stored; sent again once the database is back, it is."""
    settings = outage_settings(private_database_url, data_dir)
    bound = STATEMENT_LIMIT_S + 5
    async with hub_on(settings) as hub:
        platform = platform_code()
        await hub.create_platform(platform)
        key = await new_key(hub, "provider", platforms=[platform], require_signature=True)
        credentials = {"app_key": key["app_key"], "secret": key["secret"]}
        first = batch(platform, f"b-{uuid.uuid4().hex[:8]}", [vm("vm-before")])
        assert (await signed_push(hub, "assets", first, **credentials)).status_code == 200
        assert (await hub.get("/api/v1/assets", platform_code=platform)).status_code == 200

        frozen = batch(platform, f"b-{uuid.uuid4().hex[:8]}", [vm("vm-frozen")])
        cluster.freeze()
        # a hub that waits for ever must fail this test, not hang it: thaw well after the bound
        thaw_later = asyncio.get_running_loop().call_later(3 * bound, cluster.thaw)
        timings: dict[str, float] = {}
        answers: dict[str, httpx.Response] = {}
        try:
            for name in ("push", "read"):
                started = time.monotonic()
                if name == "push":
                    answers[name] = await signed_push(hub, "assets", frozen, **credentials)
                else:
                    answers[name] = await hub.get("/api/v1/assets", platform_code=platform)
                timings[name] = time.monotonic() - started
        finally:
            thaw_later.cancel()
            cluster.thaw()
        for name, response in answers.items():
            assert_unavailable(response)
            assert timings[name] < bound, f"{name} held {timings[name]:.1f} s (bound {bound} s)"

        assert {a["asset_id"] for a in await hub.assets(platform_code=platform)} == {"vm-before"}
        again = await signed_push(hub, "assets", frozen, **credentials)
        assert again.status_code == 200, again.text
        assert {a["asset_id"] for a in await hub.assets(platform_code=platform)} == {
            "vm-before",
            "vm-frozen",
        }


@asynccontextmanager
async def locked(cluster: PrivateCluster, database_url: str, table: str) -> AsyncIterator[asyncpg.Connection]:
    """``table`` locked against readers by another session until the block ends."""
    database = database_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{cluster.port}/{database}")
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield conn
        await transaction.rollback()
    finally:
        await conn.close()


async def test_a_statement_cancelled_at_the_limit_answers_1005(
    cluster: PrivateCluster, private_database_url: str, data_dir: Path
) -> None:
    """The asset list waits on a lock another session holds: PostgreSQL cancels the statement at
    ``statement_timeout`` (57014), which is 400 ``1005`` — not a 500, not a hang. (A lock is how a
    test makes a real endpoint's statement outlast the limit without pg_sleep or huge data.)"""
    settings = outage_settings(private_database_url, data_dir)
    async with hub_on(settings) as hub:
        platform = platform_code()
        await hub.create_platform(platform)
        async with locked(cluster, private_database_url, "asset"):
            started = time.monotonic()
            # a statement without a limit would wait on the lock for ever: fail, do not hang
            response = await asyncio.wait_for(hub.get("/api/v1/assets", platform_code=platform), 15)
            elapsed = time.monotonic() - started
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "1005"
        assert STATEMENT_LIMIT_S - 0.5 < elapsed < STATEMENT_LIMIT_S + CLIENT_GRACE_S
        # the connection that ran the cancelled statement is fine afterwards
        assert (await hub.get("/api/v1/assets", platform_code=platform)).status_code == 200


async def test_an_exhausted_pool_answers_503_after_the_pool_timeout(
    cluster: PrivateCluster, private_database_url: str, data_dir: Path
) -> None:
    """Every pooled connection is busy (requests waiting on a lock): one more request waits
    ``SUPHUB_DB_POOL_TIMEOUT_S`` for a connection and answers 503 ``5001``."""
    # a pool timeout long enough that the blocked requests never miss a connection another part
    # of the hub (rate limiter, authentication, audit) holds for a moment
    pool_timeout = 2.0
    settings = outage_settings(
        private_database_url, data_dir, statement_timeout_s=10.0, db_pool_timeout_s=pool_timeout
    )
    async with hub_on(settings) as hub:
        platform = platform_code()
        await hub.create_platform(platform)
        async with locked(cluster, private_database_url, "asset") as conn:
            blocked = [
                asyncio.create_task(hub.get("/api/v1/assets", platform_code=platform))
                for _ in range(2 * POOL_SIZE)
            ]
            deadline = time.monotonic() + 8
            waiting = 0
            while waiting < 2 * POOL_SIZE and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                # inside a transaction the statistics views keep their first snapshot: drop it
                await conn.execute("SELECT pg_stat_clear_snapshot()")
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            assert waiting == 2 * POOL_SIZE, "the requests never held the whole pool"
            started = time.monotonic()
            refused = await asyncio.wait_for(hub.get("/api/v1/assets", platform_code=platform), 15)
            elapsed = time.monotonic() - started
        assert_unavailable(refused)
        assert pool_timeout - 0.2 < elapsed < pool_timeout + 2
        assert [r.status_code for r in await asyncio.gather(*blocked)] == [200] * (2 * POOL_SIZE)


async def test_the_jobs_get_their_own_statement_limit_not_the_requests(
    cluster: PrivateCluster, private_database_url: str, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A job is not a request: the retention job, waiting on locks for longer than the request
    limit (and its client grace), goes on under ``SUPHUB_JOB_STATEMENT_TIMEOUT_S`` — on the app's
    own engine, as ``serve`` runs the jobs in-process by default."""
    request_limit = 1.0
    settings = outage_settings(
        private_database_url, data_dir, statement_timeout_s=request_limit, job_statement_timeout_s=60.0
    )
    app = create_app(settings)
    job = build_scheduler(settings, app.state.sessionmaker).get_job("maintenance")
    assert job is not None
    database = private_database_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{cluster.port}/{database}")
    try:
        tables = await conn.fetchval(
            "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables WHERE schemaname = 'public'"
        )
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
        running = asyncio.create_task(job.func())
        await asyncio.sleep(request_limit + CLIENT_GRACE_S + 1)
        await transaction.rollback()
        await asyncio.wait_for(running, 60)
        # the job made today's partition (a cancelled one is left to the default partition)
        today = f"metric_sample_p{datetime.now(UTC):%Y%m%d}"
        made = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE tablename = $1", today)
    finally:
        await conn.close()
        await app.state.audit_writer.close()
        await app.state.rate_limiter.close()
        await app.state.engine.dispose()
    assert "statement timeout" not in caplog.text and "job failed" not in caplog.text, caplog.text
    assert made == 1


def test_migrations_run_without_a_statement_limit(
    private_cluster: PrivateCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrations read the hub's settings, but a long migration must not be cancelled at the
    request limit: with a limit of a millisecond, every migration still runs to the end."""
    monkeypatch.setenv("SUPHUB_STATEMENT_TIMEOUT_S", "0.001")
    get_settings.cache_clear()
    try:
        url = private_cluster.create_database(f"suphub_{uuid.uuid4().hex[:8]}")
        command.upgrade(alembic_config(url), "head")
        assert private_cluster.psql("SELECT count(*) FROM alembic_version", url.rsplit("/", 1)[1]) == "1"
    finally:
        get_settings.cache_clear()
