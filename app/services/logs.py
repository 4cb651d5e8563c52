"""Verification of a platform's log chain (§4.3)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import LogChainHead, LogCheckpoint, LogRecord
from app.services import log_chain

_PAGE = 2000


async def verify_chain(
    session: AsyncSession, platform_code: str, from_seq: int | None, to_seq: int | None
) -> dict[str, Any]:
    """Recompute every link in ``[from_seq, to_seq]``; name the first broken ``seq``."""
    head = await session.get(LogChainHead, platform_code)
    checkpoint = (
        await session.execute(
            select(LogCheckpoint)
            .where(LogCheckpoint.platform_code == platform_code)
            .order_by(LogCheckpoint.seq.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    first_kept = checkpoint.seq + 1 if checkpoint else 1
    last_seq = head.last_seq if head else 0
    start = max(from_seq or first_kept, first_kept)
    end = min(to_seq, last_seq) if to_seq is not None else last_seq
    result: dict[str, Any] = {
        "platform_code": platform_code,
        "from_seq": start,
        "to_seq": end,
        "checked": 0,
        "ok": True,
        "first_broken_seq": None,
        "reason": None,
        "head_seq": last_seq,
        "checkpoint_seq": checkpoint.seq if checkpoint else None,
    }
    if end < start:
        return result
    if start == first_kept:
        expected_prev = checkpoint.hash if checkpoint else log_chain.GENESIS_HASH
    else:
        before = await session.get(LogRecord, (platform_code, start - 1))
        expected_prev = before.hash if before else ""

    def broken(seq: int, reason: str) -> dict[str, Any]:
        result.update(ok=False, first_broken_seq=seq, reason=reason)
        return result

    expected_seq = start
    while expected_seq <= end:
        rows = (
            (
                await session.execute(
                    select(LogRecord)
                    .where(
                        LogRecord.platform_code == platform_code,
                        LogRecord.seq >= expected_seq,
                        LogRecord.seq <= end,
                    )
                    .order_by(LogRecord.seq)
                    .limit(_PAGE)
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            return broken(expected_seq, "日志缺失 (log record missing)")
        for row in rows:
            if row.seq != expected_seq:
                return broken(expected_seq, "日志缺失 (log record missing)")
            if row.prev_hash != expected_prev:
                return broken(row.seq, "prev_hash 与前一条日志不符 (prev_hash does not match)")
            fields = {f: getattr(row, f) for f in log_chain.CHAIN_FIELDS}
            if log_chain.link_hash(row.prev_hash, platform_code, row.seq, fields) != row.hash:
                return broken(row.seq, "内容与 hash 不符，日志被修改 (content does not match its hash)")
            expected_prev = row.hash
            expected_seq += 1
            result["checked"] += 1
        session.expunge_all()
    if end == last_seq and head is not None and head.last_hash != expected_prev:
        return broken(end, "链头与最后一条日志不符，最新日志可能被删除 (chain head mismatch)")
    return result
