"""The audit chain (§9): every request as an event, appended by one writer, chained with SM3.

``hash = SM3(prev_hash ‖ canonical event)``; the canonical event is its fields (below) as JSON with
sorted keys, no spaces, UTF-8, times as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, nulls kept. Each process
has one writer task that appends queued events in small batches under the ``audit_head`` row lock,
so processes never interleave links. After each append the head is checkpointed outside the table
(``<data_dir>/audit-head.json``, only ever moving forward, and the log), so deleting the newest
events is detected as well as changing or deleting any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import write_session
from app.models import AuditCheckpoint, AuditEvent, AuditHead
from app.repositories.bulk import upsert_rows
from app.security.sm3 import sm3_hex
from app.services.log_chain import GENESIS_HASH, canonical_bytes

log = logging.getLogger(__name__)

EVENT_FIELDS = (
    "seq",
    "at",
    "app_key",
    "role",
    "method",
    "path",
    "query",
    "status",
    "records",
    "request_id",
    "source_ip",
)
HEAD_FILE = "audit-head.json"
#: a checkpoint row (where retention may cut) at least this often
CHECKPOINT_EVERY = 10_000
_INFO_EVERY_S = 60.0


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(prev_hash: str, event: dict[str, Any]) -> str:
    doc = {name: event.get(name) for name in EVENT_FIELDS}
    doc["at"] = _time(event["at"])
    return sm3_hex(prev_hash.encode("ascii") + canonical_bytes(doc))


@dataclass
class PendingEvent:
    fields: dict[str, Any]
    done: asyncio.Future[None] | None = None


# --- the head checkpoint outside the table ----------------------------------------------------
def read_head_file(data_dir: Path) -> dict[str, Any] | None:
    path = Path(data_dir) / HEAD_FILE
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"seq": None, "hash": None, "corrupt": True}
    return doc


def write_head_file(data_dir: Path, seq: int, digest: str) -> None:
    """Move the checkpoint forward (never back: several processes append to one chain)."""
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    lock_path = directory / (HEAD_FILE + ".lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = read_head_file(directory)
        if current and isinstance(current.get("seq"), int) and current["seq"] >= seq:
            return
        tmp = directory / (HEAD_FILE + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"seq": seq, "hash": digest, "at": _time(datetime.now(UTC))}))
        os.replace(tmp, directory / HEAD_FILE)


# --- the writer -------------------------------------------------------------------------------
@dataclass
class AuditWriter:
    """Queues events; one task per process appends them (at once when a caller waits)."""

    sessionmaker: async_sessionmaker[AsyncSession]
    data_dir: Path
    max_delay_s: float = 1.0
    _pending: list[PendingEvent] = field(default_factory=list)
    _wake: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None
    _last_info: float = 0.0

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")

    def submit(self, fields: dict[str, Any]) -> None:
        """A read's event: appended within ``max_delay_s``."""
        self._ensure_task()
        self._pending.append(PendingEvent(fields))

    async def commit(self, fields: dict[str, Any]) -> None:
        """A write's event: returns once it is committed (raises when it could not be)."""
        self._ensure_task()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(PendingEvent(fields, done))
        assert self._wake is not None
        self._wake.set()
        await done

    async def flush(self) -> None:
        """Append everything queued now (tests, shutdown)."""
        if self._pending:
            await self._append(self._take())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()

    def _take(self) -> list[PendingEvent]:
        batch, self._pending = self._pending, []
        return batch

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.max_delay_s)
            self._wake.clear()
            if not self._pending:
                continue
            batch = self._take()
            try:
                await self._append(batch)
            except Exception as exc:  # keep the writer alive; waiting callers learn of it
                log.error("audit append failed (%s events): %s", len(batch), type(exc).__name__)
                unsent = [p for p in batch if p.done is None]
                self._pending[:0] = unsent  # reads' events are retried with the next batch
                for pending in batch:
                    if pending.done is not None and not pending.done.done():
                        pending.done.set_exception(exc)

    async def _append(self, batch: Sequence[PendingEvent]) -> None:
        async with write_session(self.sessionmaker) as session:
            await upsert_rows(
                session,
                AuditHead.__table__,
                [{"id": 1, "last_seq": 0, "last_hash": GENESIS_HASH, "updated_at": datetime.now(UTC)}],
                key=("id",),
                update=[],
            )
            head = await session.get(AuditHead, 1, with_for_update=True, populate_existing=True)
            assert head is not None
            seq, prev = head.last_seq, head.last_hash
            rows = []
            for pending in batch:
                seq += 1
                event = {**pending.fields, "seq": seq}
                digest = event_hash(prev, event)
                rows.append({**event, "prev_hash": prev, "hash": digest})
                prev = digest
            await upsert_rows(session, AuditEvent.__table__, rows, key=("seq",), update=[])
            last_checkpoint = (
                await session.execute(select(func.max(AuditCheckpoint.seq)))
            ).scalar_one_or_none() or 0
            if seq - last_checkpoint >= CHECKPOINT_EVERY:
                session.add(AuditCheckpoint(seq=seq, hash=prev, at=datetime.now(UTC)))
            head.last_seq, head.last_hash, head.updated_at = seq, prev, datetime.now(UTC)
        for pending in batch:
            if pending.done is not None and not pending.done.done():
                pending.done.set_result(None)
        await asyncio.to_thread(write_head_file, self.data_dir, seq, prev)
        now = time.monotonic()
        level = logging.INFO if now - self._last_info >= _INFO_EVERY_S else logging.DEBUG
        if level == logging.INFO:
            self._last_info = now
        log.log(level, "audit head seq=%s hash=%s", seq, prev)


