"""Engine, sessionmaker and the request session dependency.

SQLite: WAL, ``synchronous=NORMAL``, a busy timeout, and write transactions started with
``BEGIN IMMEDIATE`` (see :func:`write_session`) so two writers queue on the lock instead of
failing on a read→write lock upgrade. PostgreSQL: asyncpg with a bounded pool.

Every statement has a time limit (§13, ``SUPHUB_STATEMENT_TIMEOUT_S``; exports
``SUPHUB_EXPORT_STATEMENT_TIMEOUT_S`` through :func:`create_export_sessionmaker`):

* PostgreSQL cancels a statement at the limit (``statement_timeout``): 400 ``1005``. A server that
  does not answer at all (stopped processes, a dead network) is cut by the client
  :data:`CLIENT_GRACE_S` later (asyncpg's ``command_timeout``, which also bounds the pool's
  pre-ping and the cancel request) and a connection attempt after :data:`CONNECT_TIMEOUT_S`:
  503 ``5001``. Waiting for a pooled connection is bounded by ``SUPHUB_DB_POOL_TIMEOUT_S``.
* SQLite has no statement timeout of its own: a progress handler interrupts a statement that
  runs past the limit (400 ``1005``). Waiting for the write lock is the busy timeout's business
  (503 ``5001`` when it runs out), not the statement's: the handler does not run while SQLite
  sleeps on a lock.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_

from app.config import Settings

_IMMEDIATE = "suphub_sqlite_immediate"
#: execution option: this connection's statements get this time limit (seconds) instead
_STATEMENT_TIMEOUT = "suphub_statement_timeout_s"
#: how much longer than the statement limit the client waits for a server that does not answer
#: (the server's own cancellation, 400 1005, must arrive first)
CLIENT_GRACE_S = 2.0
#: a connection attempt that takes longer finds a database that is down or hung (503 5001)
CONNECT_TIMEOUT_S = 5.0
#: SQLite's progress handler looks at the clock every this many virtual-machine instructions
_SQLITE_PROGRESS_STEPS = 10_000
_DEADLINE = "suphub_deadline"


def create_engine(
    settings: Settings, url: str | None = None, *, statement_timeout_s: float | None = None
) -> AsyncEngine:
    """Build the engine for ``url`` (default: the configured database).

    ``statement_timeout_s`` (default ``settings.statement_timeout_s``; 0 for none, e.g. for
    migrations) bounds every statement; see the module's docstring.
    """
    url = url or settings.resolved_database_url
    limit = settings.statement_timeout_s if statement_timeout_s is None else statement_timeout_s
    limit = max(0.0, float(limit))
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            from app.datafiles import private_sqlite_database  # §14: 0600 in a 0700 directory

            private_sqlite_database(Path(database), create=False)
            kwargs["pool_timeout"] = settings.db_pool_timeout_s
        kwargs["connect_args"] = {"timeout": settings.sqlite_busy_timeout_ms / 1000}
    else:
        kwargs["pool_size"] = settings.db_pool_size
        kwargs["max_overflow"] = settings.db_pool_size
        # connections broken by an outage are found at checkout and replaced: no restart needed
        kwargs["pool_pre_ping"] = True
        kwargs["pool_timeout"] = settings.db_pool_timeout_s
        # asyncpg prepares every statement; after five runs PostgreSQL may switch to a generic
        # plan, which on the time-partitioned samples cannot prune and reads every partition
        # (a 2 ms query became 2.4 s). Custom plans cost a little planning time each call.
        server_settings = {"plan_cache_mode": "force_custom_plan"}
        connect_args: dict[str, Any] = {"server_settings": server_settings}
        if limit:
            server_settings["statement_timeout"] = str(max(1, round(limit * 1000)))
            connect_args["command_timeout"] = limit + CLIENT_GRACE_S
            connect_args["timeout"] = min(CONNECT_TIMEOUT_S, limit + CLIENT_GRACE_S)
        kwargs["connect_args"] = connect_args
    # orjson for JSON columns: several times faster than the json module on bulk batches
    kwargs["json_serializer"] = _json_dumps
    kwargs["json_deserializer"] = _json_loads
    # SQL parameters never appear in logs: they carry reported data and, by mistake, secrets
    kwargs["hide_parameters"] = True
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine, settings, limit)
    else:
        _configure_postgresql_limits(engine, limit)
    return engine


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_loads(value: Any) -> Any:
    # SQLite gives a JSON column NUMERIC affinity: a stored scalar like 4 comes back as a number
    if isinstance(value, str | bytes | bytearray | memoryview):
        return orjson.loads(value)
    return value


class _Deadline:
    """The monotonic time at which a SQLite connection's running statement is interrupted.

    Set before each statement on the event loop, read by the progress handler in aiosqlite's
    thread: a float attribute is written and read whole, so no lock is needed.
    """

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = float("inf")

    def passed(self) -> int:
        return 1 if time.monotonic() > self.at else 0


def _configure_sqlite(engine: AsyncEngine, settings: Settings, limit: float) -> None:
    busy_ms = settings.sqlite_busy_timeout_ms

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # take transaction control from the driver so we can say BEGIN IMMEDIATE ourselves
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.close()
        deadline = _Deadline()
        record.info[_DEADLINE] = deadline
        # aiosqlite.Connection.set_progress_handler runs in its thread, like every call
        await_(record.driver_connection.set_progress_handler(deadline.passed, _SQLITE_PROGRESS_STEPS))

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _before_execute(conn: Any, *_args: Any) -> None:
        deadline: _Deadline | None = conn.info.get(_DEADLINE)
        if deadline is None:
            return
        seconds = float(conn.get_execution_options().get(_STATEMENT_TIMEOUT, limit) or 0)
        deadline.at = time.monotonic() + seconds if seconds > 0 else float("inf")

    def _clear(conn: Any) -> None:
        # COMMIT and ROLLBACK run outside before/after_cursor_execute: never interrupt them
        try:
            deadline: _Deadline | None = conn.info.get(_DEADLINE)
        except SQLAlchemyError:  # an invalidated connection has no deadline left to clear
            return
        if deadline is not None:
            deadline.at = float("inf")

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _after_execute(conn: Any, *_args: Any) -> None:
        _clear(conn)

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: Any) -> None:
        if context.connection is not None and not context.connection.closed:
            _clear(context.connection)


def _configure_postgresql_limits(engine: AsyncEngine, limit: float) -> None:
    """Exports' longer limit: ``SET LOCAL statement_timeout`` on the server and a matching
    client-side bound on the asyncpg connection, put back when the connection returns."""

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        seconds = conn.get_execution_options().get(_STATEMENT_TIMEOUT)
        if seconds is None:
            return
        seconds = max(0.0, float(seconds))
        _set_command_timeout(conn.connection.dbapi_connection, seconds + CLIENT_GRACE_S if seconds else None)
        conn.exec_driver_sql(
            f"SET LOCAL statement_timeout = {max(1, round(seconds * 1000)) if seconds else 0}"
        )

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is not None:
            _set_command_timeout(dbapi_connection, limit + CLIENT_GRACE_S if limit else None)


def _set_command_timeout(dbapi_connection: Any, seconds: float | None) -> None:
    """asyncpg reads ``command_timeout`` from its connection's configuration for every call."""
    connection = dbapi_connection.driver_connection
    config = getattr(connection, "_config", None)
    if config is not None and config.command_timeout != seconds:
        connection._config = config._replace(command_timeout=seconds)


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


def create_export_sessionmaker(engine: AsyncEngine, settings: Settings) -> async_sessionmaker[AsyncSession]:
    """Sessions whose statements get the exports' time limit (``SUPHUB_EXPORT_STATEMENT_TIMEOUT_S``)."""
    return create_sessionmaker(
        engine.execution_options(**{_STATEMENT_TIMEOUT: settings.export_statement_timeout_s})
    )


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
