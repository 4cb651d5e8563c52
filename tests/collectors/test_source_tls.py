"""§8 TLS of a source: ``options.ca_file`` for private certificates, ``tls_verify: false`` never in
production — against a real HTTPS server on 127.0.0.1 whose certificate a CA made here signed.

What a user sees is read back through the API: the run's status and its recorded error.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import create_sessionmaker
from app.main import create_app
from app.schemas.common import ClientCreate
from app.security.keys import load_server_key
from app.services.clients import create_client
from tests.collectors.tlspeer import make_ca, tls_peer
from tests.conftest import _empty_tables
from tests.helpers import Hub

P = "GD-GZ-ZWY-01"
SOURCES = "/api/v1/admin/sources"


def _listing(settings: Settings) -> Settings:
    """The hub's settings with the peer's loopback host listed (§8 refuses loopback otherwise)."""
    return settings.model_copy(update={"source_allowed_hosts": ["127.0.0.1"], "collector_backoff_s": 0.001})


@asynccontextmanager
async def _serving(settings: Settings, bearer: str | None = None) -> AsyncIterator[tuple[Hub, Any]]:
    """A hub over the test database (tables as they are), with a new admin key unless given one."""
    application = create_app(settings)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://hub.test"
        ) as client:
            if bearer is None:
                async with create_sessionmaker(application.state.engine)() as session:
                    created = await create_client(
                        session, load_server_key(settings), ClientCreate(name="root", role="admin")
                    )
                    await session.commit()
                bearer = str(created["bearer"])
            yield Hub(client, bearer, settings), application
    finally:
        await application.state.audit_writer.close()
        await application.state.rate_limiter.close()
        await application.state.engine.dispose()


async def _save(hub: Hub, base_url: str, options: dict[str, Any], source_id: str = "bmc-prom") -> None:
    body = {
        "source_id": source_id,
        "platform_code": P,
        "type": "prometheus",
        "base_url": base_url,
        "interval_s": 60,
        "kinds": ["metrics"],
        "options": {"asset_label": "instance", "queries": {"cpu.util": "up"}, **options},
        "enabled": False,
    }
    saved = await hub.http.post(SOURCES, json=body, headers=hub.auth(hub.admin))
    assert saved.status_code == 201, saved.text


async def _change(hub: Hub, options: dict[str, Any], source_id: str = "bmc-prom") -> None:
    body = {"options": {"asset_label": "instance", "queries": {"cpu.util": "up"}, **options}}
    changed = await hub.http.patch(f"{SOURCES}/{source_id}", json=body, headers=hub.auth(hub.admin))
    assert changed.status_code == 200, changed.text


async def _run(hub: Hub, app: Any, source_id: str = "bmc-prom") -> dict[str, Any]:
    started = await hub.http.post(f"{SOURCES}/{source_id}/run", headers=hub.auth(hub.admin))
    assert started.status_code == 202, started.text
    await app.state.collector_runner.wait_idle()
    answer = await hub.get(f"{SOURCES}/{source_id}/runs/{started.json()['data']['run_id']}")
    return dict(answer.json()["data"])


async def test_a_private_certificate_is_verified_against_the_sources_ca_file(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    await _empty_tables(engine, settings)
    ca = make_ca(tmp_path / "private")
    stranger = make_ca(tmp_path / "stranger", "另一个 CA")
    async with tls_peer(ca) as peer, _serving(_listing(settings)) as (hub, app):
        await hub.create_platform(P)
        await _save(hub, peer.url, {"ca_file": str(ca.ca_file)})
        done = await _run(hub, app)
        assert done["status"] == "success", done["error"]
        assert peer.paths and set(peer.paths) == {"/api/v1/query_range"}
        answered = len(peer.paths)

        # the same peer without the CA: the public CAs do not vouch for it, and saying so once is
        # enough (a certificate does not become valid on a retry: one handshake, not four)
        await _save(hub, peer.url, {}, source_id="no-ca")
        before = peer.connections
        done = await _run(hub, app, "no-ca")
        assert done["status"] == "failed"
        assert "certificate verify failed" in done["error"] and "options.ca_file" in done["error"]
        assert peer.connections == before + 1 and len(peer.paths) == answered

        # another private CA's bundle does not vouch for it either
        await _save(hub, peer.url, {"ca_file": str(stranger.ca_file)}, source_id="stranger")
        done = await _run(hub, app, "stranger")
        assert done["status"] == "failed" and "certificate verify failed" in done["error"]
        assert len(peer.paths) == answered


async def test_a_ca_file_gone_since_the_source_was_saved_fails_the_run_naming_it(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    await _empty_tables(engine, settings)
    ca = make_ca(tmp_path / "private")
    kept = tmp_path / "etc" / "bmc-ca.pem"
    kept.parent.mkdir()
    shutil.copy(ca.ca_file, kept)
    async with tls_peer(ca) as peer, _serving(_listing(settings)) as (hub, app):
        await hub.create_platform(P)
        await _save(hub, peer.url, {"ca_file": str(kept)})
        kept.unlink()
        done = await _run(hub, app)
        assert done["status"] == "failed"
        assert "options.ca_file" in done["error"] and str(kept) in done["error"]
        assert peer.connections == 0  # nothing was sent with a context it could not build


async def test_tls_verify_false_runs_in_development_and_fails_in_production(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    """A source saved in development with ``tls_verify: false``, then served in production."""
    await _empty_tables(engine, settings)
    ca = make_ca(tmp_path / "private")
    development = _listing(settings)
    key = load_server_key(development)  # production reads the same key from its environment
    production = development.model_copy(
        update={"env": "production", "secret_key": SecretStr(key.material.hex())}
    )
    async with tls_peer(ca) as peer:
        async with _serving(development) as (hub, app):
            await hub.create_platform(P)
            await _save(hub, peer.url, {"tls_verify": False})
            done = await _run(hub, app)
            assert done["status"] == "success", done["error"]  # nothing checked the certificate
            admin = hub.admin
        answered = len(peer.paths)
        async with _serving(production, admin) as (hub, app):
            done = await _run(hub, app)
            assert done["status"] == "failed"
            assert "options.tls_verify" in done["error"] and "production" in done["error"]
            assert len(peer.paths) == answered and peer.connections == answered

            # saving it again is refused too; naming the CA instead runs
            body = {
                "options": {"asset_label": "instance", "queries": {"cpu.util": "up"}, "tls_verify": False}
            }
            refused = await hub.http.patch(f"{SOURCES}/bmc-prom", json=body, headers=hub.auth(hub.admin))
            assert refused.status_code == 422 and refused.json()["code"] == "1002", refused.text
            await _save(hub, peer.url, {"ca_file": str(ca.ca_file)}, source_id="with-ca")
            done = await _run(hub, app, "with-ca")
            assert done["status"] == "success", done["error"]
            assert len(peer.paths) > answered