# --- who is asking ----------------------------------------------------------------------------
def source_ip(client_host: str | None, forwarded_for: str | None, trusted: Sequence[str]) -> str:
    """The peer address, or the nearest untrusted address of ``X-Forwarded-For`` behind trusted proxies."""
    peer = client_host or ""
    networks = []
    for entry in trusted:
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in net for net in networks)

    if not forwarded_for or not networks or not is_trusted(peer):
        return peer[:64]
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop[:64]
    return (hops[0] if hops else peer)[:64]


# --- verification and retention ---------------------------------------------------------------
async def verify_audit(
    session: AsyncSession, data_dir: Path, from_seq: int | None = None, to_seq: int | None = None
) -> dict[str, Any]:
    """Recompute the chain; check it against its head row and the checkpoint file."""
    head = await session.get(AuditHead, 1)
    first = (await session.execute(select(func.min(AuditEvent.seq)))).scalar_one_or_none()
    last_seq = head.last_seq if head else 0
    result: dict[str, Any] = {
        "ok": True,
        "checked": 0,
        "first_bad_seq": None,
        "reason": None,
        "head_seq": last_seq,
        "from_seq": None,
        "to_seq": None,
    }

    def bad(seq: int | None, reason: str) -> dict[str, Any]:
        result.update(ok=False, first_bad_seq=seq, reason=reason)
        return result

    if first is None:
        if last_seq == 0:
            return result
        # every event was pruned: valid only when a checkpoint holds exactly the head
        cut = await session.get(AuditCheckpoint, last_seq)
        if cut is None or head is None or cut.hash != head.last_hash:
            return bad(1, "审计事件被删除 (audit events deleted)")
        start, expected_prev = last_seq + 1, cut.hash
    else:
        start = first
        if first == 1:
            expected_prev = GENESIS_HASH
        else:
            cut = await session.get(AuditCheckpoint, first - 1)
            if cut is None:
                return bad(1, "审计日志开头被删除 (events deleted at the start of the chain)")
            expected_prev = cut.hash
    if from_seq is not None and from_seq > start:
        before = await session.get(AuditEvent, from_seq - 1)
        if before is None:
            return bad(from_seq - 1, "审计事件缺失 (audit event missing)")
        start, expected_prev = from_seq, before.hash
    end = min(to_seq, last_seq) if to_seq is not None else last_seq
    result.update(from_seq=start, to_seq=end)
    seq = start
    while seq <= end:
        rows = (
            (
                await session.execute(
                    select(AuditEvent)
                    .where(AuditEvent.seq >= seq, AuditEvent.seq <= end)
                    .order_by(AuditEvent.seq)
                    .limit(2000)
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            return bad(seq, "审计事件缺失 (audit event missing)")
        for row in rows:
            if row.seq != seq:
                return bad(seq, "审计事件缺失 (audit event missing)")
            fields = {name: getattr(row, name) for name in EVENT_FIELDS}
            if row.prev_hash != expected_prev:
                return bad(row.seq, "prev_hash 与前一事件不符 (prev_hash does not match)")
            if event_hash(row.prev_hash, fields) != row.hash:
                return bad(row.seq, "审计事件被修改 (event content does not match its hash)")
            expected_prev = row.hash
            seq += 1
            result["checked"] += 1
        session.expunge_all()
    if to_seq is None or to_seq >= last_seq:
        if head is not None and last_seq >= start and head.last_hash != expected_prev:
            return bad(last_seq, "链头与最后一个事件不符 (chain head does not match the last event)")
        checkpoint = read_head_file(data_dir)
        if checkpoint is not None:
            if checkpoint.get("corrupt"):
                return bad(None, "链头检查点文件损坏 (head checkpoint file unreadable)")
            cp_seq = int(checkpoint["seq"])
            if cp_seq > last_seq:
                return bad(
                    last_seq + 1,
                    f"最新的审计事件被删除：检查点在 {cp_seq} "
                    f"(newest events deleted; checkpoint at {cp_seq})",
                )
            if cp_seq >= start:
                at_checkpoint = await session.get(AuditEvent, cp_seq)
                if at_checkpoint is None or at_checkpoint.hash != checkpoint["hash"]:
                    return bad(cp_seq, "与链头检查点不符 (does not match the head checkpoint)")
    return result


async def prune_audit(session: AsyncSession, retention_days: int, now: datetime | None = None) -> int:
    """Delete events older than the retention, only up to a checkpoint (so verification can start there)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    checkpoint = (
        await session.execute(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.at < cutoff)
            .order_by(AuditCheckpoint.seq.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if checkpoint is None:
        return 0
    result = await session.execute(delete(AuditEvent).where(AuditEvent.seq <= checkpoint.seq))
    return int(getattr(result, "rowcount", 0) or 0)
