"""API clients: creation (CLI and §10 endpoint), listing and changes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadParameter, NotFound
from app.models import Client, Platform, Source
from app.schemas.common import ClientCreate, ClientUpdate
from app.schemas.enums import Role
from app.schemas.types import normalise_region
from app.security.keys import ServerKey, hash_secret, new_app_key, new_secret
from app.services.query import Keyset, decode_times, enum_filter, keyset_page

DEFAULT_REQUIRE_SIGNATURE = {"provider": True, "admin": False, "regulator": False, "integrator": False}


def client_out(client: Client) -> dict[str, Any]:
    return {
        "app_key": client.app_key,
        "name": client.name,
        "role": client.role,
        "platforms": list(client.platforms),
        "regions": list(client.regions),
        "kinds": list(client.kinds),
        "require_signature": client.require_signature,
        "status": client.status,
        "created_at": client.created_at,
        "updated_at": client.updated_at,
    }


async def _check_scope(
    session: AsyncSession,
    role: str,
    platforms: Sequence[str],
    regions: Sequence[str],
    kinds: Sequence[str],
) -> None:
    if role == "provider" and not platforms:
        raise BadParameter("provider 必须绑定至少一个云平台 (a provider needs --platform)")
    if role == "regulator" and not regions:
        raise BadParameter("regulator 必须指定至少一个区域 (a regulator needs --region)")
    if role == "integrator" and not (platforms or regions):
        raise BadParameter("integrator 必须指定云平台或区域 (an integrator needs platforms or regions)")
    if role == "integrator" and not kinds:
        raise BadParameter("integrator 必须指定可读的数据类别 (an integrator needs --kind)")
    if platforms:
        found = set(
            (
                await session.execute(
                    select(Platform.platform_code).where(Platform.platform_code.in_(platforms))
                )
            ).scalars()
        )
        unknown = sorted(set(platforms) - found)
        if unknown:
            raise BadParameter(f"云平台未注册 (unknown platforms): {', '.join(unknown)}")


async def create_client(session: AsyncSession, server_key: ServerKey, spec: ClientCreate) -> dict[str, Any]:
    """A new key; the answer carries the secret, which is never shown again."""
    regions = sorted({normalise_region(r) for r in spec.regions})
    platforms = sorted(set(spec.platforms))
    kinds = sorted(set(spec.kinds))
    await _check_scope(session, spec.role, platforms, regions, kinds)
    secret = new_secret()
    now = datetime.now(UTC)
    require = spec.require_signature
    client = Client(
        app_key=new_app_key(),
        name=spec.name,
        role=spec.role,
        platforms=platforms,
        regions=regions,
        kinds=kinds,
        require_signature=DEFAULT_REQUIRE_SIGNATURE[spec.role] if require is None else require,
        secret_hash=hash_secret(secret),
        secret_ciphertext=server_key.encrypt(secret.encode()),
        secret_key_id=server_key.key_id,
        status="active",
        created_at=now,
        updated_at=now,
    )
    session.add(client)
    await session.flush()
    return client_out(client) | {"secret": secret, "bearer": f"{client.app_key}.{secret}"}


#: the list's order (§10): oldest key first, ``app_key`` breaking ties
CLIENT_KEYSET = Keyset(
    "admin_clients",
    (Client.created_at, Client.app_key),
    lambda c: [c.created_at, c.app_key],
    decode=decode_times(0),
)
CLIENT_STATUSES = ("active", "disabled", "revoked")


async def list_clients(
    session: AsyncSession,
    key: ServerKey,
    *,
    role: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
    with_total: bool = False,
) -> dict[str, Any]:
    """Client keys (never a secret) by ``created_at, app_key``, keyset-paged."""
    stmt = select(Client)
    roles = enum_filter(role, "role", get_args(Role))
    statuses = enum_filter(status, "status", CLIENT_STATUSES)
    if roles is not None:
        stmt = stmt.where(Client.role.in_(roles))
    if statuses is not None:
        stmt = stmt.where(Client.status.in_(statuses))
    rows, next_cursor, total = await keyset_page(
        session,
        stmt,
        CLIENT_KEYSET,
        server_key=key,
        filters={"role": roles, "status": statuses},
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    page: dict[str, Any] = {"items": [client_out(c) for c in rows], "next_cursor": next_cursor}
    if with_total:
        page["total"] = total
    return page


async def get_client(session: AsyncSession, app_key: str) -> Client:
    client = await session.get(Client, app_key)
    if client is None:
        raise NotFound(f"客户端 {app_key} 不存在 (no such client)")
    return client


async def update_client(session: AsyncSession, app_key: str, change: ClientUpdate) -> dict[str, Any]:
    client = await get_client(session, app_key)
    if client.status == "revoked":
        raise BadParameter("已吊销的密钥不能修改 (a revoked key cannot be changed)")
    given = change.model_dump(exclude_unset=True)
    if "regions" in given and given["regions"] is not None:
        given["regions"] = sorted({normalise_region(r) for r in given["regions"]})
    for name in ("platforms", "kinds"):
        if name in given and given[name] is not None:
            given[name] = sorted(set(given[name]))
    merged: dict[str, list[str]] = {
        k: given[k] if given.get(k) is not None else getattr(client, k)
        for k in ("platforms", "regions", "kinds")
    }
    await _check_scope(session, client.role, merged["platforms"], merged["regions"], merged["kinds"])
    for name, value in given.items():
        if value is not None:
            setattr(client, name, value)
    client.updated_at = datetime.now(UTC)
    await session.flush()
    return client_out(client)


async def rotate_client(
    session: AsyncSession, server_key: ServerKey, app_key: str, overlap_s: int
) -> dict[str, Any]:
    """A new secret; the previous one keeps working for ``overlap_s`` seconds."""
    client = await get_client(session, app_key)
    if client.status == "revoked":
        raise BadParameter("已吊销的密钥不能轮换 (a revoked key cannot be rotated)")
    now = datetime.now(UTC)
    secret = new_secret()
    client.previous_secret_hash = client.secret_hash
    client.previous_secret_ciphertext = client.secret_ciphertext
    client.previous_valid_until = now + timedelta(seconds=overlap_s)
    client.secret_hash = hash_secret(secret)
    client.secret_ciphertext = server_key.encrypt(secret.encode())
    client.secret_key_id = server_key.key_id
    client.updated_at = now
    await session.flush()
    return client_out(client) | {
        "secret": secret,
        "bearer": f"{client.app_key}.{secret}",
        "previous_valid_until": client.previous_valid_until,
    }


async def revoke_client(session: AsyncSession, app_key: str) -> dict[str, Any]:
    client = await get_client(session, app_key)
    client.status = "revoked"
    client.updated_at = datetime.now(UTC)
    await session.flush()
    return client_out(client)


async def reencrypt_secrets(session: AsyncSession, old: ServerKey, new: ServerKey) -> int:
    """Re-encrypt every stored client secret (and overlapping previous secret) and every collector
    source's credentials under ``new``; returns how many secrets were re-encrypted."""
    rows = (await session.execute(select(Client).with_for_update())).scalars().all()
    for client in rows:
        client.secret_ciphertext = new.encrypt(old.decrypt(client.secret_ciphertext))
        if client.previous_secret_ciphertext:
            client.previous_secret_ciphertext = new.encrypt(old.decrypt(client.previous_secret_ciphertext))
        client.secret_key_id = new.key_id
    sources = (await session.execute(select(Source).with_for_update())).scalars().all()
    sealed = [s for s in sources if s.credentials_ciphertext]
    for source in sealed:
        assert source.credentials_ciphertext is not None
        source.credentials_ciphertext = new.encrypt(old.decrypt(source.credentials_ciphertext))
    await session.flush()
    return len(rows) + len(sealed)
