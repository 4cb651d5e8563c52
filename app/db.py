"""Engine, sessionmaker and the request session dependency.

SQLite: WAL, ``synchronous=NORMAL``, a busy timeout, and write transactions started with
``BEGIN IMMEDIATE`` (see :func:`write_session`) so two writers queue on the lock instead of
failing on a read→write lock upgrade. PostgreSQL: asyncpg with a bounded pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config import Settings

_IMMEDIATE = "suphub_sqlite_immediate"


def create_engine(settings: Settings, url: str | None = None) -> AsyncEngine:
    """Build the engine for ``url`` (default: the configured database)."""
    url = url or settings.resolved_database_url
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": settings.sqlite_busy_timeout_ms / 1000}
    else:
        kwargs["pool_size"] = settings.db_pool_size
        kwargs["max_overflow"] = settings.db_pool_size
        kwargs["pool_pre_ping"] = True
        kwargs["pool_timeout"] = 10
        # asyncpg prepares every statement; after five runs PostgreSQL may switch to a generic
        # plan, which on the time-partitioned samples cannot prune and reads every partition
        # (a 2 ms query became 2.4 s). Custom plans cost a little planning time each call.
        kwargs["connect_args"] = {"server_settings": {"plan_cache_mode": "force_custom_plan"}}
    # orjson for JSON columns: several times faster than the json module on bulk batches
    kwargs["json_serializer"] = _json_dumps
    kwargs["json_deserializer"] = _json_loads
    # SQL parameters never appear in logs: they carry reported data and, by mistake, secrets
    kwargs["hide_parameters"] = True
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine, settings)
    return engine


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_loads(value: Any) -> Any:
    # SQLite gives a JSON column NUMERIC affinity: a stored scalar like 4 comes back as a number
    if isinstance(value, str | bytes | bytearray | memoryview):
        return orjson.loads(value)
    return value


def _configure_sqlite(engine: AsyncEngine, settings: Settings) -> None:
    busy_ms = settings.sqlite_busy_timeout_ms

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # take transaction control from the driver so we can say BEGIN IMMEDIATE ourselves
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def create_write_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose transaction, when it starts, takes SQLite's write lock (``BEGIN IMMEDIATE``).

    For requests that read and then write: a transaction that began as a reader cannot become a
    writer once another connection has committed (SQLite answers "database is locked" at once,
    without waiting), so it asks for the lock up front and waits its turn. Nothing changes on
    PostgreSQL. The transaction still starts only when the session is first used.
    """
    return create_sessionmaker(engine.execution_options(**{_IMMEDIATE: True}))


@asynccontextmanager
async def write_session(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session whose transaction takes the write lock at once on SQLite; commits on success."""
    async with sessionmaker() as session:
        await session.connection(execution_options={_IMMEDIATE: True})
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


def dialect_name(session: AsyncSession) -> str:
    """``postgresql`` or ``sqlite``: the few statements that differ ask this."""
    return session.get_bind().dialect.name
