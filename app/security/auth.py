"""Authenticate a request (§3): bearer tokens, or signed requests with HMAC-SM3 / HMAC-SHA256.

Signed-request check order (§3): 2001 headers → 2002 key → 2003 timestamp → 2005 digest, then
signature → 2004 nonce. The first three need no body and run before it is read (§14,
``app/api/guards.py``); a nonce is stored (in the database, so every hub process sees it) only
after the signature is valid, and in its own short transaction.
"""

from __future__ import annotations

import hmac
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import Headers
from starlette.types import Scope

from app.config import Settings
from app.db import dialect_name
from app.errors import (
    CredentialsMissing,
    NonceReused,
    SignatureMismatch,
    TimestampOutOfWindow,
    UnknownKey,
)
from app.models import Client, UsedNonce
from app.security import signing
from app.security.keys import APP_KEY_PATTERN, ServerKey, hash_secret
from app.security.principal import ALL_KINDS, Principal

#: share of requests that also sweep expired rows (nonces, rate buckets)
_SWEEP_PROBABILITY = 0.01
_SIGNED_HEADERS = ("x-app-key", "x-timestamp", "x-nonce", "x-content-digest", "x-signature")


def principal_of(client: Client) -> Principal:
    return Principal(
        app_key=client.app_key,
        role=client.role,
        platforms=frozenset(client.platforms or ()),
        regions=tuple(client.regions or ()),
        kinds=frozenset(client.kinds) if client.role == "integrator" else ALL_KINDS,
    )


async def _active_client(session: AsyncSession, app_key: str) -> Client:
    # a malformed key id (often a secret sent in the wrong place) never reaches a query or its logs
    if not APP_KEY_PATTERN.fullmatch(app_key):
        raise UnknownKey()
    client = await session.get(Client, app_key)
    if client is None or client.status != "active":
        raise UnknownKey()
    return client


def _secret_matches(client: Client, secret: str, now: datetime) -> bool:
    digest = hash_secret(secret)
    if hmac.compare_digest(digest, client.secret_hash):
        return True
    return bool(
        client.previous_secret_hash
        and client.previous_valid_until is not None
        and now < client.previous_valid_until
        and hmac.compare_digest(digest, client.previous_secret_hash)
    )


async def authenticate_bearer(headers: Headers, sessionmaker: async_sessionmaker[AsyncSession]) -> Principal:
    """The caller of an ``Authorization: Bearer <app_key>.<secret>`` request (2001, 2002, 2005)."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise CredentialsMissing(
            "Authorization 头应为 Bearer <app_key>.<secret> "
            "(expected Authorization: Bearer <app_key>.<secret>)"
        )
    app_key, _, secret = token.strip().partition(".")
    async with sessionmaker() as session:
        client = await _active_client(session, app_key)
    if not secret or not _secret_matches(client, secret, datetime.now(UTC)):
        raise UnknownKey()
    if client.require_signature:
        raise SignatureMismatch(
            "该密钥要求签名请求，不接受 Bearer 令牌 (this key requires signed requests; bearer is refused)"
        )
    return principal_of(client)


async def check_signed_headers(headers: Headers, sessionmaker: async_sessionmaker[AsyncSession]) -> Client:
    """The checks of a signed request that need no body (§3): 2001 headers → 2002 key → 2003 time.

    §14: the body is read only once these pass, so nobody without a key makes the hub buffer one.
    """
    if not any(h in headers for h in _SIGNED_HEADERS):
        raise CredentialsMissing()
    missing = [h for h in _SIGNED_HEADERS if not headers.get(h)]
    if missing:
        raise CredentialsMissing(f"缺少签名头 (missing signature headers): {', '.join(missing)}")
    async with sessionmaker() as session:
        client = await _active_client(session, headers["x-app-key"])
    if not signing.timestamp_in_window(headers["x-timestamp"]):
        raise TimestampOutOfWindow()
    if signing.parse_sign_method(headers.get("x-sign-method")) is None:
        raise SignatureMismatch("不支持的签名方法 (unsupported X-Sign-Method)")
    return client


async def verify_signed(
    scope: Scope,
    client: Client,
    body: bytes,
    sessionmaker: async_sessionmaker[AsyncSession],
    server_key: ServerKey,
    settings: Settings,
) -> Principal:
    """The rest of a signed request's checks, over the body as sent: 2005 digest, signature → 2004."""
    headers = Headers(scope=scope)
    now = datetime.now(UTC)
    method = signing.parse_sign_method(headers.get("x-sign-method")) or signing.DEFAULT_SIGN_METHOD
    if not signing.verify_content_digest(body, method, headers["x-content-digest"]):
        raise SignatureMismatch("X-Content-Digest 与请求体不符 (content digest mismatch)")
    path = settings.public_base_path.rstrip("/") + _raw_path(scope)
    to_sign = signing.string_to_sign(
        str(scope.get("method", "")),
        path,
        scope.get("query_string", b""),
        client.app_key,
        headers["x-timestamp"],
        headers["x-nonce"],
        headers["x-content-digest"],
    )
    secrets_to_try = [server_key.decrypt(client.secret_ciphertext).decode()]
    if (
        client.previous_secret_ciphertext
        and client.previous_valid_until
        and now < client.previous_valid_until
    ):
        secrets_to_try.append(server_key.decrypt(client.previous_secret_ciphertext).decode())
    if not any(signing.verify_signature(s, to_sign, headers["x-signature"], method) for s in secrets_to_try):
        raise SignatureMismatch("签名不匹配 (signature mismatch)")
    if not signing.is_valid_nonce(headers["x-nonce"]):
        raise NonceReused("X-Nonce 应为 16–64 位 [A-Za-z0-9_-] (invalid nonce)")
    await _record_nonce(sessionmaker, client.app_key, headers["x-nonce"], now)
    return principal_of(client)


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if raw:
        return bytes(raw).split(b"?", 1)[0].decode("latin-1")
    return str(scope.get("path", ""))


async def _record_nonce(
    sessionmaker: async_sessionmaker[AsyncSession], app_key: str, nonce: str, now: datetime
) -> None:
    expires = now + timedelta(seconds=signing.NONCE_TTL_S)
    async with sessionmaker() as session:
        insert: Any = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
        stmt = insert(UsedNonce).values(app_key=app_key, nonce=nonce, expires_at=expires)
        stmt = stmt.on_conflict_do_update(
            index_elements=["app_key", "nonce"],
            set_={"expires_at": stmt.excluded.expires_at},
            where=UsedNonce.expires_at < now,
        ).returning(UsedNonce.app_key)
        stored = (await session.execute(stmt)).first()
        if random.random() < _SWEEP_PROBABILITY:
            # expired nonces are only kept to refuse replays: sweep them now and then
            await session.execute(delete(UsedNonce).where(UsedNonce.expires_at < now))
        await session.commit()
    if stored is None:
        raise NonceReused()
