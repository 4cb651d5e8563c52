"""Running sources (§8): leases, run records, pages into the ingest service, back-off.

**One run per source across every process.** A run starts by taking the source's lease in one
short transaction (``UPDATE source SET lease_… WHERE lease is free or lapsed``); the holder renews
it while the run lasts and clears it at the end. Two schedulers, or four API workers pressing
"run now", therefore never poll a source twice at once; a crashed holder's lease lapses.

**No transaction open while waiting on a source.** The runner only touches the database to take
and renew the lease, to ingest a page (the ingest service's own short transaction) and to record
the outcome; the collector's HTTP calls happen in between.

**Sources are untrusted peers (§8).** Every page is authorised as a provider's push is, with the
source as the provider of the platforms it may write into: its own ``platform_code``; for a
``hub`` source, the remote platforms it registered itself (kept in ``cursor_state``) or names in
``options.platforms``, whose local and remote ``region_code`` fall under ``options.region``. A
platform it may not write into is refused when the remote announces it (nothing registered,
nothing fetched) and any record for it is counted rejected; the run's ``error`` says which and
why, and the run itself still succeeds, so one hostile or colliding platform stops no other.

**TLS (§8).** A run verifies the source's certificate against ``options.ca_file`` when it names
one (public CAs otherwise); ``options.tls_verify: false`` fails the run in production, even for a
source saved while the hub ran in development.

**Full runs are snapshots.** The asset pages of a full run carry ``snapshot`` ``{id: run, seq}``
per platform; the runner holds each platform's latest page back and sends it with ``last: true``
only when the collector finished without error — so a run that fails halfway retires nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from pydantic import ValidationError
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.middleware import new_request_id
from app.collectors.base import Collector, RunContext, RunMode, SourceConfig
from app.collectors.errors import SourceDataError, SourceError
from app.collectors.http import SourceHTTP, source_tls
from app.collectors.hub import PlatformRefused
from app.collectors.registry import collector_class
from app.config import Settings
from app.db import write_session
from app.errors import AppError
from app.models import Platform, Source, SourceRun
from app.schemas.common import PlatformCreate
from app.schemas.types import normalise_region
from app.security.keys import ServerKey
from app.security.principal import Principal
from app.services.ingest.service import IngestService, push_authorizer
from app.services.platforms import PlatformExists, create_platform

log = logging.getLogger(__name__)

ENV_PREFIX = "SUPHUB_SOURCE_"
#: a failing source waits interval × 2^failures, at most this long, before it is tried again
MAX_BACKOFF = timedelta(hours=1)
#: full runs (complete snapshots) at least this often unless ``options.full_every_s`` says otherwise
DEFAULT_FULL_EVERY_S = 86_400
#: ``cursor_state`` key of the platforms a ``hub`` source registered itself (the ones it may write)
REGISTERED = "registered_platforms"


def resolve_credentials(raw: dict[str, Any]) -> dict[str, str]:
    """Credential values, with ``{"env": "SUPHUB_SOURCE_…"}`` read from the hub's environment now."""
    out: dict[str, str] = {}
    for name, value in raw.items():
        if isinstance(value, dict):
            variable = str(value.get("env", ""))
            if not variable.startswith(ENV_PREFIX):
                raise SourceError(
                    f"凭据 {name} 的环境变量须以 {ENV_PREFIX} 开头 (env must start with {ENV_PREFIX})"
                )
            if variable not in os.environ:
                raise SourceError(f"环境变量 {variable} 未设置 (environment variable {variable} is not set)")
            out[name] = os.environ[variable]
        else:
            out[name] = str(value)
    return out


def seal_credentials(server_key: ServerKey, credentials: dict[str, Any] | None) -> bytes | None:
    return None if credentials is None else server_key.encrypt(orjson.dumps(credentials))


def open_credentials(server_key: ServerKey, sealed: bytes | None) -> dict[str, Any]:
    return {} if sealed is None else dict(orjson.loads(server_key.decrypt(sealed)))


def backoff_after(failures: int, interval_s: int) -> timedelta:
    """How long a source that failed ``failures`` times in a row waits (with jitter)."""
    base = timedelta(seconds=interval_s) * (2 ** min(failures, 16))
    wait: timedelta = min(MAX_BACKOFF, base) * random.uniform(0.8, 1.2)
    return wait


