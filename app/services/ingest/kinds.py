"""How each kind of record is checked against the store and written (§4.1–§4.6).

rooms, assets, alarms: merge-patch under a per-platform lock (read, merge, upsert).
metrics, environment: the later write of a key replaces the value (plain upserts in key order).
logs: insert-only, appended to the platform's SM3 chain under the chain head's row lock.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any, ClassVar

import orjson
from sqlalchemy import Table, and_, bindparam, delete, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import dialect_name
from app.models import (
    Alarm,
    Asset,
    AssetChange,
    AssetSnapshot,
    AssetSnapshotMember,
    DomesticListEntry,
    EnvironmentPoint,
    EnvironmentSample,
    LogChainHead,
    LogRecord,
    MetricDefinition,
    MetricSample,
    MetricSeries,
    Room,
)
from app.repositories.bulk import chunks, key_in, lock_platform, rows_by_key, upsert_rows
from app.schemas.ingest import AssetRecord, SnapshotInfo
from app.services import log_chain
from app.services.changes import next_seq, sample_counter, stamp_changes
from app.services.domestic import DomesticLists, verdicts
from app.services.environment_states import DERIVED_PREFIX, judge_pushed_samples
from app.services.ingest.core import BatchContext, Item

ASSET_UID_NAMESPACE = uuid.UUID("014f5156-d3bb-4a1f-b52d-ec5938c65eae")
_IN_CHUNK = 500


def asset_uid(platform_code: str, asset_id: str) -> uuid.UUID:
    """The hub's stable id of an asset, the same in every hub (§2)."""
    return uuid.uuid5(ASSET_UID_NAMESPACE, f"{platform_code}|{asset_id}")


