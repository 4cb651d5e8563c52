"""Rate limits (§9): a token bucket per key (defaults per role) and per source IP.

The buckets are rows updated by one atomic upsert, so every API worker and host shares them.
On PostgreSQL they live in the hub's database; on SQLite in a small file of their own
(``<data_dir>/ratelimit.db``), so a rate check never waits behind an ingest's write lock.

A bucket that cannot be read because the database is down or hung is 503 ``5001`` (never a 500):
the per-address check runs in a middleware, outside the app's error handlers, and must answer
with the same §2.1 envelope as everything else.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Table, case, delete, literal
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import create_engine
from app.errors import RateLimited, StorageUnavailable, storage_error
from app.models import RateBucket

_SWEEP_PROBABILITY = 0.01
RATE_BUCKET: Table = RateBucket.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Limit:
    rate_per_s: float
    burst: float


class RateLimiter:
    """Takes one token from a bucket, or raises 429 ``4001`` with ``Retry-After``."""

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.enabled = settings.rate_limit_enabled
        if engine.dialect.name == "sqlite":
            path = Path(settings.data_dir) / "ratelimit.db"
            self.engine = create_engine(settings, f"sqlite+aiosqlite:///{path.as_posix()}")
            self._own_engine = True
        else:
            self.engine = engine
            self._own_engine = False
        self._ready = not self._own_engine

    def limit_for_role(self, role: str) -> Limit:
        rate, burst = self.settings.rate_limit_roles.get(role, self.settings.rate_limit_roles["integrator"])
        return Limit(rate, burst)

    @property
    def ip_limit(self) -> Limit:
        rate, burst = self.settings.rate_limit_ip
        return Limit(rate, burst)

    async def take(self, bucket: str, limit: Limit) -> None:
        """Take a token; 429 ``4001`` when there is none, 503 ``5001`` when the store cannot say."""
        if not self.enabled:
            return
        try:
            tokens = await self._take(bucket, limit)
        except Exception as exc:
            if storage_error(exc) is None:
                raise
            # even a bucket update cancelled at the time limit says "the store is overloaded", not
            # "your query is too broad": the caller's request never ran
            raise StorageUnavailable() from exc
        if tokens < 0:
            wait = max(1, math.ceil(-tokens / limit.rate_per_s)) if limit.rate_per_s > 0 else 60
            raise RateLimited(
                f"请求过于频繁，请 {wait} 秒后重试 (rate limited; retry after {wait} s)",
                headers={"Retry-After": str(wait)},
            )

    async def _take(self, bucket: str, limit: Limit) -> float:
        """The bucket's tokens after taking one (negative: the caller is over its limit)."""
        if not self._ready:
            async with self.engine.begin() as conn:
                await conn.run_sync(RATE_BUCKET.create, checkfirst=True)
            self._ready = True
        now = time.time()
        table = RATE_BUCKET
        insert: Any = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(table).values(bucket=bucket[:128], tokens=limit.burst - 1, updated_at=now)
        refilled = table.c.tokens + (literal(now) - table.c.updated_at) * limit.rate_per_s
        capped = case((refilled > limit.burst, literal(limit.burst)), else_=refilled) - 1
        # a client that keeps hammering runs into debt, but never more than one burst of it
        floored = case((capped < -limit.burst, literal(-limit.burst)), else_=capped)
        stmt = stmt.on_conflict_do_update(
            index_elements=["bucket"], set_={"tokens": floored, "updated_at": now}
        ).returning(table.c.tokens)
        async with self.engine.begin() as conn:
            tokens = float((await conn.execute(stmt)).scalar_one())
            if random.random() < _SWEEP_PROBABILITY:
                # a bucket idle for a day is full again: forgetting it changes nothing
                await conn.execute(delete(table).where(table.c.updated_at < now - 86_400))
        return tokens

    async def close(self) -> None:
        if self._own_engine:
            await self.engine.dispose()
