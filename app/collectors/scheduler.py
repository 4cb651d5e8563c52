"""The hub's background jobs on APScheduler: collector sources, rollups, partitions and retention.

``supervision-hub scheduler`` runs them in a process of their own; ``supervision-hub serve`` runs
them inside the API process unless ``--no-scheduler`` is given. Running them in more than one
process is safe: a platform's rollups are built under its ``rollup_state`` row lock, partition
creation tolerates a twin, retention deletes are idempotent, and a source runs only under its
lease (:mod:`app.collectors.runner`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.collectors.runner import CollectorRunner
from app.config import Settings
from app.db import create_engine, create_job_sessionmaker, create_sessionmaker
from app.security.keys import load_server_key
from app.services.environment_states import reevaluate_marked
from app.services.periods import run_freeze_job
from app.services.retention import maintain
from app.services.rollups import build_rollups
from app.services.warnings import evaluate_warnings

log = logging.getLogger(__name__)

#: §7.8: warning rules are evaluated every minute (docs/indicators.md)
WARNINGS_INTERVAL_S = 60


def build_scheduler(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    runner: CollectorRunner | None = None,
) -> AsyncIOScheduler:
    """A scheduler holding the hub's jobs; each job runs once at start, then on its interval.

    With a ``runner``, a tick every ``SUPHUB_COLLECTOR_TICK_S`` starts the sources that are due
    (their runs go on in the background; the lease keeps each source to one run at a time).
    """
    # the jobs' statements get their own limit, also on an engine shared with the API (§13)
    sessionmaker = create_job_sessionmaker(sessionmaker.kw["bind"], settings)
    scheduler = AsyncIOScheduler(timezone=settings.reporting_tz)
    # a line per job run (every few seconds) drowns the log; failures are logged by the jobs
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)

    async def rollups() -> None:
        try:
            await build_rollups(sessionmaker, settings)
        except Exception:  # a failed run is retried at the next interval
            log.exception("rollup job failed")
        try:  # samples whose thresholds changed (§6.6), on the same cadence
            await reevaluate_marked(sessionmaker)
        except Exception:
            log.exception("environment re-evaluation failed")

    async def maintenance() -> None:
        try:
            await maintain(sessionmaker, settings)
        except Exception:
            log.exception("maintenance job failed (partitions, retention)")

    async def warnings() -> None:
        try:
            await evaluate_warnings(
                sessionmaker,
                now=datetime.now(UTC),
                reporting_tz=settings.reporting_tz,
                raw_retention_days=settings.retention_metrics_days,
            )
        except Exception:
            log.exception("warning evaluation failed")

    async def closed_periods() -> None:
        try:
            await run_freeze_job(
                sessionmaker,
                now=datetime.now(UTC),
                reporting_tz=settings.reporting_tz,
                raw_retention_days=settings.retention_metrics_days,
            )
        except Exception:
            log.exception("freezing closed periods failed")

    now = datetime.now(UTC)
    common = {"max_instances": 1, "coalesce": True, "next_run_time": now}
    scheduler.add_job(
        maintenance, "interval", seconds=settings.maintenance_interval_s, id="maintenance", **common
    )
    scheduler.add_job(rollups, "interval", seconds=settings.rollup_interval_s, id="rollups", **common)
    scheduler.add_job(warnings, "interval", seconds=WARNINGS_INTERVAL_S, id="warnings", **common)
    scheduler.add_job(
        closed_periods, "interval", seconds=settings.maintenance_interval_s, id="closed_periods", **common
    )
    if runner is not None:

        async def collectors() -> None:
            try:
                await runner.tick()
            except Exception:
                log.exception("collector tick failed")

        scheduler.add_job(
            collectors, "interval", seconds=settings.collector_tick_s, id="collectors", **common
        )
    return scheduler


async def run_scheduler(settings: Settings) -> None:
    """Run until SIGINT / SIGTERM."""
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    runner = CollectorRunner(sessionmaker, settings, load_server_key(settings))
    scheduler = build_scheduler(settings, sessionmaker, runner)
    scheduler.start()
    log.info(
        "scheduler running: rollups every %d s, maintenance every %d s",
        settings.rollup_interval_s,
        settings.maintenance_interval_s,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        await runner.stop()
        await engine.dispose()
