"""Pure ASGI middleware: request ids, the audit trail."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import AppError, BadParameter, RateLimited, StorageUnavailable
from app.security.audit import request_actor, source_ip
from app.security.keys import APP_KEY_PATTERN

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_request_id() -> str:
    """A ULID: 48 bits of milliseconds and 80 random bits, sortable by time."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: liveness probes are not requests of any client: they are not audited
UNAUDITED_PATHS = frozenset({"/healthz", "/readyz"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def claimed_app_key(scope: Scope) -> str | None:
    """The key a refused request claimed to be (never the secret after the dot)."""
    principal = scope.get("state", {}).get("principal")
    if principal is not None:
        return str(principal.app_key)
    claimed = _header(scope, b"x-app-key")
    if claimed is None:
        scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
        claimed = token.strip().split(".", 1)[0] if scheme.lower() == "bearer" else None
    # a client that sends its secret where the key id goes must not see it kept in the audit
    return claimed if claimed and APP_KEY_PATTERN.fullmatch(claimed) else None


class AuditMiddleware:
    """Writes every request to the audit chain; a write's event is committed before its answer.

    When that commit fails (the store is away) the answer becomes 503 ``5001`` and the event, with
    that status, waits in the writer's bounded backlog until the store answers again.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNAUDITED_PATHS:
            await self.app(scope, receive, send)
            return
        hub = scope["app"]
        writer = hub.state.audit_writer
        settings = hub.state.settings
        started = datetime.now(UTC)
        client = scope.get("client")
        method = str(scope.get("method", ""))
        raw_path = scope.get("raw_path") or str(scope.get("path", "")).encode()
        event_base = {
            "at": started,
            "method": method,
            "path": bytes(raw_path).split(b"?", 1)[0].decode("latin-1")[:2048],
            "query": bytes(scope.get("query_string", b"")).decode("latin-1"),
            "source_ip": source_ip(
                client[0] if client else None, _header(scope, b"x-forwarded-for"), settings.trusted_proxies
            ),
        }
        replaced = answered = False

        def event(status: int) -> dict[str, Any]:
            state = scope.get("state", {})
            principal = state.get("principal")
            return {
                **event_base,
                "actor": request_actor(
                    state.get("audit_actor"), principal.app_key if principal is not None else None
                ),
                "app_key": claimed_app_key(scope),
                "role": principal.role if principal is not None else None,
                "status": status,
                "records": state.get("audit_records"),
                "request_id": str(state.get("request_id", "")),
            }

        async def audited_send(message: Message) -> None:
            nonlocal replaced, answered
            if replaced:
                return
            if message["type"] == "http.response.start":
                answered = True
                fields = event(int(message["status"]))
                if method in WRITE_METHODS:
                    try:
                        await writer.commit(fields)
                    except Exception:
                        replaced = True
                        unavailable = _unavailable()
                        writer.defer({**fields, "status": unavailable.status_code})
                        await send_error(send, unavailable, str(fields["request_id"]))
                        return
                else:
                    writer.submit(fields)
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception as failure:
            if answered:  # its event is recorded (or waiting) already
                raise
            fields = event(500)
            if method not in WRITE_METHODS:
                writer.submit(fields)
                raise
            try:
                await writer.commit(fields)
            except Exception:
                # a write whose event cannot be committed is answered 503 (nothing accepted), like above
                _log.warning(
                    "%s %r failed (%s) and its audit event cannot be committed: answered 503",
                    method,
                    event_base["path"],
                    type(failure).__name__,
                )
                unavailable = _unavailable()
                writer.defer({**fields, "status": unavailable.status_code})
                await send_error(send, unavailable, str(fields["request_id"]))
                return
            raise


_log = logging.getLogger(__name__)


def _unavailable() -> StorageUnavailable:
    return StorageUnavailable("审计日志暂不可写，请稍后重试 (audit log unavailable; retry later)")


async def send_error(send: Send, error: AppError, request_id: str) -> None:
    """The §2.1 envelope of ``error``, for middleware that answers before the app does."""
    body = orjson.dumps({"code": error.code, "message": error.message, "request_id": request_id})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        # X-Request-Id is added by RequestIdMiddleware, outside every middleware that calls this
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RejectNulMiddleware:
    """A NUL (``%00``) in the path or query is refused: PostgreSQL cannot compare text holding one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = bytes(scope.get("raw_path") or b"") + b"?" + bytes(scope.get("query_string", b""))
            if b"%00" in raw or b"\x00" in raw or "\x00" in str(scope.get("path", "")):
                error = BadParameter("路径或查询参数不能包含 NUL 字符 %00 (NUL in the path or query)")
                await send_error(send, error, str(scope.get("state", {}).get("request_id", "")))
                return
        await self.app(scope, receive, send)


class SourceRateLimitMiddleware:
    """The per-source-IP rate limit, before authentication (refusals are still audited).

    It runs outside the app's error handlers: a bucket the store cannot read (database down or
    hung) is answered here as 503 ``5001`` with ``Retry-After``, never left to become a 500.
    ``/readyz`` queries the database, so it is limited too (and, as a probe, still not audited);
    only ``/healthz``, which touches nothing, is free.
    """

    UNLIMITED_PATHS = frozenset({"/healthz"})

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        hub = scope["app"]
        limiter = hub.state.rate_limiter
        client = scope.get("client")
        address = source_ip(
            client[0] if client else None,
            _header(scope, b"x-forwarded-for"),
            hub.state.settings.trusted_proxies,
        )
        try:
            await limiter.take(f"ip:{address}", limiter.ip_limit)
        except (RateLimited, StorageUnavailable) as exc:  # 429 4001; 503 5001: the store cannot answer
            await send_error(send, exc, str(scope.get("state", {}).get("request_id", "")))
            return
        await self.app(scope, receive, send)
