"""Collector sources as the admin API manages them (§8, §10): create, read, change, delete, runs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.collectors.base import Collector, SourceError
from app.collectors.http import SourceOptionRefused, base_url_refusal, has_userinfo, host_key, source_tls
from app.collectors.registry import collector_class
from app.collectors.runner import is_stale, open_credentials, seal_credentials
from app.config import Settings
from app.errors import AppError, BadParameter, ErrorItem, NotFound, ValidationFailed
from app.models import Platform, Source, SourceRun
from app.schemas.sources import SourceCreate, SourceRunOut, SourceUpdate
from app.security.keys import ServerKey
from app.services.query import Keyset, decode_times, enum_filter, keyset_page


class SourceExists(AppError):
    """As for platforms: a duplicate id is a conflict."""

    code, status_code, default_message = "1001", 409, "采集源编号已存在 (source_id already exists)"


def _check_type(type_name: str, kinds: list[str]) -> type[Collector]:
    try:
        collector = collector_class(type_name)
    except (LookupError, ImportError):
        raise BadParameter(f"未知的采集源类型 {type_name!r} (unknown source type)") from None
    produces = collector.produces
    extra = sorted(set(kinds) - set(produces))
    if extra:
        raise BadParameter(
            f"{type_name} 类型不能采集 {', '.join(extra)}，可选 {', '.join(produces)} "
            f"(this type cannot produce {', '.join(extra)})"
        )
    return collector


def _check_options(collector: type[Collector], options: dict[str, Any], interval_s: int) -> None:
    try:
        collector.check_options(options, interval_s)
    except SourceError as exc:
        raise ValidationFailed(str(exc), errors=[ErrorItem.of("options", str(exc))]) from None


async def _check_tls(settings: Settings, options: dict[str, Any]) -> None:
    """``options.ca_file`` and ``options.tls_verify`` as the run will use them (§8), refused now
    rather than at the first run: the same :func:`source_tls` builds the run's context."""
    try:
        await asyncio.to_thread(source_tls, options, production=settings.env == "production")
    except SourceOptionRefused as exc:
        raise ValidationFailed(str(exc), errors=[ErrorItem.of(exc.loc, str(exc))]) from None


def _check_host(settings: Settings, base_url: str) -> None:
    """No user or password in the URL (§8: credentials go in ``credentials``, sealed, and only to
    this origin), no host written as an address the §8 policy refuses (the transport's own rules:
    a metadata address would only fail every run), and a host on ``SUPHUB_SOURCE_ALLOWED_HOSTS``
    when it is set."""
    if has_userinfo(base_url):
        message = (
            "base_url 不得包含用户名或密码，请放入 credentials "
            "(base_url must not carry a user or password: use credentials)"
        )
        raise ValidationFailed(message, errors=[ErrorItem.of("base_url", message)])
    allowed = settings.allowed_source_hosts()
    host = host_key(urlsplit(base_url).hostname or "")
    why = base_url_refusal(base_url, allowed)
    if why is not None:
        message = f"base_url 的地址 {host} 不可采集：{why} (address refused by the §8 policy)"
        raise ValidationFailed(message, errors=[ErrorItem.of("base_url", message)])
    if allowed is not None and host not in {host_key(h) for h in allowed}:
        raise BadParameter(
            f"主机 {host} 不在 SUPHUB_SOURCE_ALLOWED_HOSTS 中 (host not in SUPHUB_SOURCE_ALLOWED_HOSTS)"
        )


def _plain(credentials: Any) -> dict[str, Any] | None:
    if credentials is None:
        return None
    return {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in credentials.items()}


def source_out(source: Source, server_key: ServerKey, *, now: datetime | None = None) -> dict[str, Any]:
    """A source as answered: every credential value masked (``"***"``), its health computed."""
    names = (
        open_credentials(server_key, source.credentials_ciphertext) if source.credentials_ciphertext else {}
    )
    now = now or datetime.now(UTC)
    running = source.lease_run_id if source.lease_expires_at and source.lease_expires_at > now else None
    return {
        "source_id": source.source_id,
        "platform_code": source.platform_code,
        "type": source.type,
        "base_url": source.base_url,
        "credentials": dict.fromkeys(sorted(names), "***"),
        "interval_s": source.interval_s,
        "kinds": list(source.kinds),
        "options": source.options or {},
        "enabled": source.enabled,
        "created_at": source.created_at,
        "updated_at": source.updated_at,
        "next_run_at": source.next_run_at,
        "last_success_at": source.last_success_at,
        "consecutive_failures": source.consecutive_failures,
        "stale": is_stale(source, now),
        "running_run_id": running,
    }


