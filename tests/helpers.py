"""A small client for the hub's API as a test user drives it."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import orjson

from app.config import Settings
from app.security.signing import signed_headers


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def rfc3339(value: datetime, offset_hours: int = 8) -> str:
    """A time as a provider sends it: RFC 3339 with the +08:00 offset."""
    return value.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


def batch(platform: str, batch_id: str, records: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "platform_code": platform,
        "collected_at": rfc3339(now_utc()),
        "records": records,
        **extra,
    }


def vm(asset_id: str, **fields: Any) -> dict[str, Any]:
    return {"asset_id": asset_id, "asset_type": "vm", "name": f"vm {asset_id}", "status": "running", **fields}


@dataclass
class Hub:
    http: httpx.AsyncClient
    admin: str
    settings: Settings

    @staticmethod
    def auth(bearer: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {bearer}"}

    async def create_platform(
        self, code: str = "GD-GZ-ZWY-01", region: str = "440100", **fields: Any
    ) -> dict[str, Any]:
        body = {
            "platform_code": code,
            "name": f"平台 {code}",
            "region_code": region,
            "network_zone": "gov_extranet",
            "level": "city",
            **fields,
        }
        response = await self.http.post("/api/v1/admin/platforms", json=body, headers=self.auth(self.admin))
        assert response.status_code == 201, response.text
        return response.json()["data"]  # type: ignore[no-any-return]

    async def create_client(self, role: str, **fields: Any) -> str:
        """A new key of ``role``; returns its bearer token."""
        body = {"name": f"{role} key", "role": role, **fields}
        if role == "provider":
            body.setdefault("require_signature", False)
        response = await self.http.post("/api/v1/admin/clients", json=body, headers=self.auth(self.admin))
        assert response.status_code == 201, response.text
        return response.json()["data"]["bearer"]  # type: ignore[no-any-return]

    async def push(
        self,
        kind: str,
        body: Any,
        key: str | None = None,
        *,
        gzip_body: bool = False,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        content = raw if raw is not None else orjson.dumps(body)
        all_headers = {"Content-Type": "application/json", **self.auth(key or self.admin), **(headers or {})}
        if gzip_body:
            content = gzip.compress(content)
            all_headers["Content-Encoding"] = "gzip"
        return await self.http.post(f"/api/v1/reports/{kind}", content=content, headers=all_headers)

    async def get(self, path: str, key: str | None = None, **params: Any) -> httpx.Response:
        # as docs/signing.md says to: a space is %20, since the hub reads "+" as a literal plus (§3)
        query = str(httpx.QueryParams(params)).replace("+", "%20")
        url = f"{path}{'&' if '?' in path else '?'}{query}" if query else path
        return await self.http.get(url, headers=self.auth(key or self.admin))

    async def assets(self, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
        """Every asset the key sees, following cursors."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            response = await self.get("/api/v1/assets", key, **query)
            assert response.status_code == 200, response.text
            data = response.json()["data"]
            items.extend(data["items"])
            cursor = data["next_cursor"]
            if not cursor:
                return items

    async def items(self, path: str, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
        """Every item of a §2.2 list (``data.items`` + ``data.next_cursor``), following cursors."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            response = await self.get(path, key, **query)
            assert response.status_code == 200, response.text
            data = response.json()["data"]
            items.extend(data["items"])
            cursor = data["next_cursor"]
            if not cursor:
                return items


# --- keys and signed requests (§3) ---------------------------------------------------------------


async def new_key(hub: Hub, role: str, **fields: Any) -> dict[str, Any]:
    """A new key of ``role`` exactly as the admin API answers it (``app_key``, ``secret``, ``bearer``…).

    Unlike :meth:`Hub.create_client` no default is filled in, so a provider gets the hub's default
    ``require_signature``.
    """
    body = {"name": f"{role} key", "role": role, **fields}
    response = await hub.http.post("/api/v1/admin/clients", json=body, headers=hub.auth(hub.admin))
    assert response.status_code == 201, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def signed_request(
    hub: Hub,
    method: str,
    path: str,
    *,
    app_key: str,
    secret: str,
    query: str = "",
    body: bytes = b"",
    sign_method: str = "HMAC-SM3",
    signed_query: str | None = None,
    signed_body: bytes | None = None,
    headers: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
    **signer: Any,
) -> httpx.Response:
    """One request signed with the reference signer (``app.security.signing.signed_headers``).

    ``query`` is the raw query as sent; ``signed_query`` / ``signed_body`` sign something else than
    what is sent (another order of the query, a tampered body); ``headers`` override the signed
    headers; ``drop`` removes headers by name. ``signer`` goes to the signer (``timestamp_ms``, ``nonce``).
    """
    all_headers = signed_headers(
        app_key=app_key,
        secret=secret,
        method=method,
        path=path,
        query=query if signed_query is None else signed_query,
        body=body if signed_body is None else signed_body,
        sign_method=sign_method,
        **signer,
    )
    all_headers.update(headers or {})
    for name in drop:
        all_headers.pop(name, None)
    url = f"{path}?{query}" if query else path
    return await hub.http.request(method, url, content=body or None, headers=all_headers)


async def signed_push(
    hub: Hub,
    kind: str,
    body: Any,
    *,
    app_key: str,
    secret: str,
    gzip_body: bool = False,
    **options: Any,
) -> httpx.Response:
    """``POST /api/v1/reports/{kind}`` signed over the bytes as sent (compressed when ``gzip_body``)."""
    content = orjson.dumps(body)
    extra = {"Content-Type": "application/json", **options.pop("headers", {})}
    if gzip_body:
        content = gzip.compress(content)
        extra["Content-Encoding"] = "gzip"
    return await signed_request(
        hub,
        "POST",
        f"/api/v1/reports/{kind}",
        app_key=app_key,
        secret=secret,
        body=content,
        headers=extra,
        **options,
    )
