"""The one way in (§4): push endpoints and collectors both hand a batch body to ``accept_batch``.

Order of work for a batch:
1. parse and check the envelope (nothing stored on failure: 422 / 413);
2. authorise against the platform (403 / 404) and look for an earlier receipt (replay / 409);
3. validate every record on its own, then de-duplicate (the last occurrence of a key wins);
4. in one write transaction: checks against the store, the kind's bulk write, the snapshot,
   the quarantine and the receipt — committed before the caller answers.
A concurrent twin of the same batch loses the race on the receipt's primary key, rolls back and
answers as a replay. Deadlocks and serialisation failures are retried.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import write_session
from app.errors import BatchConflict, ErrorItem, Forbidden, NotFound, PayloadTooLarge, ValidationFailed
from app.models import BatchReceipt, Platform, QuarantinedRecord
from app.repositories.bulk import upsert_rows
from app.schemas.ingest import RECORD_MODELS, BatchEnvelope, Record
from app.schemas.messages import errors_of
from app.security.principal import Principal
from app.services.ingest.core import BatchContext, Item
from app.services.ingest.kinds import HANDLERS, KindHandler

log = logging.getLogger(__name__)

_RETRIES = 4
#: SQLSTATEs worth retrying: serialization_failure, deadlock_detected
_RETRY_STATES = {"40001", "40P01"}


class _LostRace(Exception):
    """Another transaction committed a receipt for this batch first."""


@dataclass
class IngestOutcome:
    """What the caller answers: the receipt, 200 or 422, and whether it was a replay."""

    receipt: dict[str, Any]
    replay: bool = False

    @property
    def all_rejected(self) -> bool:
        return bool(self.receipt["status"] == "rejected")


def parse_json(body: bytes) -> Any:
    """The body as JSON; not JSON (bare ``NaN`` included) is 1002 with the position."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(
            f"请求体不是合法的 JSON：第 {exc.lineno} 行第 {exc.colno} 列（字节位置 {exc.pos}）"
            f" (body is not valid JSON at line {exc.lineno} column {exc.colno}, char {exc.pos}: {exc.msg})",
            errors=[
                ErrorItem.of("body", f"{exc.msg} (line {exc.lineno}, column {exc.colno}, char {exc.pos})")
            ],
        ) from None


def receipt_of(row: BatchReceipt) -> dict[str, Any]:
    receipt: dict[str, Any] = {
        "batch_id": row.batch_id,
        "platform_code": row.platform_code,
        "kind": row.kind,
        "status": row.status,
        "received": row.received,
        "accepted": row.accepted,
        "rejected": row.rejected,
        "errors": row.errors,
        "warnings": row.warnings,
        "received_at": row.received_at,
    }
    if row.extra.get("snapshot") is not None:
        receipt["snapshot"] = row.extra["snapshot"]
    return receipt


def push_authorizer(principal: Principal) -> Callable[[Platform], None]:
    """The authorisation of a push (§1, §4): an admin anywhere, a provider into its bound platforms.

    Collector pages go through the same check with their source as the provider (§8).
    """

    def authorize(platform: Platform) -> None:
        if principal.role == "admin":
            return
        if principal.role != "provider" or platform.platform_code not in principal.platforms:
            raise Forbidden(
                f"无权为云平台 {platform.platform_code} 推送数据 "
                f"(this key may not push for platform {platform.platform_code})"
            )

    return authorize


