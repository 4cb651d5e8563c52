"""A small client for the hub's API as a test user drives it."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import orjson

from app.config import Settings


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
        return await self.http.get(path, params=params or None, headers=self.auth(key or self.admin))

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