async def create_source(
    session: AsyncSession, settings: Settings, server_key: ServerKey, spec: SourceCreate
) -> Source:
    collector = _check_type(spec.type, list(spec.kinds))
    _check_options(collector, spec.options, spec.interval_s)
    await _check_tls(settings, spec.options)
    _check_host(settings, spec.base_url)
    if spec.platform_code is None:
        if not collector.mirrors_platforms:
            raise BadParameter(f"{spec.type} 类型的采集源须给出 platform_code (platform_code is required)")
    elif await session.get(Platform, spec.platform_code) is None:
        raise NotFound(f"云平台 {spec.platform_code} 不存在 (no such platform)")
    if await session.get(Source, spec.source_id) is not None:
        raise SourceExists()
    now = datetime.now(UTC)
    source = Source(
        source_id=spec.source_id,
        platform_code=spec.platform_code,
        type=spec.type,
        base_url=spec.base_url,
        credentials_ciphertext=seal_credentials(server_key, _plain(spec.credentials)),
        interval_s=spec.interval_s,
        kinds=list(spec.kinds),
        options=spec.options,
        enabled=spec.enabled,
        created_at=now,
        updated_at=now,
        next_run_at=now,
        consecutive_failures=0,
        cursor_state={},
    )
    session.add(source)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent create of the same id
        await session.rollback()
        raise SourceExists() from None
    return source


async def get_source(session: AsyncSession, source_id: str) -> Source:
    source = await session.get(Source, source_id)
    if source is None:
        raise NotFound(f"采集源 {source_id} 不存在 (no such source)")
    return source


#: the list's order (§10): by ``source_id``
SOURCE_KEYSET = Keyset("admin_sources", (Source.source_id,), lambda s: [s.source_id])
#: run history (§10): newest first, ``run_id`` breaking ties
RUN_KEYSET = Keyset(
    "source_runs",
    (SourceRun.started_at, SourceRun.run_id),
    lambda r: [r.started_at, r.run_id],
    decode=decode_times(0),
    descending=True,
)
RUN_STATUSES = ("running", "success", "failed")


def _page(items: list[dict[str, Any]], next_cursor: str | None, total: int | None) -> dict[str, Any]:
    page: dict[str, Any] = {"items": items, "next_cursor": next_cursor}
    if total is not None:
        page["total"] = total
    return page


async def list_sources(
    session: AsyncSession,
    key: ServerKey,
    *,
    platform_code: str | None,
    limit: int,
    cursor: str | None,
    with_total: bool = False,
) -> dict[str, Any]:
    """Sources (of one platform) by ``source_id``, keyset-paged, each with its health."""
    stmt = select(Source)
    if platform_code is not None:
        stmt = stmt.where(Source.platform_code == platform_code)
    rows, next_cursor, total = await keyset_page(
        session,
        stmt,
        SOURCE_KEYSET,
        server_key=key,
        filters={"platform_code": platform_code},
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    return _page([source_out(s, key) for s in rows], next_cursor, total)


async def update_source(
    session: AsyncSession, settings: Settings, server_key: ServerKey, source: Source, change: SourceUpdate
) -> Source:
    given = change.model_dump(exclude_unset=True)
    kinds = given.get("kinds") or source.kinds
    collector = _check_type(source.type, list(kinds))
    _check_options(
        collector, given.get("options") or source.options or {}, given.get("interval_s") or source.interval_s
    )
    if given.get("options") is not None:
        # only options being saved: a stored source must stay switchable off (``enabled``) when
        # its CA file went away or it is served in production with ``tls_verify: false``
        await _check_tls(settings, given["options"])
    if "base_url" in given and given["base_url"] is not None:
        _check_host(settings, given["base_url"])
        source.base_url = given["base_url"]
    if "credentials" in given:
        source.credentials_ciphertext = seal_credentials(server_key, _plain(change.credentials))
    for name in ("interval_s", "options", "enabled"):
        if given.get(name) is not None:
            setattr(source, name, given[name])
    source.kinds = list(kinds)
    source.updated_at = datetime.now(UTC)
    if given.get("enabled") or "interval_s" in given:
        source.next_run_at = source.updated_at
    await session.flush()
    return source


async def delete_source(session: AsyncSession, source: Source) -> None:
    """The source and its run history go; the data it brought in stays."""
    await session.execute(delete(SourceRun).where(SourceRun.source_id == source.source_id))
    await session.delete(source)
    await session.flush()


async def list_runs(
    session: AsyncSession,
    key: ServerKey,
    source_id: str,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
    with_total: bool = False,
) -> dict[str, Any]:
    """A source's runs, newest first, keyset-paged (a cursor is bound to its source)."""
    stmt = select(SourceRun).where(SourceRun.source_id == source_id)
    statuses = enum_filter(status, "status", RUN_STATUSES)
    if statuses is not None:
        stmt = stmt.where(SourceRun.status.in_(statuses))
    rows, next_cursor, total = await keyset_page(
        session,
        stmt,
        RUN_KEYSET,
        server_key=key,
        filters={"source_id": source_id, "status": statuses},
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    items = [SourceRunOut.model_validate(r, from_attributes=True).model_dump(mode="json") for r in rows]
    return _page(items, next_cursor, total)


async def get_run(session: AsyncSession, source_id: str, run_id: str) -> SourceRun:
    run = await session.get(SourceRun, run_id)
    if run is None or run.source_id != source_id:
        raise NotFound(f"运行 {run_id} 不存在 (no such run)")
    return run
