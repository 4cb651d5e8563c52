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

A request meets the store several times (source-address and key rate limits, the key, the nonce,
its own transaction, the audit event): each of those bounds alone would add up against a
database that does not answer at all. So once one step of a request has found the store
unavailable (a connect or pre-ping that timed out, a pool wait run out, a broken connection),
every later step of the same request fails at once with 503 ``5001`` instead of waiting out its
own bound (:class:`StorageScopeMiddleware`, :func:`store_failed`). One checkout — the pool wait,
then the pre-ping of a pooled connection or the connect of a new one — shares a single bound too,
so the two do not add up either. A request against a hung PostgreSQL thus lasts about one bound,
the statement limit + :data:`CLIENT_GRACE_S` (measured before: pre-ping, a polite close of the
dead connection and the audit event's connect, one after the other, ~15 s at a 5 s limit). The
transaction a timed-out statement left open is discarded with its connection (the server rolls
it back), never committed. The next request tries the store afresh: recovery needs no restart.
(PostgreSQL only: SQLite's waits are its busy timeout, one per transaction.)
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import await_
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.errors import StorageUnavailable, is_storage_unavailable

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


# --- one request, one wait for an unavailable store (§13) ------------------------------------
class _RequestStore:
    """What the current request learnt of the store; shared by the tasks the request starts."""

    __slots__ = ("open", "unavailable")

    def __init__(self) -> None:
        self.open = True
        self.unavailable = False


_REQUEST_STORE: contextvars.ContextVar[_RequestStore | None] = contextvars.ContextVar(
    "suphub_request_store", default=None
)


def store_failed() -> bool:
    """True once a storage step of the current (still running) request found the store unavailable."""
    state = _REQUEST_STORE.get()
    return state is not None and state.open and state.unavailable


def _mark_store_unavailable() -> None:
    state = _REQUEST_STORE.get()
    if state is not None and state.open:
        state.unavailable = True


def _failed_fast() -> StorageUnavailable:
    return StorageUnavailable("数据库暂不可用，请稍后重试 (database unavailable; retry later)")


@contextmanager
def request_storage_scope() -> Iterator[None]:
    """The storage steps inside share what one of them finds (the module's docstring).

    Tasks started inside keep the scope only while it lasts: a background task a request spawned
    is not failed fast after the request has ended.
    """
    state = _REQUEST_STORE.get()
    if state is not None and state.open:  # nested: the outer request's scope holds
        yield
        return
    state = _RequestStore()
    token = _REQUEST_STORE.set(state)
    try:
        yield
    finally:
        state.open = False
        _REQUEST_STORE.reset(token)


class StorageScopeMiddleware:
    """Each HTTP request is one :func:`request_storage_scope` (outermost: the audit event included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with request_storage_scope():
            await self.app(scope, receive, send)


class _RequestAwarePool(AsyncAdaptedQueuePool):
    """A request that found the store unavailable waits for no connection; one whose checkout
    failed so (``SUPHUB_DB_POOL_TIMEOUT_S`` run out, a connect or pre-ping timed out or refused:
    asyncpg's time limits reach here as the bare ``TimeoutError``, no driver error) has found it."""

    #: one checkout — pool wait, then a pre-ping or a connect — lasts at most this long (set per
    #: engine: the statement limit + :data:`CLIENT_GRACE_S`); None: each bound on its own
    checkout_bound_s: float | None = None

    def connect(self) -> Any:
        if store_failed():
            raise _failed_fast()
        bound = self.checkout_bound_s
        token = _CHECKOUT_DEADLINE.set(time.monotonic() + bound if bound else None)
        try:
            return super().connect()
        except Exception as exc:
            if isinstance(exc, PoolTimeoutError) or is_storage_unavailable(exc):
                _mark_store_unavailable()
            raise
        finally:
            _CHECKOUT_DEADLINE.reset(token)


#: while a connection is checked out: when the checkout must be over (a pool wait that ended
#: with a connection leaves its pre-ping or connect only the rest)
_CHECKOUT_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "suphub_checkout_deadline", default=None
)


def _checkout_left(bound: float | None) -> float | None:
    """``bound`` cut to what is left of the current checkout (0: nothing is)."""
    deadline = _CHECKOUT_DEADLINE.get()
    if deadline is None:
        return bound
    left = max(0.0, deadline - time.monotonic())
    return left if bound is None else min(bound, left)


#: asyncpg's connection configurations, each with a command timeout that sees the request's store
_CONFIG_CLASSES: dict[type, type] = {}


def _request_aware_config(config: Any) -> Any:
    """``config`` (asyncpg's named tuple) whose ``command_timeout`` is 0 — fail at once — once the
    current request found the store unavailable: the rollback of a transaction whose statement
    timed out does not wait on a hung server again (the connection is discarded instead)."""
    base = type(config)
    if base in _CONFIG_CLASSES.values():
        return config
    cls: Any = _CONFIG_CLASSES.get(base)
    if cls is None:
        field = base.command_timeout

        def command_timeout(self: Any) -> Any:
            return 0 if store_failed() else _checkout_left(field.__get__(self, base))

        cls = type(
            f"RequestAware{base.__name__}",
            (base,),
            {"__slots__": (), "command_timeout": property(command_timeout)},
        )
        _CONFIG_CLASSES[base] = cls
    return cls._make(config)


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
        kwargs["poolclass"] = type(
            "RequestAwarePool",
            (_RequestAwarePool,),
            {"checkout_bound_s": limit + CLIENT_GRACE_S if limit else None},
        )
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
    client-side bound on the asyncpg connection, put back when the connection returns. And the
    request's shared knowledge of the store (the module's docstring)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        connection = dbapi_connection.driver_connection
        config = getattr(connection, "_config", None)
        if config is not None:
            connection._config = _request_aware_config(config)

    connect_timeout: dict[str, Any] = {}

    @event.listens_for(engine.sync_engine, "do_connect")
    def _on_do_connect(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        # a connect after a pool wait gets what is left of the checkout (cparams is kept between
        # calls: the configured timeout is remembered once)
        configured = connect_timeout.setdefault("s", cparams.get("timeout"))
        left = _checkout_left(configured)
        if left is None:
            return
        if left <= 0:
            raise TimeoutError("no time left to connect")
        cparams["timeout"] = left

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: Any) -> None:
        # connects and pre-pings included: a time limit run out, a refused or broken connection
        if is_storage_unavailable(context.sqlalchemy_exception or context.original_exception):
            _mark_store_unavailable()

    dialect: Any = engine.dialect

    def _terminate_now(dbapi_connection: Any) -> None:
        # the driver's own terminate first closes politely, waiting up to 2 s on a hung server for
        # an answer that will not come; a connection given up on is closed at once (the server
        # rolls back whatever it had open)
        force_close = getattr(dbapi_connection, "_terminate_force_close", None)
        if force_close is not None:
            force_close()
        else:
            dbapi_connection.terminate()

    dialect.do_terminate = _terminate_now

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


def create_job_sessionmaker(engine: AsyncEngine, settings: Settings) -> async_sessionmaker[AsyncSession]:
    """Sessions whose statements get the background jobs' limit (``SUPHUB_JOB_STATEMENT_TIMEOUT_S``,
    0 = none), on the engine the jobs share with the API when ``serve`` runs them in-process."""
    return create_sessionmaker(
        engine.execution_options(**{_STATEMENT_TIMEOUT: settings.job_statement_timeout_s})
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