def is_stale(source: Source, now: datetime) -> bool:
    """No successful run within two intervals (or a back-off in progress)."""
    if source.last_success_at is None:
        return True
    return source.consecutive_failures > 0 or now - source.last_success_at > timedelta(
        seconds=2 * source.interval_s
    )


@dataclass
class RunTotals:
    pages: int = 0
    records: int = 0
    accepted: int = 0
    rejected: int = 0
    #: platform → (why this source may not write into it, records rejected for it)
    refused: dict[str, tuple[str, int]] = field(default_factory=dict)

    def refuse(self, platform_code: str, reason: str, records: int) -> None:
        """Records for a platform the source may not write into: counted received and rejected."""
        self.records += records
        self.rejected += records
        earlier = self.refused.get(platform_code, (reason, 0))[1]
        self.refused[platform_code] = (reason, earlier + records)

    def refusal_note(self) -> str | None:
        """What the run record says about refused platforms (``None`` when there were none)."""
        if not self.refused:
            return None
        parts = [
            f"{code}{f'（{n} 条）' if n else ''}: {why}" for code, (why, n) in sorted(self.refused.items())
        ]
        heading = "采集源无权写入以下云平台，记录已拒绝 (rejected: platforms the source may not write into)"
        return f"{heading}: {'；'.join(parts)}"


class PlatformGate:
    """The platforms one run of a source may write into (§8 "Sources are untrusted peers")."""

    def __init__(self, config: SourceConfig, mirrors: bool, state: dict[str, Any]) -> None:
        self.mirrors = mirrors
        listed = config.options.get("platforms") if mirrors else None
        self.listed: set[str] | None = {str(p) for p in listed} if isinstance(listed, list) else None
        region = config.options.get("region") if mirrors else None
        self.region: str | None = normalise_region(str(region)) if region else None
        self.registered: set[str] = {str(p) for p in state.get(REGISTERED, [])} if mirrors else set()
        self.allowed: set[str] = set() if mirrors or config.platform_code is None else {config.platform_code}
        self.refused: dict[str, str] = {}

    def _under(self, region_code: str) -> bool:
        return self.region is None or normalise_region(region_code).startswith(self.region)

    def verdict(self, code: str, remote_region: str, local: Platform | None) -> str | None:
        """Why the source may not write into ``code`` (``None``: it may), given both views of it."""
        reasons: list[str] = []
        if self.listed is not None and code not in self.listed:
            reasons.append("不在 options.platforms 中 (not listed in options.platforms)")
        if not self._under(remote_region):
            reasons.append(
                f"远端区划 {remote_region} 不在 {self.region} 内 (remote region_code outside options.region)"
            )
        if local is not None:
            if code not in self.registered and code not in (self.listed or ()):
                reasons.append(
                    "本地已有此云平台，既非本采集源登记也未列入 options.platforms "
                    "(exists here, neither registered by this source nor listed in options.platforms)"
                )
            if not self._under(local.region_code):
                reasons.append(
                    f"本地区划 {local.region_code} 不在 {self.region} 内 "
                    "(local region_code outside options.region)"
                )
        return "；".join(reasons) or None

    def refusal(self, code: str) -> str | None:
        """Why a page for ``code`` is rejected, or ``None`` when the source may write into it."""
        if code in self.allowed:
            return None
        return self.refused.get(code, "远端未列出此云平台 (the remote did not list this platform)")

    def principal(self, source_id: str) -> Principal:
        """The source as the provider of the platforms it may write into (a push's authorisation)."""
        return Principal(app_key=f"source:{source_id}", role="provider", platforms=frozenset(self.allowed))


