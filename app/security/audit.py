"""The audit chain (§9): every request as an event, appended by one writer, chained with HMAC-SM3.

``hash = HMAC-SM3(chain key, prev_hash ‖ canonical event)``; the canonical event is its fields
(:data:`KEYED_FIELDS`: who asked, ``actor``, among them) as JSON with sorted keys, no spaces, UTF-8,
times as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, nulls kept.
The chain key is derived from the server key and stored sealed under it (``audit_chain_key``, one
row per key with the ``seq`` from which it applies; ``keys rotate`` re-seals them and starts a new
one), so someone who can write the database but does not hold the server key cannot re-chain an
edited event. Events of a hub from before the keyed chain stay a plain ``SM3(prev ‖ event)`` chain
up to ``audit_head.keyed_from``, over the fields they were chained with (:data:`EVENT_FIELDS`, no
actor: theirs is filled in by migration 0014 from their key and role, and checked against that rule);
verification checks both parts.

Each process has one writer task that appends queued events in small batches under the
``audit_head`` row lock, so processes never interleave links. After each append the head is
checkpointed outside the table (``<data_dir>/audit-head.json``, 0600, and the log): it moves only
forward, and only once the stored hash at its previous ``seq`` is still the one it recorded, so
deleting the newest events or re-chaining old ones is detected, and a missing file is reported.

A write's event is committed before its answer; when that commit fails (the store is away) the
answer is 503 and the event waits in a bounded in-memory backlog that the writer chains once the
store answers again (what does not fit is counted and said in the log, in one line).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import contextvars
import fcntl
import ipaddress
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import store_failed, write_session
from app.errors import StorageUnavailable
from app.models import AuditCheckpoint, AuditEvent, AuditHead
from app.models.audit import ACTOR_MAX, AuditChainKey
from app.repositories.bulk import upsert_rows
from app.security.keys import ServerKey
from app.security.sm3 import hmac_sm3, sm3_hex
from app.services.log_chain import GENESIS_HASH, canonical_bytes

log = logging.getLogger(__name__)

#: the fields the plain SM3 chain (events before ``keyed_from``) covers
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
#: the fields the keyed chain covers: the plain ones and who asked (§9)
KEYED_FIELDS = (*EVENT_FIELDS, "actor")
ANONYMOUS = "anonymous"
HEAD_FILE = "audit-head.json"
#: a checkpoint row (where retention may cut) at least this often
CHECKPOINT_EVERY = 10_000
_INFO_EVERY_S = 60.0
#: a complaint about the checkpoint or the store at most this often (not once per batch)
_COMPLAIN_EVERY_S = 60.0
_KEY_PURPOSE = "audit-chain"


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(prev_hash: str, event: dict[str, Any], key: bytes | None = None) -> str:
    """The link of ``event``: HMAC-SM3 under ``key`` over :data:`KEYED_FIELDS`; without a key, plain
    SM3 over :data:`EVENT_FIELDS` (the pre-keyed chain, written before events named their actor)."""
    doc = {name: event.get(name) for name in (EVENT_FIELDS if key is None else KEYED_FIELDS)}
    doc["at"] = _time(event["at"])
    message = prev_hash.encode("ascii") + canonical_bytes(doc)
    return sm3_hex(message) if key is None else hmac_sm3(key, message).hex()


def key_actor(app_key: str) -> str:
    return f"key:{app_key}"


def legacy_actor(app_key: str | None, role: str | None) -> str:
    """The actor of an event chained before events named one (migration 0014 fills it in so): a
    role was recorded only for an authenticated key; any other request was anonymous."""
    return key_actor(app_key) if role is not None and app_key is not None else ANONYMOUS


def request_actor(named: object, app_key: str | None) -> str:
    """Who asked (§9): what the route named (``state.audit_actor``: the console's ``user:<name>``,
    or the name a failed login claimed), else the key that was accepted, else ``anonymous`` (a key
    only claimed, even a well-formed one, is not who asked: it stays in ``app_key``)."""
    if named:
        return str(named)[:ACTOR_MAX]
    return key_actor(app_key) if app_key is not None else ANONYMOUS


# --- chain keys -------------------------------------------------------------------------------
class ChainKeyError(Exception):
    """A stored chain key cannot be opened with the configured server keys (or was tampered with)."""


def new_chain_key(server_key: ServerKey, from_seq: int) -> bytes:
    return server_key.derive(f"{_KEY_PURPOSE}|{from_seq}")


def _sealed_prefix(from_seq: int) -> bytes:
    # the row's seq is sealed with the key, so a key cannot be moved to another row
    return f"{_KEY_PURPOSE}|{from_seq}|".encode()


def seal_chain_key(server_key: ServerKey, from_seq: int, key: bytes) -> bytes:
    return server_key.encrypt(_sealed_prefix(from_seq) + key)


def unseal_chain_key(server_key: ServerKey, from_seq: int, sealed: bytes) -> bytes:
    try:
        plain = server_key.decrypt(bytes(sealed))
    except Exception as exc:  # no such server key, or the ciphertext was changed
        raise ChainKeyError(
            f"审计链密钥（自 seq {from_seq} 起）无法解封：{exc} "
            f"(the audit chain key from seq {from_seq} cannot be unsealed)"
        ) from None
    prefix = _sealed_prefix(from_seq)
    if not plain.startswith(prefix) or len(plain) != len(prefix) + 32:
        raise ChainKeyError(
            f"审计链密钥（自 seq {from_seq} 起）不属于该位置 (the audit chain key from seq {from_seq} "
            "was moved there)"
        )
    return plain[len(prefix) :]


async def reseal_chain_keys(session: AsyncSession, old: ServerKey, new: ServerKey) -> int:
    """``keys rotate``: re-seal every chain key under ``new`` and start a key derived from it for the
    events after the head (under the head lock); returns how many keys were re-sealed."""
    head = (
        await session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update())
    ).scalar_one_or_none()
    rows = list(
        (
            await session.execute(select(AuditChainKey).order_by(AuditChainKey.from_seq).with_for_update())
        ).scalars()
    )
    for row in rows:
        key = unseal_chain_key(old, row.from_seq, row.sealed)
        row.sealed, row.key_id = seal_chain_key(new, row.from_seq, key), new.key_id
    if head is not None:
        next_seq = head.last_seq + 1
        key = new_chain_key(new, next_seq)
        unused = next((row for row in rows if row.from_seq == next_seq), None)  # no event chained yet
        if unused is not None:
            unused.sealed = seal_chain_key(new, next_seq, key)
        else:
            session.add(
                AuditChainKey(from_seq=next_seq, key_id=new.key_id, sealed=seal_chain_key(new, next_seq, key))
            )
    await session.flush()
    return len(rows)


@dataclass
class PendingEvent:
    fields: dict[str, Any]
    done: asyncio.Future[None] | None = None


# --- the head checkpoint outside the table ----------------------------------------------------
def read_head_file(data_dir: Path) -> dict[str, Any] | None:
    path = Path(data_dir) / HEAD_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"seq": None, "hash": None, "corrupt": True}
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("seq"), int)
        or not isinstance(doc.get("hash"), str)
    ):
        return {"seq": None, "hash": None, "corrupt": True}
    return doc


def _same_checkpoint(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.get("seq"), a.get("hash")) == (b.get("seq"), b.get("hash"))


def write_head_file(
    data_dir: Path,
    seq: int,
    digest: str,
    keyed_from: int | None = None,
    *,
    expect: dict[str, Any] | None = None,
    force: bool = False,
) -> bool:
    """Move the checkpoint forward, from the one checked (``expect``) only, or not at all.

    Several processes append to one chain, so it never moves back: ``True`` when it holds ``seq``
    or later afterwards, ``False`` when another process moved it since ``expect`` was read (check
    again from there). ``force`` writes it whatever it holds (an operator renewing it).
    """
    directory = Path(data_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock_fd = os.open(directory / (HEAD_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    with contextlib.suppress(OSError):  # one made 0644 by an older hub
        os.fchmod(lock_fd, 0o600)
    with os.fdopen(lock_fd, "r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = read_head_file(directory)
        if not force:
            if current and isinstance(current.get("seq"), int) and current["seq"] >= seq:
                return True
            if not _same_checkpoint(current, expect):
                return False
        doc: dict[str, Any] = {"seq": seq, "hash": digest, "at": _time(datetime.now(UTC))}
        if keyed_from is not None:
            doc["keyed_from"] = keyed_from
        tmp = directory / (HEAD_FILE + f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(doc))
        os.replace(tmp, directory / HEAD_FILE)
    return True


async def _stored_hash(session: AsyncSession, seq: int) -> str | None:
    """The hash the table holds for ``seq`` (an event, or a checkpoint row where retention cut)."""
    stored = (
        await session.execute(select(AuditEvent.hash).where(AuditEvent.seq == seq))
    ).scalar_one_or_none()
    if stored is None:
        stored = (
            await session.execute(select(AuditCheckpoint.hash).where(AuditCheckpoint.seq == seq))
        ).scalar_one_or_none()
    return stored


async def _checkpoint_holds(session: AsyncSession, checkpoint: dict[str, Any] | None) -> bool:
    if checkpoint is None or checkpoint.get("corrupt"):
        return False
    return bool(await _stored_hash(session, int(checkpoint["seq"])) == checkpoint["hash"])


# --- the writer -------------------------------------------------------------------------------
@dataclass
class AuditWriter:
    """Queues events; one task per process appends them (at once when a caller waits)."""

    sessionmaker: async_sessionmaker[AsyncSession]
    data_dir: Path
    #: the current server key, asked at every append, so a key rotated beside a running hub is used
    #: from its next append (``lambda: server_key_for(app.state)``)
    server_key: Callable[[], ServerKey]
    #: events kept while the store is away (``SUPHUB_AUDIT_BACKLOG_MAX``)
    backlog_max: int = 10_000
    max_delay_s: float = 1.0
    _pending: list[PendingEvent] = field(default_factory=list)
    _backlog: list[dict[str, Any]] = field(default_factory=list)
    _lost: int = 0
    _failing_since: float | None = None
    _wake: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None
    _last_info: float = 0.0
    _last_complaint: dict[str, float] = field(default_factory=dict)
    #: unsealed chain keys by their sealed form (a re-sealed key is opened once more)
    _keys: dict[bytes, bytes] = field(default_factory=dict)

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            # in a context of its own: not the request's that happened to start it (app/db.py)
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="audit-writer", context=contextvars.Context()
            )

    def submit(self, fields: dict[str, Any]) -> None:
        """A read's event: appended within ``max_delay_s``."""
        self._ensure_task()
        self._pending.append(PendingEvent(fields))

    async def commit(self, fields: dict[str, Any]) -> None:
        """A write's event: returns once it is committed (raises when it could not be)."""
        if store_failed():  # this request waited for the store once already: 503 at once (§13)
            raise StorageUnavailable("审计日志暂不可写，请稍后重试 (audit log unavailable; retry later)")
        self._ensure_task()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(PendingEvent(fields, done))
        assert self._wake is not None
        self._wake.set()
        await done

    def defer(self, fields: dict[str, Any]) -> None:
        """An event whose commit failed (the store is away): chained once the store answers again."""
        self._ensure_task()
        self._keep([fields])

    def _keep(self, events: Sequence[dict[str, Any]]) -> None:
        room = max(self.backlog_max - len(self._backlog), 0)
        self._backlog.extend(events[:room])
        if len(events) > room:
            if self._lost == 0:
                log.error(
                    "审计积压已满（%s 条），其后的事件只计数 (audit backlog full at %s events: further "
                    "events are counted, not kept)",
                    self.backlog_max,
                    self.backlog_max,
                )
            self._lost += len(events) - room

    async def flush(self) -> None:
        """Append everything queued now, the backlog first (tests, verification, shutdown)."""
        batch = self._take()
        if batch:
            await self._append_or_keep(batch)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()
        unrecorded = len(self._backlog) + self._lost
        if unrecorded:
            log.error(
                "审计：%s 条事件未能记录，存储不可用 (audit: %s events not recorded: the store was "
                "unavailable until shutdown)",
                unrecorded,
                unrecorded,
            )
            self._backlog, self._lost = [], 0

    def _take(self) -> list[PendingEvent]:
        backlog = [PendingEvent(fields) for fields in self._backlog]
        batch, self._pending, self._backlog = backlog + self._pending, [], []
        return batch

    async def _append_or_keep(self, batch: list[PendingEvent]) -> None:
        """Append ``batch``; when the store refuses, keep reads' events in the backlog (writes'
        callers learn of it and :meth:`defer` theirs) and raise."""
        try:
            await self._append(batch)
        except Exception as exc:
            self._keep([p.fields for p in batch if p.done is None])
            for pending in batch:
                if pending.done is not None and not pending.done.done():
                    pending.done.set_exception(exc)
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
            if self._complain_due("store", now):
                log.error(
                    "audit append failed (%s events, %s waiting): %s",
                    len(batch),
                    len(self._backlog),
                    type(exc).__name__,
                )
            raise
        if self._failing_since is not None or self._lost:
            self._failing_since = None
            self._last_complaint.pop("store", None)
            if self._lost:
                log.error(
                    "审计：存储不可用期间 %s 条事件未能记录（积压上限 %s）(audit: %s events not recorded "
                    "while the store was unavailable; backlog limit %s)",
                    self._lost,
                    self.backlog_max,
                    self._lost,
                    self.backlog_max,
                )
                self._lost = 0
            else:
                log.info("audit store answers again: the backlog is chained")

    def _complain_due(self, kind: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        last = self._last_complaint.get(kind)
        if last is not None and now - last < _COMPLAIN_EVERY_S:
            return False
        self._last_complaint[kind] = now
        return True

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.max_delay_s)
            self._wake.clear()
            if not self._pending and not self._backlog:
                continue
            with contextlib.suppress(Exception):  # kept for the next round; waiting callers know
                await self._append_or_keep(self._take())

    async def _chain_key(self, session: AsyncSession, server_key: ServerKey, next_seq: int) -> bytes:
        """The key for events from ``next_seq``: the newest stored one, or a first one made now."""
        row = (
            await session.execute(select(AuditChainKey).order_by(AuditChainKey.from_seq.desc()).limit(1))
        ).scalar_one_or_none()
        if row is None:
            key = new_chain_key(server_key, next_seq)
            sealed = seal_chain_key(server_key, next_seq, key)
            session.add(AuditChainKey(from_seq=next_seq, key_id=server_key.key_id, sealed=sealed))
            self._keys[sealed] = key
            return key
        sealed = bytes(row.sealed)
        known = self._keys.get(sealed)
        if known is None:
            known = self._keys[sealed] = unseal_chain_key(server_key, row.from_seq, sealed)
        return known

    async def _append(self, batch: Sequence[PendingEvent]) -> None:
        server_key = self.server_key()
        checkpoint = await asyncio.to_thread(read_head_file, self.data_dir)
        async with write_session(self.sessionmaker) as session:
            await upsert_rows(
                session,
                AuditHead.__table__,
                [
                    {
                        "id": 1,
                        "last_seq": 0,
                        "last_hash": GENESIS_HASH,
                        "updated_at": datetime.now(UTC),
                        "keyed_from": 1,
                    }
                ],
                key=("id",),
                update=[],
            )
            head = await session.get(AuditHead, 1, with_for_update=True, populate_existing=True)
            assert head is not None
            seq, prev, keyed_from = head.last_seq, head.last_hash, head.keyed_from
            first_seq = seq + 1
            key = await self._chain_key(session, server_key, first_seq)
            rows = []
            for pending in batch:
                seq += 1
                event = {**pending.fields, "seq": seq}
                digest = event_hash(prev, event, key)
                rows.append({**event, "prev_hash": prev, "hash": digest})
                prev = digest
            await upsert_rows(session, AuditEvent.__table__, rows, key=("seq",), update=[])
            last_checkpoint = (
                await session.execute(select(func.max(AuditCheckpoint.seq)))
            ).scalar_one_or_none() or 0
            if seq - last_checkpoint >= CHECKPOINT_EVERY:
                session.add(AuditCheckpoint(seq=seq, hash=prev, at=datetime.now(UTC)))
            head.last_seq, head.last_hash, head.updated_at = seq, prev, datetime.now(UTC)
            holds = await _checkpoint_holds(session, checkpoint)
        try:  # before the answers: a write answered is covered by the checkpoint
            await self._advance_checkpoint(checkpoint, holds, first_seq, seq, prev, keyed_from)
        except OSError as exc:
            if self._complain_due("file"):
                log.error("audit head checkpoint not written (%s): %s", Path(self.data_dir) / HEAD_FILE, exc)
        for pending in batch:
            if pending.done is not None and not pending.done.done():
                pending.done.set_result(None)
        now = time.monotonic()
        level = logging.INFO if now - self._last_info >= _INFO_EVERY_S else logging.DEBUG
        if level == logging.INFO:
            self._last_info = now
        log.log(level, "audit head seq=%s hash=%s", seq, prev)

    async def _advance_checkpoint(
        self,
        checkpoint: dict[str, Any] | None,
        holds: bool,
        first_seq: int,
        seq: int,
        digest: str,
        keyed_from: int,
    ) -> None:
        """Move the head file to ``seq`` once the stored hash at its previous ``seq`` is checked.

        A missing file is made only with the chain's first events (a new hub); otherwise it stays
        missing for ``audit verify`` to report (``audit verify --new-checkpoint`` renews it).
        """
        path = Path(self.data_dir) / HEAD_FILE
        for _attempt in range(3):
            if checkpoint is None and first_seq != 1:
                if _attempt == 0:  # another process may have just made it (a new hub's first events)
                    checkpoint = await asyncio.to_thread(read_head_file, self.data_dir)
                    if checkpoint is not None:
                        async with self.sessionmaker() as session:
                            holds = await _checkpoint_holds(session, checkpoint)
                        continue
                if self._complain_due("missing"):
                    log.error(
                        "审计链头检查点文件 %s 缺失，未重建；请运行 supervision-hub audit verify "
                        "(audit head checkpoint file missing, not remade: run `audit verify`)",
                        path,
                    )
                return
            if checkpoint is not None and not holds:
                if self._complain_due("broken"):
                    log.error(
                        "审计链与链头检查点不符（seq %s），检查点不再前移；请运行 audit verify "
                        "(the audit chain no longer matches its head checkpoint at seq %s: the checkpoint "
                        "stays there; run `supervision-hub audit verify`)",
                        checkpoint.get("seq"),
                        checkpoint.get("seq"),
                    )
                return
            if await asyncio.to_thread(
                write_head_file, self.data_dir, seq, digest, keyed_from, expect=checkpoint
            ):
                return
            # another process moved it since: check again from where it is now
            checkpoint = await asyncio.to_thread(read_head_file, self.data_dir)
            if checkpoint is not None and isinstance(checkpoint.get("seq"), int) and checkpoint["seq"] >= seq:
                return
            async with self.sessionmaker() as session:
                holds = await _checkpoint_holds(session, checkpoint)


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
    session: AsyncSession,
    data_dir: Path,
    server_key: ServerKey,
    from_seq: int | None = None,
    to_seq: int | None = None,
    *,
    missing_checkpoint_ok: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Recompute the chain (plain SM3 before ``keyed_from``, HMAC-SM3 under the unsealed chain keys
    from it); check it against its head row and the checkpoint file, whose absence is reported once
    any event was chained (``missing_checkpoint_ok``: an operator renewing it)."""
    head = await session.get(AuditHead, 1)
    first = (await session.execute(select(func.min(AuditEvent.seq)))).scalar_one_or_none()
    last_seq = head.last_seq if head else 0
    keyed_from = head.keyed_from if head else 1
    result: dict[str, Any] = {
        "ok": True,
        "checked": 0,
        "first_bad_seq": None,
        "reason": None,
        "head_seq": last_seq,
        "keyed_from": keyed_from,
        "checkpoint_seq": None,
        "from_seq": None,
        "to_seq": None,
    }

    def bad(seq: int | None, reason: str) -> dict[str, Any]:
        result.update(ok=False, first_bad_seq=seq, reason=reason)
        return result

    if head is None and first is not None:
        return bad(first, "审计链头记录缺失 (the audit chain head row is missing)")
    key_rows = list((await session.execute(select(AuditChainKey).order_by(AuditChainKey.from_seq))).scalars())
    key_starts: list[int] = []
    keys: list[bytes] = []
    for key_row in key_rows:
        try:
            keys.append(unseal_chain_key(server_key, key_row.from_seq, bytes(key_row.sealed)))
        except ChainKeyError as exc:
            return bad(key_row.from_seq, str(exc))
        key_starts.append(key_row.from_seq)
    if key_starts and key_starts[0] < keyed_from:
        return bad(key_starts[0], "带密钥链的起点被改动 (the start of the keyed chain was moved)")

    if first is None:
        if last_seq == 0:
            return await _check_head_file(
                result, bad, session, data_dir, 1, last_seq, keyed_from, missing_checkpoint_ok
            )
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
            key: bytes | None = None
            if row.seq >= keyed_from:
                index = bisect.bisect_right(key_starts, row.seq) - 1
                if index < 0:
                    return bad(row.seq, "没有适用于该事件的审计链密钥 (no audit chain key for this event)")
                key = keys[index]
            fields = {name: getattr(row, name) for name in KEYED_FIELDS}
            if row.prev_hash != expected_prev:
                return bad(row.seq, "prev_hash 与前一事件不符 (prev_hash does not match)")
            if key is None and row.actor != legacy_actor(row.app_key, row.role):
                return bad(row.seq, "审计事件的操作者被修改 (the event's actor was changed)")
            if event_hash(row.prev_hash, fields, key) != row.hash:
                return bad(row.seq, "审计事件被修改 (event content does not match its hash)")
            expected_prev = row.hash
            seq += 1
            result["checked"] += 1
        session.expunge_all()
        if progress is not None:  # the command line shows it on a terminal (§13)
            progress(result["checked"], end - start + 1)
    if to_seq is None or to_seq >= last_seq:
        if head is not None and last_seq >= start and head.last_hash != expected_prev:
            return bad(last_seq, "链头与最后一个事件不符 (chain head does not match the last event)")
        return await _check_head_file(
            result, bad, session, data_dir, start, last_seq, keyed_from, missing_checkpoint_ok
        )
    return result


async def _check_head_file(
    result: dict[str, Any],
    bad: Callable[[int | None, str], dict[str, Any]],
    session: AsyncSession,
    data_dir: Path,
    start: int,
    last_seq: int,
    keyed_from: int,
    missing_ok: bool,
) -> dict[str, Any]:
    """The chain against the head checkpoint file: truncation, re-chaining, a missing file."""
    checkpoint = read_head_file(data_dir)
    if checkpoint is None:
        if last_seq == 0 or missing_ok:  # a new hub has nothing to checkpoint yet
            return result
        path = Path(data_dir) / HEAD_FILE
        return bad(
            None,
            f"链头检查点文件缺失：{path}；查明原因后可用 audit verify --new-checkpoint 重建 "
            f"(head checkpoint file missing: {path})",
        )
    if checkpoint.get("corrupt"):
        if missing_ok:
            return result
        return bad(None, "链头检查点文件损坏 (head checkpoint file unreadable)")
    cp_seq = int(checkpoint["seq"])
    result["checkpoint_seq"] = cp_seq
    if cp_seq > last_seq:
        return bad(
            last_seq + 1,
            f"最新的审计事件被删除：检查点在 {cp_seq} (newest events deleted; checkpoint at {cp_seq})",
        )
    recorded_start = checkpoint.get("keyed_from")
    if isinstance(recorded_start, int) and recorded_start != keyed_from:
        return bad(
            min(recorded_start, keyed_from),
            f"带密钥链的起点与检查点不符：检查点记录 {recorded_start} "
            f"(the start of the keyed chain does not match the checkpoint's {recorded_start})",
        )
    stored = await _stored_hash(session, cp_seq)
    # before ``start`` retention may have removed it (without a checkpoint row there: nothing to compare)
    if (stored is not None or cp_seq >= start) and stored != checkpoint["hash"]:
        return bad(cp_seq, "与链头检查点不符 (does not match the head checkpoint)")
    return result


async def renew_head_file(session: AsyncSession, data_dir: Path, server_key: ServerKey) -> dict[str, Any]:
    """``audit verify --new-checkpoint``: when the file is missing or unreadable and the chain itself
    verifies, write a new one at the head (after the operator has found out why it was gone)."""
    result = await verify_audit(session, data_dir, server_key, missing_checkpoint_ok=True)
    current = read_head_file(data_dir)
    if result["ok"] and result["head_seq"] and (current is None or current.get("corrupt")):
        head = await session.get(AuditHead, 1)
        assert head is not None
        await asyncio.to_thread(
            write_head_file, data_dir, head.last_seq, head.last_hash, head.keyed_from, force=True
        )
        result["checkpoint_seq"] = head.last_seq
        result["checkpoint_renewed"] = True
        log.warning("audit head checkpoint renewed at seq %s by the operator", head.last_seq)
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
