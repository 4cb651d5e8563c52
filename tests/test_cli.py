"""The command line as an operator uses it (§10)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings, get_settings
from app.main import create_app

CLI = [sys.executable, "-m", "app.cli"]
ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SUPHUB_")}
    full_env.update({"SUPHUB_DATA_DIR": str(tmp / "var"), "PYTHONPATH": str(ROOT), **env})
    return subprocess.run([*CLI, *args], cwd=tmp, env=full_env, capture_output=True, text=True, timeout=60)


async def test_clients_create_prints_a_working_first_admin_key(tmp_path: Path) -> None:
    result = _run(["clients", "create", "--name", "root", "--role", "admin"], tmp_path)
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["role"] == "admin" and created["app_key"].startswith("ak_")
    assert created["require_signature"] is False and len(created["secret"]) >= 32
    assert (tmp_path / "var" / "hub.db").exists() and (tmp_path / "var" / "server.key").exists()
    assert created["secret"] not in result.stderr

    app = create_app(Settings(data_dir=tmp_path / "var", _env_file=None))  # type: ignore[call-arg]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
        ok = await http.get("/api/v1/admin/clients", headers={"Authorization": f"Bearer {created['bearer']}"})
        assert ok.status_code == 200
        assert [c["app_key"] for c in ok.json()["data"]] == [created["app_key"]]
    await app.state.engine.dispose()


def test_a_provider_key_requires_signatures_unless_told_otherwise(tmp_path: Path) -> None:
    assert _run(["migrate"], tmp_path).returncode == 0
    refused = _run(
        ["clients", "create", "--name", "p", "--role", "provider", "--platform", "NOPE-01"], tmp_path
    )
    assert refused.returncode == 2 and "NOPE-01" in refused.stderr


def test_production_refuses_to_start_without_a_real_secret_key(tmp_path: Path) -> None:
    for key in ("", "changethis"):
        result = _run(["serve", "--port", "1"], tmp_path, SUPHUB_ENV="production", SUPHUB_SECRET_KEY=key)
        assert result.returncode == 2
        assert "SUPHUB_SECRET_KEY" in result.stderr
    assert not (tmp_path / "var" / "server.key").exists()


def test_sign_prints_the_signature_headers(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b'{"a":1}')
    result = _run(
        [
            "sign",
            "--key",
            "ak_x",
            "--secret",
            "s",
            "--method",
            "POST",
            "--path",
            "/api/v1/reports/assets",
            "--body",
            str(body),
            "--sign-method",
            "HMAC-SHA256",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    headers = json.loads(result.stdout)
    assert headers["X-App-Key"] == "ak_x" and headers["X-Sign-Method"] == "HMAC-SHA256"
    assert set(headers) == {
        "X-App-Key",
        "X-Timestamp",
        "X-Nonce",
        "X-Sign-Method",
        "X-Content-Digest",
        "X-Signature",
    }


async def _signed_get(data_dir: Path, created: dict[str, str], **env: str) -> int:
    """Status of a signed GET by ``created``'s key against a hub on ``data_dir``."""
    from app.security.signing import signed_headers

    settings = Settings(data_dir=data_dir, _env_file=None, **env)  # type: ignore[call-arg,arg-type]
    app = create_app(settings)
    headers = signed_headers(
        app_key=created["app_key"], secret=created["secret"], method="GET", path="/api/v1/admin/clients"
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as http:
        status = (await http.get("/api/v1/admin/clients", headers=headers)).status_code
    await app.state.audit_writer.close()
    await app.state.rate_limiter.close()
    await app.state.engine.dispose()
    return status


async def _source_credentials(data_dir: Path, created: dict[str, str], *, create: bool) -> Any:
    """A hub source's masked credentials as the admin API shows them (creating the source first)."""
    app = create_app(Settings(data_dir=data_dir, _env_file=None))  # type: ignore[call-arg]
    auth = {"Authorization": f"Bearer {created['bearer']}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as http:
        if create:
            body = {
                "source_id": "city",
                "type": "hub",
                "base_url": "http://city.example",
                "credentials": {"token": "ak_0123456789abcdef0123.sealed"},
                "kinds": ["assets"],
                "options": {"region": "44"},
            }
            assert (await http.post("/api/v1/admin/sources", json=body, headers=auth)).status_code == 201
        answer = await http.get("/api/v1/admin/sources/city", headers=auth)
    await app.state.audit_writer.close()
    await app.state.rate_limiter.close()
    await app.state.engine.dispose()
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["credentials"]


async def test_keys_rotate_reencrypts_every_secret_and_keeps_the_old_key_readable(tmp_path: Path) -> None:
    created = json.loads(_run(["clients", "create", "--name", "root", "--role", "admin"], tmp_path).stdout)
    key_file = tmp_path / "var" / "server.key"
    old_key = key_file.read_text()
    assert await _signed_get(tmp_path / "var", created) == 200
    assert await _source_credentials(tmp_path / "var", created, create=True) == {"token": "***"}

    result = _run(["keys", "rotate"], tmp_path)
    assert result.returncode == 0, result.stderr
    rotated = json.loads(result.stdout)
    # the client's secret and the source's credentials
    assert rotated["rotated"] == 2 and rotated["old_key_id"] != rotated["new_key_id"]
    assert key_file.read_text() != old_key
    assert (tmp_path / "var" / f"server.key.{rotated['old_key_id']}.old").read_text() == old_key
    assert created["secret"] not in result.stdout + result.stderr
    # signatures still verify: the secret is now encrypted under the new key
    assert await _signed_get(tmp_path / "var", created) == 200
    # and the new key alone opens it (the old one is only a fallback)
    (tmp_path / "var" / f"server.key.{rotated['old_key_id']}.old").unlink()
    assert await _signed_get(tmp_path / "var", created) == 200
    assert await _source_credentials(tmp_path / "var", created, create=False) == {"token": "***"}


async def test_keys_rotate_with_a_configured_key_needs_the_new_key_file(tmp_path: Path) -> None:
    old, new = "a" * 64, "b" * 64
    env = {"SUPHUB_SECRET_KEY": old}
    created = json.loads(
        _run(["clients", "create", "--name", "root", "--role", "admin"], tmp_path, **env).stdout
    )
    refused = _run(["keys", "rotate"], tmp_path, **env)
    assert refused.returncode == 2 and "--new-key-file" in refused.stderr
    (tmp_path / "new.key").write_text(new)
    done = _run(["keys", "rotate", "--new-key-file", str(tmp_path / "new.key")], tmp_path, **env)
    assert done.returncode == 0, done.stderr
    assert "SUPHUB_EXTRA_SECRET_KEYS" in done.stderr
    assert await _signed_get(tmp_path / "var", created, secret_key=new) == 200
    # a hub still on the old key cannot open the secret: a clear 503, never a 500
    assert await _signed_get(tmp_path / "var", created, secret_key=old) == 503
    assert await _signed_get(tmp_path / "var", created, secret_key=old, extra_secret_keys=[new]) == 200


def test_data_files_are_0600_in_a_0700_directory(tmp_path: Path) -> None:
    """§14: the database (and SQLite's -wal / -shm), the server key and its backups."""
    assert _run(["migrate"], tmp_path).returncode == 0
    created = _run(["clients", "create", "--name", "root", "--role", "admin"], tmp_path)
    assert created.returncode == 0, created.stderr
    assert _run(["keys", "rotate"], tmp_path).returncode == 0
    data = tmp_path / "var"
    assert data.stat().st_mode & 0o777 == 0o700
    files = {p.name: p.stat().st_mode & 0o777 for p in data.iterdir() if p.is_file()}
    assert {"hub.db", "server.key"} <= set(files) and any(n.endswith(".old") for n in files), files
    assert {name: mode for name, mode in files.items() if mode != 0o600} == {}


async def test_a_running_hub_picks_up_a_key_rotated_beside_it(tmp_path: Path) -> None:
    """The embedded ``keys rotate`` while a hub runs: its next signed push still verifies (§14)."""
    from app.cli import build_parser
    from app.security.signing import signed_headers

    created = json.loads(_run(["clients", "create", "--name", "root", "--role", "admin"], tmp_path).stdout)
    data_dir = tmp_path / "var"
    app = create_app(Settings(data_dir=data_dir, _env_file=None))  # type: ignore[call-arg]
    auth = {"Authorization": f"Bearer {created['bearer']}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as http:
        platform = {
            "platform_code": "GD-01",
            "name": "p",
            "region_code": "440100",
            "network_zone": "gov_extranet",
            "level": "city",
        }
        assert (await http.post("/api/v1/admin/platforms", json=platform, headers=auth)).status_code == 201
        provider_body = {"name": "p", "role": "provider", "platforms": ["GD-01"]}
        provider = (await http.post("/api/v1/admin/clients", json=provider_body, headers=auth)).json()["data"]

        async def signed_push(batch_id: str) -> httpx.Response:
            body = json.dumps(
                {
                    "batch_id": batch_id,
                    "platform_code": "GD-01",
                    "collected_at": "2026-11-21T08:00:00+08:00",
                    "records": [{"asset_id": "vm-1", "asset_type": "vm", "name": "v", "status": "running"}],
                }
            ).encode()
            path = "/api/v1/reports/assets"
            headers = signed_headers(
                app_key=provider["app_key"], secret=provider["secret"], method="POST", path=path, body=body
            )
            return await http.post(
                path, content=body, headers={**headers, "Content-Type": "application/json"}
            )

        assert (await signed_push("before")).status_code == 200
        # the CLI's own function, in this process, with the same data directory
        args = build_parser().parse_args(["keys", "rotate"])
        os.environ["SUPHUB_DATA_DIR"] = str(data_dir)
        try:
            get_settings.cache_clear()
            assert await asyncio.to_thread(args.func, args) == 0
        finally:
            del os.environ["SUPHUB_DATA_DIR"]
            get_settings.cache_clear()
        after = await signed_push("after")
        assert after.status_code == 200, after.text
        # and what this hub seals from now on, it seals under the new key
        again = {"name": "q", "role": "provider", "platforms": ["GD-01"]}
        assert (await http.post("/api/v1/admin/clients", json=again, headers=auth)).status_code == 201
    await app.state.audit_writer.close()
    await app.state.rate_limiter.close()
    await app.state.engine.dispose()
    (data_dir / "server.key").with_name(next(p.name for p in data_dir.glob("server.key.*.old"))).unlink()
    assert await _signed_get(data_dir, provider) in {200, 403}  # opens with the new key alone


def test_clients_create_refuses_a_region_of_3_or_5_digits(tmp_path: Path) -> None:
    refused = _run(["clients", "create", "--name", "r", "--role", "regulator", "--region", "440"], tmp_path)
    assert refused.returncode == 2 and "regions" in refused.stderr and "2、4 或 6" in refused.stderr
