"""Rate limits (§9): per key by role and per source IP before authentication, across workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from tests.helpers import Hub


@asynccontextmanager
async def instance(settings: Settings, client_ip: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """One more API worker on the same database (and data directory)."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
        yield http
    await app.state.audit_writer.close()
    await app.state.rate_limiter.close()
    await app.state.engine.dispose()


def limited(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(update=update)


async def test_a_key_is_limited_by_its_role_across_two_workers(hub: Hub, settings: Settings) -> None:
    await hub.create_platform("GD-GZ-01")
    regulator = await hub.create_client("regulator", regions=["440100"])
    slow = limited(settings, rate_limit_roles={**settings.rate_limit_roles, "regulator": (0.01, 3.0)})
    auth = hub.auth(regulator)
    async with instance(slow) as first, instance(slow) as second:
        answers = [
            await first.get("/api/v1/assets", headers=auth),
            await second.get("/api/v1/assets", headers=auth),
            await first.get("/api/v1/assets", headers=auth),
            await second.get("/api/v1/assets", headers=auth),  # the 4th, on the other worker
        ]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        refused = answers[3]
        assert refused.json()["code"] == "4001" and refused.json()["request_id"]
        assert int(refused.headers["retry-after"]) >= 1
        # the admin's bucket is its own
        assert (await first.get("/api/v1/admin/clients", headers=hub.auth(hub.admin))).status_code == 200


async def test_a_source_ip_is_limited_before_authentication(hub: Hub, settings: Settings) -> None:
    tight = limited(settings, rate_limit_ip=(0.01, 2.0))
    async with instance(tight, client_ip="198.51.100.7") as http:
        codes = [(await http.get("/api/v1/assets")).json()["code"] for _ in range(3)]
        assert codes == ["2001", "2001", "4001"]  # the third never reaches authentication
        assert (await http.get("/healthz")).status_code == 200  # probes are not limited
    async with instance(tight, client_ip="198.51.100.8") as other:
        assert (await other.get("/api/v1/assets")).json()["code"] == "2001"  # another address


async def test_refusals_for_rate_are_audited(hub: Hub, settings: Settings, engine: AsyncEngine) -> None:
    tight = limited(settings, rate_limit_ip=(0.01, 1.0))
    async with instance(tight, client_ip="198.51.100.9") as http:
        await http.get("/api/v1/assets")
        assert (await http.get("/api/v1/assets")).status_code == 429
    events = await hub.http.get(
        "/api/v1/admin/audit", params={"path": "/api/v1/assets"}, headers=hub.auth(hub.admin)
    )
    statuses = sorted(e["status"] for e in events.json()["data"]["items"] if e["source_ip"] == "198.51.100.9")
    assert statuses == [401, 429]


async def test_readyz_is_limited_per_source_address_and_not_audited(hub: Hub, settings: Settings) -> None:
    """``/readyz`` queries the database: a flood of probes from one address is refused like any
    other request (``/healthz`` touches nothing and stays free), and probes stay out of the audit."""
    tight = limited(settings, rate_limit_ip=(0.01, 2.0))
    async with instance(tight, client_ip="198.51.100.10") as http:
        answers = [await http.get("/readyz") for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[2].json()["code"] == "4001" and int(answers[2].headers["retry-after"]) >= 1
        assert [(await http.get("/healthz")).status_code for _ in range(3)] == [200, 200, 200]
    async with instance(tight, client_ip="198.51.100.11") as other:
        assert (await other.get("/readyz")).status_code == 200  # another address has its own bucket
    events = await hub.http.get(
        "/api/v1/admin/audit", params={"path": "/readyz"}, headers=hub.auth(hub.admin)
    )
    assert events.status_code == 200
    assert events.json()["data"]["items"] == []
