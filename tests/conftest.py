"""Fixtures: the hub on SQLite and on the real PostgreSQL, built by the real migrations.

Every API test runs twice (``backend`` = ``sqlite`` / ``postgres``). Each backend's database is
created and migrated once per run; between tests every table but the seeded reference data is
emptied, so a test sees a fresh hub.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cli import alembic_config
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.main import create_app
from app.models import Base
from app.schemas.common import ClientCreate
from app.security.audit import HEAD_FILE
from app.security.keys import load_server_key
from app.services.clients import create_client
from tests.helpers import Hub

PG_ADMIN_DSN = os.environ.get("SUPHUB_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
ROLES = ("admin", "regulator", "provider", "integrator")
#: seeded by the migrations; restored before every test
REFERENCE_TABLES = {
    "metric_definition",
    "domestic_list_entry",
    "point_type_definition",
    "indicator_policy",
    "warning_rule",
}
BACKENDS = ["sqlite"] if os.environ.get("SUPHUB_TEST_SKIP_PG") == "1" else ["sqlite", "postgres"]


def _pg_url(database: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database for this run (dropped afterwards on PostgreSQL)."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'hub.db'}"
        command.upgrade(alembic_config(url), "head")
        yield url
        return
    name = f"suphub_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    url = _pg_url(name)
    try:
        command.upgrade(alembic_config(url), "head")
        yield url
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        env="development",
        # generous limits: rate limiting has its own tests, with small ones
        rate_limit_ip=(100_000.0, 100_000.0),
        rate_limit_roles=dict.fromkeys(
            ("admin", "regulator", "provider", "integrator"), (100000.0, 100000.0)
        ),
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


_SEEDED: dict[str, dict[str, list[dict[str, Any]]]] = {}


async def _empty_tables(engine: AsyncEngine, settings: Settings) -> None:
    """A fresh hub: every table emptied, the reference data back as the migrations seeded it
    (tests may change it through §10), and no audit head checkpoint."""
    (Path(settings.data_dir) / HEAD_FILE).unlink(missing_ok=True)
    reference = [Base.metadata.tables[name] for name in sorted(REFERENCE_TABLES)]
    async with engine.begin() as conn:
        seeded = _SEEDED.get(str(engine.url))
        if seeded is None:  # first use of this database: remember what the migrations seeded
            seeded = {t.name: [dict(r._mapping) for r in await conn.execute(select(t))] for t in reference}
            _SEEDED[str(engine.url)] = seeded
        tables = [t.name for t in Base.metadata.sorted_tables]
        if conn.dialect.name == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                await conn.execute(text(f"DELETE FROM {table}"))
        for table in reference:
            if seeded[table.name]:
                await conn.execute(table.insert(), seeded[table.name])


@pytest.fixture
async def app(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Any]:
    await _empty_tables(engine, settings)
    application = create_app(settings)
    yield application
    await application.state.audit_writer.close()
    await application.state.rate_limiter.close()
    await application.state.engine.dispose()


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        yield client


@pytest.fixture
async def hub(app: Any, http: httpx.AsyncClient, settings: Settings) -> Hub:
    """The hub with its first admin key, made the way ``supervision-hub clients create`` does."""
    async with create_sessionmaker(app.state.engine)() as session:
        created = await create_client(
            session, load_server_key(settings), ClientCreate(name="root", role="admin")
        )
        await session.commit()
    return Hub(http, created["bearer"], settings)


@pytest.fixture
async def small_hub(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Hub]:
    """The hub with small push limits (5 records, 2 000 bytes per body), for the §4 limits."""
    await _empty_tables(engine, settings)
    small = settings.model_copy(update={"max_records_per_batch": 5, "max_body_bytes": 2000})
    application = create_app(small)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        async with create_sessionmaker(application.state.engine)() as session:
            created = await create_client(
                session, load_server_key(small), ClientCreate(name="root", role="admin")
            )
            await session.commit()
        yield Hub(client, created["bearer"], small)
    await application.state.audit_writer.close()
    await application.state.rate_limiter.close()
    await application.state.engine.dispose()
