"""The app ``bench/run.py`` serves with uvicorn: the real hub, plus bare baseline routes beside it.

``create_bench_app()`` builds the production app (``app.main.create_app``, settings from the
``SUPHUB_*`` environment, no scheduler) and puts a tiny ASGI dispatcher in front of it: paths under
``/bench/bare/`` go to a separate FastAPI app with no middleware — no authentication, no scope, no
audit, no rate limit, no envelope, no signed cursor — that runs the same SQL on the same engine
and returns the same rows. Everything else reaches the hub untouched. The production app never
mounts these routes.

    .venv/bin/python -m uvicorn --factory bench.app:create_bench_app --port 8099
"""

from __future__ import annotations

import gc
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Query
from sqlalchemy import tuple_
from starlette.types import Receive, Scope, Send

from app.config import Settings
from app.main import create_app
from app.security.principal import Principal
from app.services.assets import ASSET_KEYSET, AssetFilters, asset_out, asset_statement
from app.services.metrics import SeriesQuery, metric_series, raw_metric_buckets

BARE_PREFIX = "/bench/bare"
#: seconds and collections of the garbage collector per generation, since the server started
GC_STATS: dict[int, list[float]] = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
_gc_started: list[float] = [0.0]


def _gc_timer(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
        return
    stats = GC_STATS[info["generation"]]
    stats[0] += 1
    stats[1] += time.perf_counter() - _gc_started[0]


#: the bare routes act as an admin: a scope of everything, resolved without a query
_ADMIN = Principal(app_key="bench-bare", role="admin")


def bare_app(hub: FastAPI) -> FastAPI:
    """The baseline routes, on the hub's own engine and sessionmaker."""
    bare = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    maker = hub.state.sessionmaker

    @bare.get(f"{BARE_PREFIX}/assets")
    async def assets(
        status: str | None = None,
        asset_type: str | None = None,
        platform_code: str | None = None,
        limit: int = 100,
        after_platform: str | None = None,
        after_asset: str | None = None,
    ) -> Any:
        """The statement of ``GET /api/v1/assets`` for these filters, keyset by plain values."""
        filters = AssetFilters(status=status, asset_type=asset_type, platform_code=platform_code)
        async with maker() as session:
            stmt = await asset_statement(session, _ADMIN, filters)
            if after_platform is not None and after_asset is not None:
                stmt = stmt.where(tuple_(*ASSET_KEYSET.columns) > tuple_(after_platform, after_asset))
            result = await session.execute(stmt.order_by(*ASSET_KEYSET.order_by()).limit(limit + 1))
            rows = list(result.scalars())
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "items": [asset_out(a) for a in rows],
            "next": [rows[-1].platform_code, rows[-1].asset_id] if more else None,
        }

    @bare.get(f"{BARE_PREFIX}/gc")
    async def gc_stats() -> Any:
        """Time the server spent in the garbage collector, per generation (evidence, not a route)."""
        return {str(g): {"collections": int(n), "seconds": round(s, 4)} for g, (n, s) in GC_STATS.items()}

    @bare.get(f"{BARE_PREFIX}/series-raw")
    async def series_raw(
        metric: str,
        asset_uid: str,
        from_: str = Query(alias="from"),
        to: str = Query(),
        step: str = "1h",
        agg: str = "avg",
    ) -> Any:
        """The hub's series answer computed from raw samples only (no rollups)."""
        query = SeriesQuery(metric=metric, asset_uid=asset_uid, from_=from_, to=to, step=step, agg=agg)
        async with maker() as session:
            answer = await metric_series(
                session,
                _ADMIN,
                query,
                tz_name=hub.state.settings.reporting_tz,
                now=datetime.now(UTC),
                source=raw_metric_buckets,
            )
        return answer

    return bare


class BenchDispatcher:
    """``/bench/bare/…`` to the bare app, everything else (and the lifespan) to the hub."""

    def __init__(self, hub: FastAPI) -> None:
        self.hub = hub
        self.bare = bare_app(hub)
        # uvicorn looks here for nothing, but tests and tools like to reach the hub's state
        self.state = hub.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(BARE_PREFIX + "/"):
            await self.bare(scope, receive, send)
            return
        await self.hub(scope, receive, send)


def create_bench_app(settings: Settings | None = None) -> BenchDispatcher:
    """The hub as ``supervision-hub serve --no-scheduler`` builds it, with the bare routes beside it.

    The garbage collector is timed (``/bench/bare/gc``); it is tuned as in production
    (``SUPHUB_GC_TUNING``, ``run.py --gc-defaults`` to compare with CPython's defaults).
    """
    dispatcher = BenchDispatcher(create_app(settings or Settings(), run_jobs=False))
    gc.callbacks.append(_gc_timer)
    return dispatcher
