"""The application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute

from app import logsafe
from app.api import (
    admin,
    admin_supervision,
    alarms,
    assets,
    audit,
    catalog,
    environment,
    export,
    health,
    indicators,
    logs,
    metrics,
    overview,
    platforms,
    reports,
    rooms,
    sources,
    thresholds,
    warnings,
)
from app.api.docs import install_docs
from app.api.guards import RequestGuardMiddleware, known_query_only
from app.api.middleware import (
    AuditMiddleware,
    RejectNulMiddleware,
    RequestIdMiddleware,
    SourceRateLimitMiddleware,
)
from app.collectors.runner import CollectorRunner
from app.collectors.scheduler import build_scheduler
from app.config import Settings, get_settings
from app.db import (
    StorageScopeMiddleware,
    create_engine,
    create_sessionmaker,
    create_write_sessionmaker,
)
from app.errors import install_error_handlers
from app.security.audit import AuditWriter
from app.security.keys import server_key_for
from app.security.ratelimit import RateLimiter

DESCRIPTION = """
政务云监管数据汇聚服务 — 汇聚各政务云平台上报的资产、日志、监控与机房环控数据
（《政务云平台建设技术要求》附录 A）。

* 推送：`POST /api/v1/reports/{kind}`，云服务提供方上报数据；
* 查询：监管方与第三方系统按授权范围读取数据；
* 认证：`Authorization: Bearer <app_key>.<secret>`，或签名请求（HMAC-SM3 / HMAC-SHA256，见 docs/signing.md）。

Every answer is the envelope `{code, message, request_id, data}`; errors carry `errors[]` of
`{index, loc, message}`.
"""


def _operation_id(route: APIRoute) -> str:
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}"


#: young-generation threshold while serving (CPython's default is 700 allocations)
_GC_THRESHOLDS = (10_000, 50, 100)


def tune_garbage_collector() -> Callable[[], None]:
    """Fewer, cheaper collections while the hub serves; returns what undoes it.

    A push batch allocates hundreds of thousands of short-lived objects (parsed JSON, records,
    row tuples), so CPython's defaults ran a collection every 700 of them and a full one every
    few batches over everything the process holds — 30–40 % of a batch's time (``bench/walls.py
    --gc``). Everything alive after start-up (modules, the ORM's metadata, the app) is moved
    out of the collector's reach (``gc.freeze``) and the young generation is collected ten
    times less often. Nothing is turned off: cyclic garbage is still collected.
    """
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)

    def restore() -> None:
        gc.set_threshold(*previous)
        gc.unfreeze()

    return restore


def create_app(settings: Settings | None = None, *, run_jobs: bool = False) -> FastAPI:
    """Build the app; the engine connects lazily, so building it does no I/O.

    ``run_jobs`` runs the background jobs (rollups, retention, partitions) in this process while it
    serves: the embedded default of ``supervision-hub serve``.
    """
    settings = settings or get_settings()
    logsafe.install()  # client values reach the log escaped (§13)
    engine = create_engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server_key_for(app.state)  # a production hub without its key refuses to start
        scheduler = None
        if run_jobs:
            runner = CollectorRunner(app.state.sessionmaker, settings, server_key_for(app.state))
            app.state.collector_runner = runner
            scheduler = build_scheduler(settings, app.state.sessionmaker, runner)
            scheduler.start()
        restore_gc = tune_garbage_collector() if settings.gc_tuning else None
        yield
        if restore_gc is not None:
            restore_gc()
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        runner_in_use: CollectorRunner | None = getattr(app.state, "collector_runner", None)
        if runner_in_use is not None:
            await runner_in_use.stop()
        await app.state.audit_writer.close()
        await app.state.rate_limiter.close()
        await engine.dispose()

    app = FastAPI(
        title="Supervision Hub 政务云监管数据汇聚服务",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        # FastAPI's own pages load Swagger UI and ReDoc from other origins: install_docs serves them
        docs_url=None,
        redoc_url=None,
        # every route refuses a query parameter it does not declare (§2.2)
        dependencies=[Depends(known_query_only)],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.write_sessionmaker = create_write_sessionmaker(engine)
    app.state.audit_writer = AuditWriter(
        app.state.sessionmaker,
        settings.data_dir,
        # asked at each append: a key rotated beside the running hub is used from the next one
        server_key=lambda: server_key_for(app.state),
        backlog_max=settings.audit_backlog_max,
    )
    app.state.rate_limiter = RateLimiter(settings, engine)
    install_error_handlers(app)
    # outermost last: request id → audit → NUL guard → source-IP rate limit → the key before the
    # body, capped and timed bodies, the query as signed (app/api/guards.py) → the app
    app.add_middleware(RequestGuardMiddleware)
    app.add_middleware(SourceRateLimitMiddleware)
    app.add_middleware(RejectNulMiddleware)
    app.add_middleware(AuditMiddleware)
    app.add_middleware(RequestIdMiddleware)
    # around everything: a request's storage steps, its audit event included, wait for an
    # unavailable store once, not once each (§13, app/db.py)
    app.add_middleware(StorageScopeMiddleware)
    for module in (
        health,
        reports,
        admin,
        audit,
        platforms,
        catalog,
        assets,
        logs,
        alarms,
        rooms,
        metrics,
        environment,
        export,
        sources,
        thresholds,
        indicators,
        warnings,
        overview,
        admin_supervision,
    ):
        app.include_router(module.router)
    install_docs(app)  # /docs, /redoc and their vendored assets
    return app