class CollectorRunner:
    """Starts and executes runs for one process (``owner`` names it in the leases)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        server_key: ServerKey,
        *,
        owner: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.server_key = server_key
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{new_request_id()[-6:]}"
        self.transport = transport
        self.tasks: set[asyncio.Task[None]] = set()

    # --- starting ---------------------------------------------------------------------------
    async def start(self, source_id: str, *, trigger: str, mode: RunMode | None = None) -> tuple[str, bool]:
        """Take the lease and record a running run: ``(run_id, True)``; or the run in progress, ``False``."""
        now = datetime.now(UTC)
        run_id = new_request_id()
        async with write_session(self.sessionmaker) as session:
            source = await session.get(Source, source_id)
            if source is None:
                raise LookupError(source_id)
            free = or_(Source.lease_expires_at.is_(None), Source.lease_expires_at < now)
            conditions = [Source.source_id == source_id, free]
            if trigger == "schedule":
                # still due when the lease is taken: another process may have just run it
                conditions += [
                    Source.enabled.is_(True),
                    or_(Source.next_run_at.is_(None), Source.next_run_at <= now),
                ]
            taken = await session.execute(
                update(Source)
                .where(*conditions)
                .values(
                    lease_owner=self.owner,
                    lease_run_id=run_id,
                    lease_expires_at=now + timedelta(seconds=self.settings.collector_lease_s),
                )
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                await session.refresh(source)
                return str(source.lease_run_id or ""), False
            session.add(
                SourceRun(
                    run_id=run_id,
                    source_id=source_id,
                    started_at=now,
                    status="running",
                    mode=mode or self._mode(source, now),
                    trigger=trigger,
                    pages=0,
                    records=0,
                    accepted=0,
                    rejected=0,
                )
            )
        return run_id, True

    @staticmethod
    def _mode(source: Source, now: datetime) -> RunMode:
        last_full = (source.cursor_state or {}).get("last_full_at")
        every = int((source.options or {}).get("full_every_s", DEFAULT_FULL_EVERY_S))
        if not last_full or now - datetime.fromisoformat(last_full) >= timedelta(seconds=every):
            return "full"
        return "incremental"

    def spawn(self, source_id: str, run_id: str) -> asyncio.Task[None]:
        """Execute a started run in the background (kept referenced until it ends)."""
        task = asyncio.create_task(self.execute(source_id, run_id), name=f"source-run {source_id} {run_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def run_now(self, source_id: str, *, mode: RunMode | None = None) -> tuple[str, bool]:
        run_id, started = await self.start(source_id, trigger="manual", mode=mode)
        if started:
            self.spawn(source_id, run_id)
        return run_id, started

    async def tick(self) -> list[str]:
        """Start every enabled source that is due and not running anywhere; returns the run ids."""
        now = datetime.now(UTC)
        async with self.sessionmaker() as session:
            due = (
                (
                    await session.execute(
                        select(Source.source_id)
                        .where(
                            Source.enabled.is_(True),
                            or_(Source.next_run_at.is_(None), Source.next_run_at <= now),
                            or_(Source.lease_expires_at.is_(None), Source.lease_expires_at < now),
                        )
                        .order_by(Source.next_run_at)
                    )
                )
                .scalars()
                .all()
            )
        started = []
        for source_id in due:
            run_id, fresh = await self.start(source_id, trigger="schedule")
            if fresh:
                self.spawn(source_id, run_id)
                started.append(run_id)
        return started

    async def wait_idle(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel runs in progress (shutdown): each records itself failed and frees its lease."""
        for task in list(self.tasks):
            task.cancel()
        await self.wait_idle()

    # --- executing --------------------------------------------------------------------------
    async def execute(self, source_id: str, run_id: str) -> None:
        """Run a started run to its end and record how it went (never raises)."""
        totals = RunTotals()
        error: str | None = None
        state: dict[str, Any] = {}
        mode: RunMode = "incremental"
        heartbeat = asyncio.create_task(self._heartbeat(source_id, run_id))
        try:
            async with self.sessionmaker() as session:
                source = await session.get(Source, source_id)
                run = await session.get(SourceRun, run_id)
                if source is None or run is None:
                    return
                mode = "full" if run.mode == "full" else "incremental"
                state = dict(source.cursor_state or {})
                config = SourceConfig(
                    source_id=source.source_id,
                    platform_code=source.platform_code,
                    type=source.type,
                    base_url=source.base_url,
                    interval_s=source.interval_s,
                    kinds=tuple(source.kinds),
                    options=dict(source.options or {}),
                    credentials=resolve_credentials(
                        open_credentials(self.server_key, source.credentials_ciphertext)
                    ),
                )
            try:
                collector_type = collector_class(config.type)
            except (LookupError, ImportError):
                raise SourceError(f"未知的采集源类型 {config.type!r} (unknown source type)") from None
            collector = collector_type(config)
            async with asyncio.timeout(self.settings.collector_run_timeout_s):
                await self._collect(collector, config, run_id, mode, state, totals)
        except SourceError as exc:
            error = str(exc)
        except TimeoutError:
            error = f"运行超过 {self.settings.collector_run_timeout_s} 秒 (run timed out)"
        except asyncio.CancelledError:
            error = "hub 停止，运行中断 (the hub stopped during the run)"
        except Exception as exc:  # a collector bug must still end the run and free the lease
            log.exception("source %s run %s failed", source_id, run_id)
            error = f"内部错误 (internal error): {type(exc).__name__}"
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await asyncio.shield(self._finish(source_id, run_id, mode, state, totals, error))

    async def _collect(
        self,
        collector: Collector,
        config: SourceConfig,
        run_id: str,
        mode: RunMode,
        state: dict[str, Any],
        totals: RunTotals,
    ) -> None:
        service = IngestService(self.sessionmaker, self.settings)
        gate = PlatformGate(config, collector.mirrors_platforms, state)
        held: dict[str, list[dict[str, Any]]] = {}
        snapshot_seq: dict[str, int] = {}
        asset_types = collector.snapshot_asset_types()

        async def ingest(kind: str, records: list[dict[str, Any]], platform_code: str, snapshot: Any) -> None:
            totals.pages += 1
            totals.records += len(records)
            envelope: dict[str, Any] = {
                "batch_id": f"src:{config.source_id}:{run_id}:{totals.pages}",
                "platform_code": platform_code,
                "collected_at": datetime.now(UTC).isoformat(),
                "records": records,
            }
            if snapshot is not None:
                envelope["snapshot"] = snapshot
            try:
                outcome = await service.accept_batch(
                    kind,
                    orjson.dumps(envelope),
                    reporter=f"source:{config.source_id}",
                    authorize=push_authorizer(gate.principal(config.source_id)),
                )
            except AppError as exc:
                raise SourceError(
                    f"第 {totals.pages} 页 ({kind}) 未被接收 (page refused): {exc.message}"
                ) from None
            totals.accepted += int(outcome.receipt.get("accepted", 0))
            totals.rejected += int(outcome.receipt.get("rejected", 0))

        async def snapshot_page(platform_code: str, records: list[dict[str, Any]], last: bool) -> None:
            snapshot_seq[platform_code] = snapshot_seq.get(platform_code, 0) + 1
            snapshot: dict[str, Any] = {
                "id": f"src:{config.source_id}:{run_id}",
                "seq": snapshot_seq[platform_code],
                "last": last,
            }
            if asset_types is not None:
                snapshot["asset_types"] = asset_types
            await ingest("assets", records, platform_code, snapshot)

        async def emit(kind: str, records: list[dict[str, Any]], platform_code: str | None) -> None:
            target = platform_code or config.platform_code
            if target is None:
                raise SourceError("记录未指明云平台 (a page names no platform)")
            if target != config.platform_code and not collector.mirrors_platforms:
                raise SourceError(
                    f"采集源只能上报云平台 {config.platform_code} 的数据 (other platform {target})"
                )
            if kind not in config.kinds and not (kind == "rooms" and "environment" in config.kinds):
                return  # rooms come with environment data: samples need their room
            refusal = gate.refusal(target)
            if refusal is not None:
                totals.refuse(target, refusal, len(records))
                return
            step = self.settings.max_records_per_batch
            for start in range(0, len(records), step):
                part = records[start : start + step]
                if mode == "full" and kind == "assets":
                    earlier = held.get(target)
                    held[target] = part
                    if earlier is not None:
                        await snapshot_page(target, earlier, last=False)
                else:
                    await ingest(kind, part, target, None)

        async def ensure_platform(remote: dict[str, Any]) -> bool:
            created = await self._ensure_platform(remote, config.source_id, gate, state)
            code = str(remote.get("platform_code"))
            refusal = gate.refusal(code)
            if refusal is not None:
                totals.refuse(code, refusal, 0)
                raise PlatformRefused(refusal)
            return created

        # the source's CA bundle, read now (it may have changed since it was saved), and
        # ``tls_verify: false`` refused when this hub serves in production, whenever it was saved
        tls = await asyncio.to_thread(
            source_tls, config.options, production=self.settings.env == "production"
        )
        started = datetime.now(UTC)
        async with SourceHTTP(
            config.base_url,
            allowed_hosts=self.settings.allowed_source_hosts(),
            max_response_bytes=self.settings.source_max_response_bytes,
            transport=self.transport,
            timeout=httpx.Timeout(
                self.settings.collector_request_timeout_s,
                connect=min(10.0, self.settings.collector_request_timeout_s),
            ),
            backoff_s=self.settings.collector_backoff_s,
            verify=tls,
        ) as http:
            ctx = RunContext(
                run_id=run_id,
                mode=mode,
                started_at=started,
                http=http,
                state=state,
                _emit=emit,
                _ensure_platform=ensure_platform if collector.mirrors_platforms else None,
            )
            await collector.run(ctx)
        for platform_code, records in sorted(held.items()):
            await snapshot_page(platform_code, records, last=True)
        if ctx.skipped:
            log.warning(
                "source %s run %s skipped %d records: %s",
                config.source_id,
                run_id,
                ctx.skipped,
                ctx.skip_reasons[:3],
            )
        # records the collector could not map count as received and rejected
        totals.records += ctx.skipped
        totals.rejected += ctx.skipped
        if mode == "full":
            state["last_full_at"] = started.isoformat()

    async def _ensure_platform(
        self, remote: dict[str, Any], source_id: str, gate: PlatformGate, state: dict[str, Any]
    ) -> bool:
        """Decide whether the source may write into a platform another hub announces, registering
        it (first sight only, with the fields the remote shows) when it is new here and in bounds.

        A platform the source registers is remembered in its ``cursor_state`` in the same
        transaction, so later runs (and a failed one) know it is the source's own.
        """
        fields = {
            name: remote.get(name) for name in PlatformCreate.model_fields if remote.get(name) is not None
        }
        try:
            spec = PlatformCreate.model_validate(fields)
        except ValidationError as exc:
            raise SourceDataError(
                f"远端云平台信息不完整 (remote platform unusable): {exc.errors()[:1]}"
            ) from None
        code = spec.platform_code
        async with self.sessionmaker() as session:
            local = await session.get(Platform, code)
        reason = gate.verdict(code, spec.region_code, local)
        if reason is None and local is None:
            try:
                async with write_session(self.sessionmaker) as session:
                    await create_platform(session, spec)
                    source = await session.get(Source, source_id)
                    if source is not None:
                        stored = dict(source.cursor_state or {})
                        stored[REGISTERED] = sorted({*stored.get(REGISTERED, []), code})
                        source.cursor_state = stored
            except (PlatformExists, IntegrityError):  # registered by someone else meanwhile: theirs
                async with self.sessionmaker() as session:
                    local = await session.get(Platform, code)
                reason = gate.verdict(code, spec.region_code, local)
            else:
                gate.registered.add(code)
                state[REGISTERED] = sorted(gate.registered)
                gate.allowed.add(code)
                log.info("platform %s registered from hub source %s", code, source_id)
                return True
        if reason is None:
            gate.allowed.add(code)
        else:
            gate.refused[code] = reason
            log.warning("hub source %s may not write into platform %s: %s", source_id, code, reason)
        return False

    async def _heartbeat(self, source_id: str, run_id: str) -> None:
        every = max(1.0, self.settings.collector_lease_s / 3)
        while True:
            await asyncio.sleep(every)
            async with write_session(self.sessionmaker) as session:
                await session.execute(
                    update(Source)
                    .where(Source.source_id == source_id, Source.lease_run_id == run_id)
                    .values(
                        lease_expires_at=datetime.now(UTC)
                        + timedelta(seconds=self.settings.collector_lease_s)
                    )
                    .execution_options(synchronize_session=False)
                )

    async def _finish(
        self,
        source_id: str,
        run_id: str,
        mode: RunMode,
        state: dict[str, Any],
        totals: RunTotals,
        error: str | None,
    ) -> None:
        now = datetime.now(UTC)
        async with write_session(self.sessionmaker) as session:
            run = await session.get(SourceRun, run_id)
            source = await session.get(Source, source_id)
            if run is not None:
                run.status = "failed" if error else "success"
                run.finished_at = now
                note = "；".join(m for m in (error, totals.refusal_note()) if m)
                run.error = note[:2000] if note else None
                run.pages, run.records = totals.pages, totals.records
                run.accepted, run.rejected = totals.accepted, totals.rejected
            if source is None or source.lease_run_id != run_id:
                return  # deleted, or the lease lapsed and another run took over
            if error:
                source.consecutive_failures += 1
                source.next_run_at = now + backoff_after(source.consecutive_failures, source.interval_s)
            else:
                source.consecutive_failures = 0
                source.last_success_at = now
                source.cursor_state = state
                source.next_run_at = now + timedelta(seconds=source.interval_s)
            source.lease_owner = source.lease_run_id = None
            source.lease_expires_at = None
        if error:
            log.warning("source %s run %s failed: %s", source_id, run_id, error)