def _jsonable(value: Any) -> Any:
    """A field value as it is kept in history (times and dates as text)."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | dict):
        return orjson.loads(orjson.dumps(value))
    return value


def _differs(new: Any, old: Any) -> bool:
    """Whether a stored value changes; cheap equality first, JSON form only when types differ."""
    if new == old:
        return False
    if new is None or old is None or type(new) is type(old):
        return True
    return bool(_jsonable(new) != _jsonable(old))


def _dump(value: Any) -> Any:
    """Pydantic sub-models (ip addresses) to plain JSON."""
    if isinstance(value, list):
        return [v.model_dump() if hasattr(v, "model_dump") else v for v in value]
    return value


class KindHandler:
    kind: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._bounds: dict[tuple[datetime, int], tuple[datetime, datetime]] = {}

    def key(self, item: Item) -> tuple[Any, ...]:
        raise NotImplementedError

    def check_static(self, ctx: BatchContext, item: Item) -> None:
        """Checks that need the clock and settings but not the store."""

    async def check(self, session: AsyncSession, ctx: BatchContext, items: list[Item]) -> None:
        """Checks against the store (may reject items); runs inside the write transaction."""

    async def write(self, session: AsyncSession, ctx: BatchContext, items: list[Item]) -> None:
        raise NotImplementedError

    async def after_write(self, session: AsyncSession, ctx: BatchContext, all_items: list[Item]) -> None:
        """Work on the whole batch once records are written (snapshots)."""

    # shared helpers -------------------------------------------------------------------------
    def _check_age(self, ctx: BatchContext, item: Item, name: str, retention_days: int) -> None:
        assert item.record is not None
        ts: datetime = getattr(item.record, name)
        latest, earliest = self._age_bounds(ctx.now, retention_days)
        if ts > latest:
            item.reject(
                f".{name}",
                f"时间超前超过 {self.settings.future_tolerance_s // 60} 分钟 "
                f"(more than {self.settings.future_tolerance_s} s in the future)",
            )
        elif ts < earliest:
            item.reject(
                f".{name}",
                f"时间早于原始数据保留期 {retention_days} 天 "
                f"(older than the raw retention of {retention_days} days)",
            )

    def _age_bounds(self, now: datetime, retention_days: int) -> tuple[datetime, datetime]:
        """The newest and oldest acceptable times at ``now`` (worked out once per batch)."""
        cached = self._bounds.get((now, retention_days))
        if cached is None:
            cached = (
                now + timedelta(seconds=self.settings.future_tolerance_s),
                now - timedelta(days=retention_days),
            )
            self._bounds[(now, retention_days)] = cached
        return cached

    async def _warn_unknown_assets(self, session: AsyncSession, ctx: BatchContext, items: list[Item]) -> None:
        """Records may name assets the hub has not seen yet; say so once, they are still kept."""
        ids = sorted({getattr(i.record, "asset_id", None) or "" for i in items} - {""})
        if not ids:
            return
        found = await rows_by_key(session, Asset.__table__, ctx.platform_code, "asset_id", ids, ("asset_id",))
        known = {row["asset_id"] for row in found}
        unknown = [a for a in ids if a not in known]
        if unknown:
            shown = ", ".join(unknown[:20]) + (" …" if len(unknown) > 20 else "")
            ctx.warn(
                "records",
                f"{len(unknown)} 个资产尚未上报，相关记录已保存并标记 asset_known=false "
                f"({len(unknown)} assets not reported yet; records kept with asset_known=false): "
                f"{shown}",
            )


# --------------------------------------------------------------------------------------------
class RoomsHandler(KindHandler):
    kind = "rooms"
    FIELDS = (
        "name",
        "datacenter_code",
        "datacenter_name",
        "region_code",
        "address",
        "gb50174_class",
        "aisle_containment",
        "area_m2",
        "rack_count",
        "design_pue",
        "it_capacity_kw",
    )

    def key(self, item: Item) -> tuple[Any, ...]:
        return (item.record.room_code,)

    async def write(self, session: AsyncSession, ctx: BatchContext, items: list[Item]) -> None:
        await lock_platform(session, ctx.platform_code, "rooms")
        codes = [self.key(i)[0] for i in items]
        existing: dict[str, dict[str, Any]] = {}
        for part in chunks(codes, _IN_CHUNK):
            result = await session.execute(
                select(Room).where(Room.platform_code == ctx.platform_code, Room.room_code.in_(part))
            )
            for room in result.scalars():
                existing[room.room_code] = {f: getattr(room, f) for f in self.FIELDS} | {
                    "created_at": room.created_at,
                    "updated_at": room.updated_at,
                }
        rows = []
        for item in items:
            code = self.key(item)[0]
            old = existing.get(code)
            merged = dict(old) if old else dict.fromkeys(self.FIELDS) | {"created_at": ctx.now}
            merged.update({k: v for k, v in item.fields().items() if k != "room_code"})
            changed = old is None or any(merged[f] != old[f] for f in self.FIELDS)
            merged["updated_at"] = ctx.now if changed or old is None else old["updated_at"]
            rows.append(
                {
                    "platform_code": ctx.platform_code,
                    "room_code": code,
                    "last_batch_id": ctx.batch_id,
                    **merged,
                }
            )
        await upsert_rows(
            session,
            Room.__table__,
            rows,
            key=("platform_code", "room_code"),
            update=[c for c in rows[0] if c not in {"platform_code", "room_code", "created_at"}],
        )


# --------------------------------------------------------------------------------------------
class AssetsHandler(KindHandler):
    kind = "assets"
    #: the §4.2 fields kept on the asset row (``is_domestic`` is stored as the reported flag)
    RECORD_FIELDS = tuple(f for f in AssetRecord.model_fields if f not in {"asset_id", "is_domestic"})
    HUB_FIELDS = ("is_domestic_reported", "is_domestic", "domestic")

    def key(self, item: Item) -> tuple[Any, ...]:
        return (item.record.asset_id,)

    async def _lists(self, session: AsyncSession) -> DomesticLists:
        rows = await session.execute(
            select(DomesticListEntry.list_code, DomesticListEntry.entry, DomesticListEntry.aliases)
        )
        return DomesticLists((r[0], r[1], list(r[2] or [])) for r in rows)

    async def write(self, session: AsyncSession, ctx: BatchContext, items: list[Item]) -> None:
        await lock_platform(session, ctx.platform_code, "assets")
        lists = await self._lists(session)
        ids = [self.key(i)[0] for i in items]
        # plain rows, not ORM objects: a batch reads thousands and only compares them
        found = await rows_by_key(session, Asset.__table__, ctx.platform_code, "asset_id", ids)
        existing = {row["asset_id"]: row for row in found}
        volatile = set(self.settings.history_volatile_fields)
        tracked = (*self.RECORD_FIELDS, "is_domestic_reported")
        rows: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for item in items:
            asset_id = self.key(item)[0]
            given = item.fields()
            given.pop("asset_id", None)
            if "is_domestic" in given:
                given["is_domestic_reported"] = given.pop("is_domestic")
            if "ip_addresses" in given:
                given["ip_addresses"] = _dump(given["ip_addresses"])
            old = existing.get(asset_id)
            if old is None:
                merged: dict[str, Any] = dict.fromkeys(tracked)
                merged["lifecycle"] = "in_use"
                merged["network_zone"] = ctx.platform_network_zone
                merged.update(given)
                revision, created_at = 1, ctx.now
                retired_by = None
            else:
                merged = {f: old[f] for f in tracked}
                merged.update(given)
                revision, created_at = old["revision"], old["created_at"]
                retired_by = old["retired_by_snapshot"]
                if retired_by and "lifecycle" not in given and merged["lifecycle"] == "retired":
                    # retired by a snapshot and reported again: it is back in use
                    merged["lifecycle"] = "in_use"
                if merged["lifecycle"] != "retired":
                    retired_by = None
            domestic, is_domestic = verdicts(lists, merged)
            merged["domestic"] = domestic
            merged["is_domestic"] = is_domestic
            diff = (
                [f for f in (*tracked, "is_domestic") if _differs(merged[f], old[f])]
                if old is not None
                else []
            )
            if old is not None and old["domestic"] != domestic:
                diff.append("domestic")
            history = [f for f in diff if f not in volatile and f != "domestic"]
            if old is None:
                changes.append(self._change(ctx, asset_id, 1, "(created)", None, None))
            elif history:
                revision += 1
                for f in history:
                    changes.append(self._change(ctx, asset_id, revision, f, old[f], merged[f]))
            changed = old is None or bool(diff)
            rows.append(
                {
                    "platform_code": ctx.platform_code,
                    "asset_id": asset_id,
                    "asset_uid": asset_uid(ctx.platform_code, asset_id) if old is None else old["asset_uid"],
                    **{f: merged[f] for f in tracked},
                    "is_domestic": merged["is_domestic"],
                    "domestic": domestic,
                    "reporter": ctx.reporter,
                    "revision": revision,
                    "retired_by_snapshot": retired_by,
                    "last_batch_id": ctx.batch_id,
                    "created_at": created_at,
                    "updated_at": ctx.now if changed or old is None else old["updated_at"],
                    # changed rows get this transaction's change sequence when it ends (stamp_changes)
                    "change_seq": None if changed or old is None else old["change_seq"],
                    "last_seen_at": ctx.now,
                }
            )
        await upsert_rows(
            session,
            Asset.__table__,
            rows,
            key=("platform_code", "asset_id"),
            update=[c for c in rows[0] if c not in {"platform_code", "asset_id", "asset_uid", "created_at"}],
        )
        await upsert_rows(
            session,
            AssetChange.__table__,
            changes,
            key=("platform_code", "asset_id", "revision", "field"),
            update=[],
        )

    def _change(
        self, ctx: BatchContext, asset_id: str, revision: int, name: str, old: Any, new: Any
    ) -> dict[str, Any]:
        return {
            "platform_code": ctx.platform_code,
            "asset_id": asset_id,
            "revision": revision,
            "field": name,
            "old_value": _jsonable(old),
            "new_value": _jsonable(new),
            "changed_at": ctx.now,
            "batch_id": ctx.batch_id,
            "reporter": ctx.reporter,
        }

    async def after_write(self, session: AsyncSession, ctx: BatchContext, all_items: list[Item]) -> None:
        """Track the snapshot's pages; once complete, retire this reporter's missing assets."""
        snap = ctx.snapshot
        if snap is not None:
            await self._snapshot(session, ctx, snap, all_items)
        # the last step: this batch's changes (and retirements) get their place in commit order
        await stamp_changes(session, Asset.__table__, "assets", ctx.platform_code)

    async def _snapshot(
        self, session: AsyncSession, ctx: BatchContext, snap: SnapshotInfo, all_items: list[Item]
    ) -> None:
        state = await session.get(
            AssetSnapshot, (ctx.platform_code, ctx.reporter, snap.id), with_for_update=True
        )
        if state is None:
            state = AssetSnapshot(
                platform_code=ctx.platform_code,
                reporter=ctx.reporter,
                snapshot_id=snap.id,
                asset_types=sorted(snap.asset_types) if snap.asset_types else None,
                seqs=[],
                last_seq=None,
                retired=0,
                created_at=ctx.now,
                updated_at=ctx.now,
            )
            session.add(state)
        info: dict[str, Any] = {"id": snap.id, "seq": snap.seq}
        if state.completed_at is None:
            await self._record_members(session, ctx, snap.id, all_items)
        else:
            ctx.warn(
                "snapshot", "该快照已完成，本批次不再触发退役 (snapshot already complete; nothing retired)"
            )
            info.update(complete=True, retired=0, missing_seqs=[])
            ctx.extra["snapshot"] = info
            return
        if snap.asset_types and state.asset_types and sorted(snap.asset_types) != state.asset_types:
            ctx.warn(
                "snapshot.asset_types",
                "同一快照的 asset_types 不一致，以第一批为准 "
                "(asset_types differ between pages of one snapshot; the first page's apply)",
            )
        seqs = sorted(set(state.seqs) | {snap.seq})
        state.seqs = seqs
        if snap.last:
            state.last_seq = snap.seq
        state.updated_at = ctx.now
        missing = [s for s in range(1, state.last_seq + 1) if s not in seqs] if state.last_seq else None
        complete = state.last_seq is not None and not missing
        retired = 0
        if complete:
            retired = await self._retire(session, ctx, snap.id, state.asset_types)
            state.completed_at = ctx.now
            state.retired = retired
            await session.execute(
                delete(AssetSnapshotMember).where(
                    AssetSnapshotMember.platform_code == ctx.platform_code,
                    AssetSnapshotMember.reporter == ctx.reporter,
                    AssetSnapshotMember.snapshot_id == snap.id,
                )
            )
        await session.flush()
        info.update(
            received_seqs=seqs,
            last_seq=state.last_seq,
            complete=complete,
            missing_seqs=missing if missing is not None else "unknown until last:true arrives",
            retired=retired,
        )
        if not complete:
            info["note"] = "快照不完整，未退役任何资产 (incomplete snapshot: nothing retired)"
        ctx.extra["snapshot"] = info

    async def _record_members(
        self, session: AsyncSession, ctx: BatchContext, snapshot_id: str, all_items: list[Item]
    ) -> None:
        """Remember which assets this page contained (a rejected record's readable id counts)."""
        present = {i.record.asset_id for i in all_items if i.ok}
        present |= {
            i.raw["asset_id"]
            for i in all_items
            if not i.ok and isinstance(i.raw, dict) and isinstance(i.raw.get("asset_id"), str)
        }
        rows = [
            {
                "platform_code": ctx.platform_code,
                "reporter": ctx.reporter,
                "snapshot_id": snapshot_id,
                "asset_id": asset_id,
            }
            for asset_id in sorted(a for a in present if 0 < len(a) <= 128 and "\x00" not in a)
        ]
        await upsert_rows(
            session,
            AssetSnapshotMember.__table__,
            rows,
            key=("platform_code", "reporter", "snapshot_id", "asset_id"),
            update=[],
        )

    async def _retire(
        self, session: AsyncSession, ctx: BatchContext, snapshot_id: str, types: list[str] | None
    ) -> int:
        conditions = [
            Asset.platform_code == ctx.platform_code,
            Asset.reporter == ctx.reporter,
            Asset.lifecycle != "retired",
            ~select(AssetSnapshotMember.asset_id)
            .where(
                AssetSnapshotMember.platform_code == ctx.platform_code,
                AssetSnapshotMember.reporter == ctx.reporter,
                AssetSnapshotMember.snapshot_id == snapshot_id,
                AssetSnapshotMember.asset_id == Asset.asset_id,
            )
            .exists(),
        ]
        if types:
            conditions.append(Asset.asset_type.in_(types))
        postgresql = dialect_name(session) == "postgresql"
        if postgresql:
            # statistics lag behind a first large snapshot (estimates of one row each side): a
            # nested-loop anti-join then compares every asset with every member, O(n²) — over 9
            # minutes at 100 000 assets. A hash anti-join is linear whatever the estimates say.
            await session.execute(text("SET LOCAL enable_nestloop = off"))
        result = await session.execute(
            select(Asset.asset_id, Asset.revision, Asset.lifecycle)
            .where(and_(*conditions))
            .order_by(Asset.asset_id)
            .with_for_update()
        )
        victims = result.all()
        if postgresql:
            await session.execute(text("SET LOCAL enable_nestloop = on"))
        changes = [
            self._change(ctx, a_id, rev + 1, "lifecycle", lifecycle, "retired")
            for a_id, rev, lifecycle in victims
        ]
        for part in chunks([v[0] for v in victims], _IN_CHUNK):
            await session.execute(
                update(Asset)
                .where(Asset.platform_code == ctx.platform_code, Asset.asset_id.in_(part))
                .values(
                    lifecycle="retired",
                    change_seq=None,
                    retired_by_snapshot=snapshot_id,
                    revision=Asset.revision + 1,
                    updated_at=ctx.now,
                    last_batch_id=ctx.batch_id,
                )
            )
        await upsert_rows(
            session,
            AssetChange.__table__,
            changes,
            key=("platform_code", "asset_id", "revision", "field"),
            update=[],
        )
        return len(victims)


# --------------------------------------------------------------------------------------------
class LogsHandler(KindHandler):
    kind = "logs"

    def key(self, item: Item) -> tuple[Any, ...]:
        record = item.record
        assert record is not None
        log_id = getattr(record, "log_id", None)
        if log_id:
            return (log_id,)
        return ("sha256:" + log_chain.content_sha256(item.fields()),)

    def check_static(self, ctx: BatchContext, item: Item) -> None:
        self._check_age(ctx, item, "event_time", self.settings.retention_logs_days)
        raw = getattr(item.record, "raw", None)
        if raw is not None and len(raw.encode()) > self.settings.max_log_raw_bytes:
            item.reject(
                ".raw",
                f"raw 超过 {self.settings.max_log_raw_bytes // 1024} KiB "
                f"(raw exceeds {self.settings.max_log_raw_bytes} bytes)",
            )

    async def write(self, session: AsyncSession, ctx: BatchContext, items: list[Item]) -> None:
        head = await self._lock_head(session, ctx)
        keyed = [(self.key(i)[0], i) for i in items]
        found = await rows_by_key(
            session,
            LogRecord.__table__,
            ctx.platform_code,
            "log_key",
            [k for k, _ in keyed],
            ("log_key", "content_sha256"),
        )
        stored = {row["log_key"]: row["content_sha256"] for row in found}
        # the chain follows arrival order: the order of the records in the batch
        keyed.sort(key=lambda pair: pair[1].index)
        rows: list[dict[str, Any]] = []
        seq, prev = head.last_seq, head.last_hash
        for key, item in keyed:
            fields = item.fields()
            digest = log_chain.content_sha256(fields)
            if key in stored:
                if stored[key] == digest:
                    ctx.warn(
                        f"records[{item.index}]", "日志已存在，未重复存储 (log already stored)", item.index
                    )
                else:
                    item.reject(
                        "",
                        "日志不可修改：相同 log_id 的日志已以不同内容存储 "
                        "(logs are immutable: this log_id is stored with other content)",
                    )
                continue
            seq += 1
            link = log_chain.link_hash(prev, ctx.platform_code, seq, fields)
            rows.append(
                {
                    "platform_code": ctx.platform_code,
                    "seq": seq,
                    "log_key": key,
                    **{f: fields.get(f) for f in log_chain.CHAIN_FIELDS},
                    "content_sha256": digest,
                    "prev_hash": prev,
                    "hash": link,
                    "batch_id": ctx.batch_id,
                    "received_at": ctx.now,
                }
            )
            prev = link
        if rows:
            await upsert_rows(session, LogRecord.__table__, rows, key=("platform_code", "seq"), update=[])
            head.last_seq, head.last_hash, head.updated_at = seq, prev, ctx.now
            await session.flush()
        await self._warn_unknown_assets(session, ctx, [i for i in items if i.ok])

    async def _lock_head(self, session: AsyncSession, ctx: BatchContext) -> LogChainHead:
        await upsert_rows(
            session,
            LogChainHead.__table__,
            [
                {
                    "platform_code": ctx.platform_code,
                    "last_seq": 0,
                    "last_hash": log_chain.GENESIS_HASH,
                    "updated_at": ctx.now,
                }
            ],
            key=("platform_code",),
            update=[],
        )
        head = await session.get(
            LogChainHead, ctx.platform_code, with_for_update=True, populate_existing=True
        )
        assert head is not None
        return head


# --------------------------------------------------------------------------------------------
#: the labels of a series without labels (one shared object: its JSON form is bound once per batch)
_NO_LABELS: dict[str, str] = {}


def labels_key(labels: dict[str, str] | None) -> str:
    if not labels:
        return "{}"
    return orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode()


def series_id(platform_code: str, metric: str, asset_id: str, key: str) -> int:
    """64 bits of SHA-256 of the series identity (collisions: ~1e-8 at 500 000 series)."""
    digest = hashlib.sha256(f"{platform_code}\x1f{metric}\x1f{asset_id}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class MetricsHandler(KindHandler):
    kind = "metrics"

    def key(self, item: Item) -> tuple[Any, ...]:
        r = item.record
        return (r.metric, r.asset_id or "", labels_key(r.labels), r.ts)

    def check_static(self, ctx: BatchContext, item: Item) -> None:
        self._check_age(ctx, item, "ts", self.settings.retention_metrics_days)

    async def check(self, session: AsyncSession, ctx: BatchContext, items: list[Item]) -> None:
        codes = set(
            (
                await session.execute(select(MetricDefinition.code).where(MetricDefinition.enabled.is_(True)))
            ).scalars()
        )
        for item in items:
            if item.ok and item.record.metric not in codes:
                item.reject(
                    ".metric",
                    f"未知的指标编码 {item.record.metric!r}，见 GET /api/v1/catalog "
                    "(unknown metric code; see the catalogue)",
                )

    async def write(self, session: AsyncSession, ctx: BatchContext, items: list[Item]) -> None:
        platform, now = ctx.platform_code, ctx.now
        series: dict[int, dict[str, Any]] = {}
        samples: list[dict[str, Any]] = []
        for item in items:  # sorted by key: a series' samples come together, oldest first
            metric, asset, lkey, ts = item.key
            sid = series_id(platform, metric, asset, lkey)
            value = item.record.value
            known = series.get(sid)
            if known is None:
                series[sid] = {
                    "platform_code": platform,
                    "series_id": sid,
                    "metric": metric,
                    "asset_id": asset,
                    "labels": item.record.labels or _NO_LABELS,
                    "labels_key": lkey,
                    "created_at": now,
                    "last_ts": ts,
                    "last_value": value,
                }
            else:  # the newest sample of the batch is the series' candidate newest value
                known["last_ts"], known["last_value"] = ts, value
            samples.append(
                {"platform_code": platform, "series_id": sid, "ts": ts, "value": value, "received_at": now}
            )
        await self._register_series(session, platform, [series[k] for k in sorted(series)])
        samples.sort(key=lambda r: (r["series_id"], r["ts"]))
        seq = await next_seq(session, sample_counter("metric_sample", platform))
        for row in samples:
            row["change_seq"] = seq
        await upsert_rows(
            session,
            MetricSample.__table__,
            samples,
            key=("platform_code", "series_id", "ts"),
            update=["value", "received_at", "change_seq"],
        )
        await self._warn_unknown_assets(session, ctx, items)

    @staticmethod
    async def _register_series(session: AsyncSession, platform: str, rows: list[dict[str, Any]]) -> None:
        """New series inserted, and each series' newest value moved to its newest sample in the batch.

        A series that already holds a newer sample (a late or old batch) keeps it. Rows come in
        series order, so concurrent batches take the series' row locks in the same order.
        SQLite: one ``INSERT … ON CONFLICT DO UPDATE … WHERE`` for all. PostgreSQL: an ``UPDATE``
        of the stored series first (half the cost of the upsert, and ``fillfactor`` leaves room
        for heap-only updates), which also answers which exist; the rest are inserted.
        """
        if dialect_name(session) == "postgresql":
            result = await session.execute(
                text(
                    "UPDATE metric_series AS s SET "
                    "last_ts = CASE WHEN s.last_ts IS NULL OR s.last_ts <= u.ts "
                    "THEN u.ts ELSE s.last_ts END, "
                    "last_value = CASE WHEN s.last_ts IS NULL OR s.last_ts <= u.ts "
                    "THEN u.value ELSE s.last_value END "
                    "FROM unnest(CAST(:ids AS BIGINT[]), CAST(:ts AS TIMESTAMPTZ[]), "
                    "CAST(:vals AS FLOAT8[])) AS u(series_id, ts, value) "
                    "WHERE s.platform_code = :platform AND s.series_id = u.series_id "
                    "RETURNING s.series_id"
                ),
                {
                    "platform": platform,
                    "ids": [r["series_id"] for r in rows],
                    "ts": [r["last_ts"] for r in rows],
                    "vals": [r["last_value"] for r in rows],
                },
            )
            stored = set(result.scalars())
            rows = [r for r in rows if r["series_id"] not in stored]
        await upsert_rows(
            session,
            MetricSeries.__table__,
            rows,
            key=("platform_code", "series_id"),
            update=["last_ts", "last_value"],
            unless_newer="last_ts",
        )


# --------------------------------------------------------------------------------------------
class EnvironmentHandler(KindHandler):
    kind = "environment"
    POINT_FIELDS = ("rack_code", "position", "height_m", "interval_s")

    def key(self, item: Item) -> tuple[Any, ...]:
        r = item.record
        return (r.room_code, r.point_code, r.ts)

    def check_static(self, ctx: BatchContext, item: Item) -> None:
        self._check_age(ctx, item, "ts", self.settings.retention_environment_days)
        if item.record.point_code.startswith(DERIVED_PREFIX):
            item.reject(
                ".point_code",
                f"以 {DERIVED_PREFIX!r} 开头的测点编码留给中心推算的露点，请换一个编码 "
                f"(point codes starting with {DERIVED_PREFIX!r} are the hub's derived dew points)",
            )

    async def check(self, session: AsyncSession, ctx: BatchContext, items: list[Item]) -> None:
        self._stored_points: dict[tuple[str, str], dict[str, Any]] = {}
        valid = [i for i in items if i.ok]
        rooms = sorted({i.record.room_code for i in valid})
        known_rooms: set[str] = set()
        for part in chunks(rooms, _IN_CHUNK):
            result = await session.execute(
                select(Room.room_code).where(
                    Room.platform_code == ctx.platform_code, Room.room_code.in_(part)
                )
            )
            known_rooms.update(result.scalars())
        for item in valid:
            if item.record.room_code not in known_rooms:
                item.reject(
                    ".room_code",
                    f"机房 {item.record.room_code!r} 尚未上报，请先上报 rooms "
                    "(room not reported; push it under rooms first)",
                )
        valid = [i for i in valid if i.ok]
        # register new points first (first sight wins), then compare every sample's type with
        # what is stored — also right when another batch registers the same point concurrently
        first_seen: dict[tuple[str, str], Item] = {}
        for item in sorted(valid, key=lambda i: i.index):
            first_seen.setdefault((item.record.room_code, item.record.point_code), item)
        new_points = [
            {
                "platform_code": ctx.platform_code,
                "room_code": rc,
                "point_code": pc,
                "point_type": it.record.point_type,
                "created_at": ctx.now,
                "updated_at": ctx.now,
                **{f: getattr(it.record, f) for f in self.POINT_FIELDS},
            }
            for (rc, pc), it in sorted(first_seen.items())
        ]
        await upsert_rows(
            session,
            EnvironmentPoint.__table__,
            new_points,
            key=("platform_code", "room_code", "point_code"),
            update=[],
        )
        types: dict[tuple[str, str], str] = {}
        for part in chunks(sorted(first_seen), _IN_CHUNK):
            point_rows = await session.execute(
                select(EnvironmentPoint).where(
                    EnvironmentPoint.platform_code == ctx.platform_code,
                    key_in((EnvironmentPoint.room_code, EnvironmentPoint.point_code), list(part)),
                )
            )
            for point in point_rows.scalars():
                types[(point.room_code, point.point_code)] = point.point_type
                self._stored_points[(point.room_code, point.point_code)] = {
                    f: getattr(point, f) for f in self.POINT_FIELDS
                }
        for item in valid:
            r = item.record
            stored = types.get((r.room_code, r.point_code))
            if stored is not None and stored != r.point_type:
                item.reject(
                    ".point_type",
                    f"测点类型与已登记的 {stored!r} 不一致 (point already registered as {stored!r})",
                )

    async def write(self, session: AsyncSession, ctx: BatchContext, items: list[Item]) -> None:
        # the platform's sample counter first: it orders this write after any other of the same
        # platform before a point row is locked (the points are updated twice below)
        seq = await next_seq(session, sample_counter("environment_sample", ctx.platform_code))
        # merge-patch the points' attributes sample by sample in record order; write only the
        # points that actually changed
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for item in sorted(items, key=lambda i: i.index):
            point = (item.record.room_code, item.record.point_code)
            attrs = merged.setdefault(point, dict(self._stored_points.get(point, {})))
            attrs.update({f: v for f, v in item.fields().items() if f in self.POINT_FIELDS})
        changed = [
            {"b_room": rc, "b_point": pc, **attrs, "updated_at": ctx.now}
            for (rc, pc), attrs in sorted(merged.items())
            if attrs != self._stored_points.get((rc, pc), {})
        ]
        if changed:
            columns = [*self.POINT_FIELDS, "updated_at"]
            changed = [dict.fromkeys(columns) | row for row in changed]
            table: Table = EnvironmentPoint.__table__  # type: ignore[assignment]
            await session.execute(
                update(table)
                .where(
                    table.c.platform_code == ctx.platform_code,
                    table.c.room_code == bindparam("b_room"),
                    table.c.point_code == bindparam("b_point"),
                )
                .values({c: bindparam(c) for c in columns}),
                changed,
            )
        rows = [
            {
                "platform_code": ctx.platform_code,
                "room_code": i.record.room_code,
                "point_code": i.record.point_code,
                "ts": i.record.ts,
                "value": i.record.value,
                "state": None,
                "evaluated_at": None,
                "received_at": ctx.now,
            }
            for i in items
        ]
        rows.sort(key=lambda r: (r["room_code"], r["point_code"], r["ts"]))
        for row in rows:
            row["change_seq"] = seq
        await upsert_rows(
            session, EnvironmentSample.__table__, rows, key=("platform_code", "room_code", "point_code", "ts")
        )
        # each point's newest sample time, unless it already holds a newer one
        newest: dict[tuple[str, str], datetime] = {}
        for row in rows:  # sorted: a point's last row is its newest
            newest[(row["room_code"], row["point_code"])] = row["ts"]
        points: Table = EnvironmentPoint.__table__  # type: ignore[assignment]
        await session.execute(
            update(points)
            .where(
                points.c.platform_code == ctx.platform_code,
                points.c.room_code == bindparam("b_room"),
                points.c.point_code == bindparam("b_point"),
                or_(points.c.last_ts.is_(None), points.c.last_ts < bindparam("b_ts")),
            )
            .values(last_ts=bindparam("b_ts")),
            [{"b_room": r, "b_point": p, "b_ts": ts} for (r, p), ts in sorted(newest.items())],
        )
        # §6.6: judge the new samples and their neighbours now, so no answer shows them unjudged
        touched: dict[tuple[str, str], tuple[datetime, datetime]] = {}
        for row in rows:  # sorted by point, then time
            key = (row["room_code"], row["point_code"])
            touched[key] = (touched[key][0], row["ts"]) if key in touched else (row["ts"], row["ts"])
        await judge_pushed_samples(session, ctx.platform_code, touched, seq, ctx.now)


# --------------------------------------------------------------------------------------------
class AlarmsHandler(KindHandler):
    kind = "alarms"
    FIELDS = (
        "level",
        "status",
        "title",
        "message",
        "asset_id",
        "room_code",
        "first_at",
        "last_at",
        "cleared_at",
    )

    def key(self, item: Item) -> tuple[Any, ...]:
        return (item.record.alarm_id,)

    async def write(self, session: AsyncSession, ctx: BatchContext, items: list[Item]) -> None:
        await lock_platform(session, ctx.platform_code, "alarms")
        ids = [self.key(i)[0] for i in items]
        existing: dict[str, Alarm] = {}
        for part in chunks(ids, _IN_CHUNK):
            result = await session.execute(
                select(Alarm).where(Alarm.platform_code == ctx.platform_code, Alarm.alarm_id.in_(part))
            )
            existing.update({a.alarm_id: a for a in result.scalars()})
        rows: list[dict[str, Any]] = []
        for item in items:
            alarm_id = self.key(item)[0]
            given = item.fields()
            given.pop("alarm_id", None)
            old = existing.get(alarm_id)
            if old is not None:
                stale = self._stale(old, given)
                if stale:
                    ctx.warn(f"records[{item.index}]", stale, item.index)
                    continue
                merged = {f: getattr(old, f) for f in self.FIELDS} | given
                changed = any(merged[f] != getattr(old, f) for f in self.FIELDS)
                created_at = old.created_at
                updated_at = ctx.now if changed else old.updated_at
                change_seq = None if changed else old.change_seq
            else:
                merged = dict.fromkeys(self.FIELDS) | given
                created_at = updated_at = ctx.now
                change_seq = None
            rows.append(
                {
                    "platform_code": ctx.platform_code,
                    "alarm_id": alarm_id,
                    **merged,
                    "last_batch_id": ctx.batch_id,
                    "created_at": created_at,
                    "updated_at": updated_at,
                    "change_seq": change_seq,
                }
            )
        await upsert_rows(
            session,
            Alarm.__table__,
            rows,
            key=("platform_code", "alarm_id"),
            update=[
                c for c in (rows[0] if rows else {}) if c not in {"platform_code", "alarm_id", "created_at"}
            ],
        )
        await self._warn_unknown_assets(session, ctx, items)
        await stamp_changes(session, Alarm.__table__, "alarms", ctx.platform_code)

    @staticmethod
    def _stale(old: Alarm, given: dict[str, Any]) -> str | None:
        """Why an update is older than what is stored (and so ignored), or None."""
        last_at, cleared_at = given.get("last_at"), given.get("cleared_at")
        if last_at is not None and old.last_at is not None and last_at < old.last_at:
            return "last_at 早于已存储的值，忽略该更新 (update older than the stored last_at; ignored)"
        if cleared_at is not None and old.cleared_at is not None and cleared_at < old.cleared_at:
            return "cleared_at 早于已存储的值，忽略该更新 (update older than the stored cleared_at; ignored)"
        if old.status == "cleared" and given.get("status") == "active":
            newest = last_at or given.get("first_at")
            if old.cleared_at is None or newest is None or newest <= old.cleared_at:
                return (
                    "告警已清除，较旧的更新不会重新激活它 "
                    "(a cleared alarm is not re-activated by an older update)"
                )
        return None


HANDLERS: dict[str, type[KindHandler]] = {
    h.kind: h
    for h in (RoomsHandler, AssetsHandler, LogsHandler, MetricsHandler, EnvironmentHandler, AlarmsHandler)
}

__all__ = ["HANDLERS", "KindHandler", "asset_uid", "series_id"]
