"""The collector scheduler process (``supervision-hub scheduler``).

APScheduler 3 in its own process. Collector sources and their jobs are not built yet (see the
collectors issue); until then the process starts, says so, and waits for a signal to stop.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.config import Settings

log = logging.getLogger(__name__)


async def run_scheduler(settings: Settings) -> None:
    """Run until SIGINT / SIGTERM."""
    scheduler = AsyncIOScheduler(timezone=settings.reporting_tz)
    scheduler.start()
    log.warning("collector scheduler running with no jobs: collector sources are not built yet")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