class IngestService:
    """Validates, de-duplicates and stores batches of any kind; owns its write transaction."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings

    async def accept_batch(
        self,
        kind: str,
        body: bytes,
        *,
        reporter: str,
        authorize: Callable[[Platform], None],
    ) -> IngestOutcome:
        """Store one batch and return its receipt (``authorize`` raises when out of scope)."""
        handler = HANDLERS[kind](self.settings)
        envelope = self._envelope(kind, parse_json(body))
        body_sha = hashlib.sha256(body).hexdigest()
        platform = await self._platform(envelope.platform_code, authorize)
        replay = await self._earlier_receipt(platform.platform_code, kind, envelope.batch_id, body_sha)
        if replay is not None:
            return replay
        now = datetime.now(UTC)
        ctx = BatchContext(
            kind=kind,
            platform_code=platform.platform_code,
            platform_network_zone=platform.network_zone,
            batch_id=envelope.batch_id,
            reporter=reporter,
            collected_at=envelope.collected_at,
            now=now,
            snapshot=envelope.snapshot,
        )
        # NUL can only arrive as the JSON escape \u0000: scan records only when it is there
        items = self._validate(handler, ctx, envelope.records, scan_nul=b"\\u0000" in body)
        static_warnings, static_suppressed = list(ctx.warnings), ctx.suppressed_warnings
        # the write only ever appends errors to items: a retry starts again from these lengths
        # (no copy of thousands of items per batch)
        checked = [len(i.errors) for i in items]
        for attempt in range(_RETRIES):
            ctx.warnings, ctx.suppressed_warnings = list(static_warnings), static_suppressed
            ctx.extra = {}
            if attempt:
                for item, length in zip(items, checked, strict=True):
                    del item.errors[length:]
            try:
                return await self._write(handler, ctx, items, body_sha)
            except _LostRace:
                replay = await self._earlier_receipt(
                    platform.platform_code, kind, envelope.batch_id, body_sha
                )
                if replay is not None:
                    return replay
            except DBAPIError as exc:
                state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
                if state not in _RETRY_STATES or attempt == _RETRIES - 1:
                    raise
                log.info("retrying batch %s after %s", envelope.batch_id, state)
                await asyncio.sleep(0.05 * (attempt + 1))
        raise RuntimeError("unreachable: ingest retries exhausted without an answer")

    # ---------------------------------------------------------------------------------------
    def _envelope(self, kind: str, doc: Any) -> BatchEnvelope:
        if not isinstance(doc, dict):
            raise ValidationFailed(
                "请求体应为 JSON 对象 (the body must be a JSON object)",
                errors=[ErrorItem.of("body", "应为对象 (expected an object)")],
            )
        records = doc.get("records")
        if isinstance(records, list) and len(records) > self.settings.max_records_per_batch:
            raise PayloadTooLarge(
                f"每批最多 {self.settings.max_records_per_batch} 条记录，收到 {len(records)} 条 "
                f"(at most {self.settings.max_records_per_batch} records per batch)"
            )
        try:
            envelope = BatchEnvelope.model_validate(doc)
        except ValidationError as exc:
            raise ValidationFailed(
                "批次信封校验失败 (the batch envelope is invalid)", errors=errors_of(exc)
            ) from None
        problems: list[ErrorItem] = []
        if not envelope.records:
            problems.append(ErrorItem.of("records", "至少需要一条记录 (at least one record is required)"))
        if envelope.snapshot is not None and kind != "assets":
            problems.append(ErrorItem.of("snapshot", "snapshot 仅用于资产 (snapshot is only for assets)"))
        if problems:
            raise ValidationFailed("批次信封校验失败 (the batch envelope is invalid)", errors=problems)
        return envelope

    async def _platform(self, code: str, authorize: Callable[[Platform], None]) -> Platform:
        async with self.sessionmaker() as session:
            platform = await session.get(Platform, code)
        stand_in = platform or Platform(platform_code=code, region_code="000000", region_prefix="")
        authorize(stand_in)  # scope first, so an unbound provider cannot learn what exists
        if platform is None:
            raise NotFound(f"云平台 {code} 未注册 (platform {code} is not registered)")
        if platform.status == "decommissioned":
            raise Forbidden(f"云平台 {code} 已停用，不再接收数据 (platform {code} is decommissioned)")
        return platform

    async def _earlier_receipt(
        self, platform_code: str, kind: str, batch_id: str, body_sha: str
    ) -> IngestOutcome | None:
        async with self.sessionmaker() as session:
            row = await session.get(BatchReceipt, (platform_code, kind, batch_id))
        if row is None or row.status == "rejected":
            return None  # a rejected batch does not use up its id
        if row.body_sha256 != body_sha:
            raise BatchConflict(
                f"batch_id {batch_id} 已用于不同内容的批次 (batch_id reused with a different body)"
            )
        return IngestOutcome(receipt_of(row), replay=True)

    def _validate(
        self, handler: KindHandler, ctx: BatchContext, records: list[Any], *, scan_nul: bool
    ) -> list[Item]:
        model: type[Record] = RECORD_MODELS[ctx.kind]
        known = frozenset(model.model_fields)
        not_nullable = model.not_nullable
        validate = model.model_validate
        items: list[Item] = []
        for index, raw in enumerate(records):
            item = Item(index, raw)
            items.append(item)
            if not isinstance(raw, dict):
                item.reject("", "记录应为 JSON 对象 (a record must be a JSON object)")
                continue
            nul_paths = _nul_paths(raw, "") if scan_nul else []
            if nul_paths:
                for path in nul_paths:
                    item.reject(path, "字符串不能包含 NUL 字符 \\u0000 (strings must not contain NUL)")
                continue
            try:
                item.record = validate(raw)
            except ValidationError as exc:
                item.errors.extend(errors_of(exc, index=index, prefix=f"records[{index}]"))
            nulls = [k for k in not_nullable if k in raw and raw[k] is None]
            for name in sorted(nulls):
                if item.record is not None or not any(
                    e["loc"] == f"records[{index}].{name}" for e in item.errors
                ):
                    item.reject(f".{name}", "该字段不能为 null (this field cannot be null)")
            if item.errors:
                continue
            unknown = raw.keys() - known
            if unknown:
                ctx.warn(
                    f"records[{index}]",
                    f"忽略未知字段 (unknown fields ignored): {', '.join(sorted(unknown))}",
                    index,
                )
            handler.check_static(ctx, item)
        return items

    async def _write(
        self, handler: KindHandler, ctx: BatchContext, items: list[Item], body_sha: str
    ) -> IngestOutcome:
        async with write_session(self.sessionmaker) as session:
            await session.execute(
                delete(BatchReceipt).where(
                    BatchReceipt.platform_code == ctx.platform_code,
                    BatchReceipt.kind == ctx.kind,
                    BatchReceipt.batch_id == ctx.batch_id,
                    BatchReceipt.status == "rejected",
                )
            )
            await session.execute(
                delete(QuarantinedRecord).where(
                    QuarantinedRecord.platform_code == ctx.platform_code,
                    QuarantinedRecord.kind == ctx.kind,
                    QuarantinedRecord.batch_id == ctx.batch_id,
                )
            )
            await handler.check(session, ctx, items)
            winners = self._deduplicate(handler, ctx, items)
            if winners:
                await handler.write(session, ctx, winners)
            await handler.after_write(session, ctx, items)
            rejected = [i for i in items if not i.ok]
            accepted = len(items) - len(rejected)
            status = "accepted" if not rejected else ("partial" if accepted else "rejected")
            errors = [e for i in rejected for e in i.errors]
            await upsert_rows(
                session,
                QuarantinedRecord.__table__,
                [
                    {
                        "platform_code": ctx.platform_code,
                        "kind": ctx.kind,
                        "batch_id": ctx.batch_id,
                        "record_index": i.index,
                        "raw": quarantine_copy(i.raw),
                        "errors": i.errors,
                        "received_at": ctx.now,
                    }
                    for i in rejected
                ],
                key=("platform_code", "kind", "batch_id", "record_index"),
                update=[],
            )
            receipt = BatchReceipt(
                platform_code=ctx.platform_code,
                kind=ctx.kind,
                batch_id=ctx.batch_id,
                body_sha256=body_sha,
                status=status,
                received=len(items),
                accepted=accepted,
                rejected=len(rejected),
                errors=errors,
                warnings=ctx.final_warnings(),
                extra=ctx.extra,
                reporter=ctx.reporter,
                collected_at=ctx.collected_at,
                received_at=ctx.now,
            )
            session.add(receipt)
            try:
                await session.flush()
            except IntegrityError:
                raise _LostRace from None
        return IngestOutcome(receipt_of(receipt))

    @staticmethod
    def _deduplicate(handler: KindHandler, ctx: BatchContext, items: list[Item]) -> list[Item]:
        """The last occurrence of each key wins; winners come back sorted by key (lock order)."""
        last: dict[tuple[Any, ...], Item] = {}
        for item in items:
            if not item.ok:
                continue
            key = item.key = handler.key(item)
            earlier = last.get(key)
            if earlier is not None:
                ctx.warn(
                    f"records[{earlier.index}]",
                    f"与 records[{item.index}] 键相同，以后者为准 "
                    f"(same key as records[{item.index}]; the later record wins)",
                    earlier.index,
                )
            last[key] = item
        try:  # keys without None sort as they are (the same order, without a key function)
            ordered = sorted(last)
        except TypeError:
            ordered = sorted(last, key=_sortable)
        return [last[k] for k in ordered]


def _sortable(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple("" if part is None else part for part in key)


async def quarantined_records(
    session: AsyncSession, platform_code: str, kind: str, batch_id: str
) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(QuarantinedRecord)
        .where(
            QuarantinedRecord.platform_code == platform_code,
            QuarantinedRecord.kind == kind,
            QuarantinedRecord.batch_id == batch_id,
        )
        .order_by(QuarantinedRecord.record_index)
    )
    return [
        {"index": q.record_index, "record": orjson.loads(q.raw), "errors": q.errors} for q in rows.scalars()
    ]


def quarantine_copy(raw: Any) -> str:
    """A rejected record as the JSON text the quarantine keeps (§4, §14: never a 500).

    orjson writes at most 254 levels and 64-bit integers; a record nested deeper (the parser
    reads 1024) or holding a bigger integer (a collector's page) is kept as its JSON text in a
    string, and one too deep for Python's encoder as a note saying so.
    """
    try:
        return orjson.dumps(raw).decode()
    except TypeError:
        pass
    try:
        text = json.dumps(raw, ensure_ascii=False, default=str)
    except (RecursionError, ValueError, TypeError):
        text = "记录嵌套过深，无法保存原文 (the record is nested too deeply to be kept)"
    return orjson.dumps(text).decode()


def _nul_paths(value: Any, path: str) -> list[str]:
    """Where a NUL character hides in a record: ``.name``, ``.tags.k``, ``.ip_addresses[0].ip``.

    Walked with a stack, not recursion: a record may be nested as deep as the parser allows
    (1024 levels), deeper than Python's recursion limit (§14: never a 500). A location is kept
    as a link to its parent and written out only when a NUL is found there.
    """
    found: list[str] = []
    stack: list[tuple[Any, _Where]] = [(value, (None, path))]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                found.append(_path_of(where))
        elif isinstance(item, dict):
            for key, inner in reversed(list(item.items())):
                stack.append(("\x00" if "\x00" in key else inner, (where, f".{key}")))
        elif isinstance(item, list):
            stack.extend((inner, (where, f"[{i}]")) for i, inner in reversed(list(enumerate(item))))
    return found


#: a location inside a record: the parent's location and this step (``.key`` or ``[i]``)
_Where = tuple[Any, str]


def _path_of(where: _Where | None) -> str:
    parts: list[str] = []
    while where is not None:
        where, part = where
        parts.append(part)
    return "".join(reversed(parts))
