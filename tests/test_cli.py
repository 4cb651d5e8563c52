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


def _run(
    args: list[str], tmp: Path, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SUPHUB_")}
    full_env.update({"SUPHUB_DATA_DIR": str(tmp / "var"), "PYTHONPATH": str(ROOT), **env})
    return subprocess.run(
        [*CLI, *args], cwd=tmp, env=full_env, input=stdin, capture_output=True, text=True, timeout=60
    )


async def test_clients_create_prints_a_working_first_admin_key(tmp_path: Path) -> None:
    result = _run(["clients", "create", "--init", "--name", "root", "--role", "admin"], tmp_path)
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
        assert [c["app_key"] for c in ok.json()["data"]["items"]] == [created["app_key"]]
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
    (tmp_path / "secret").write_text("s\n")
    result = _run(
        [
            "sign",
            "--key",
            "ak_x",
            "--secret-file",
            str(tmp_path / "secret"),
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
    created = json.loads(
        _run(["clients", "create", "--init", "--name", "root", "--role", "admin"], tmp_path).stdout
    )
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
        _run(["clients", "create", "--init", "--name", "root", "--role", "admin"], tmp_path, **env).stdout
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

    created = json.loads(
        _run(["clients", "create", "--init", "--name", "root", "--role", "admin"], tmp_path).stdout
    )
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
    refused = _run(
        ["clients", "create", "--init", "--name", "r", "--role", "regulator", "--region", "440"], tmp_path
    )
    assert refused.returncode == 2 and "regions" in refused.stderr and "2、4 或 6" in refused.stderr


# --- §10 as updated by issue 14: a hub that runs anywhere -----------------------------------------
def _one_line(stderr: str) -> str:
    """The only line of ``stderr``: a refusal is one clear line, never a traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    return lines[0]


def test_an_unknown_suphub_variable_is_refused_naming_it(tmp_path: Path) -> None:
    result = _run(["migrate"], tmp_path, SUPHUB_DATABSE_URL="postgresql+asyncpg://x@db/hub")
    assert result.returncode == 1
    assert "SUPHUB_DATABSE_URL" in _one_line(result.stderr)
    assert not (tmp_path / "var").exists()  # refused before anything was made


def test_an_unknown_name_in_the_env_file_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SUPHUB_REPORTING_TZ=Asia/Shanghai\nSUPHUB_RETENTON_LOGS_DAYS=90\n")
    result = _run(["clients", "create", "--init", "--name", "a", "--role", "admin"], tmp_path)
    assert result.returncode == 1
    assert "SUPHUB_RETENTON_LOGS_DAYS" in _one_line(result.stderr)


def test_source_test_and_drill_variables_are_not_settings_but_are_allowed(tmp_path: Path) -> None:
    result = _run(
        ["migrate"],
        tmp_path,
        SUPHUB_SOURCE_CITY_TOKEN="t",
        SUPHUB_TEST_PG_DSN="postgresql://x@y/z",
        SUPHUB_DRILL_HUB_TREE=str(tmp_path),
        SUPHUB_DB_PASSWORD="p",
    )
    assert result.returncode == 0, result.stderr


def test_an_invalid_trusted_proxy_is_refused_naming_it(tmp_path: Path) -> None:
    result = _run(["migrate"], tmp_path, SUPHUB_TRUSTED_PROXIES='["10.0.0.0/8", "10.0.0.300"]')
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert "SUPHUB_TRUSTED_PROXIES" in line and "10.0.0.300" in line
    unparsable = _run(["migrate"], tmp_path, SUPHUB_TRUSTED_PROXIES="10.0.0.1,")
    assert unparsable.returncode == 1 and "SUPHUB_TRUSTED_PROXIES" in _one_line(unparsable.stderr)


def _serve_until_ready(tmp: Path, port: int, **env: str) -> str:
    """``serve`` on ``port`` until ``/healthz`` answers; its stderr so far (it is stopped)."""
    import time

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SUPHUB_")}
    full_env.update({"SUPHUB_DATA_DIR": str(tmp / "var"), "PYTHONPATH": str(ROOT), **env})
    err = tmp / "serve.err"
    with err.open("w") as sink:
        proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), "--no-scheduler"],
            cwd=tmp,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert proc.poll() is None, err.read_text()
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            else:
                raise AssertionError("serve did not answer /healthz: " + err.read_text())
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return err.read_text()


def test_serve_prints_its_absolute_data_directory_and_warns_of_sqlite_in_production(tmp_path: Path) -> None:
    from tests.collectors.peers import free_port

    log = _serve_until_ready(tmp_path, free_port(), SUPHUB_DATA_DIR="var")
    data_lines = [line for line in log.splitlines() if "data directory" in line]
    assert len(data_lines) == 1 and str(tmp_path / "var") in data_lines[0], log
    assert "SUPHUB_ENV=production" not in log  # development on SQLite is the embedded default
    # the README's order: `make run` (serve made the database), then the first key, no --init
    first = _run(["clients", "create", "--name", "root", "--role", "admin"], tmp_path, SUPHUB_DATA_DIR="var")
    assert first.returncode == 0, first.stderr

    production = _serve_until_ready(
        tmp_path, free_port(), SUPHUB_ENV="production", SUPHUB_SECRET_KEY="c" * 64
    )
    warnings = [line for line in production.splitlines() if "WARNING" in line and "SQLite" in line]
    assert len(warnings) == 1 and "SUPHUB_ENV=production" in warnings[0], production


def test_serve_on_a_busy_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    import socket
    import time

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = _run(["serve", "--port", str(port)], tmp_path, SUPHUB_SECRET_KEY="d" * 64)
        took = time.monotonic() - started
    assert result.returncode == 1
    assert str(port) in _one_line(result.stderr)
    assert took < 20 and not (tmp_path / "var" / "hub.db").exists()  # nothing ran before the bind


def test_clients_create_refuses_to_make_a_new_database_without_init(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    refused = _run(
        ["clients", "create", "--name", "root", "--role", "admin"], elsewhere, SUPHUB_DATA_DIR="var"
    )
    assert refused.returncode == 1 and refused.stdout == ""
    line = _one_line(refused.stderr)
    assert "--init" in line and str(elsewhere / "var") in line
    assert not (elsewhere / "var").exists()  # no second hub, no second server key

    made = _run(["clients", "create", "--init", "--name", "root", "--role", "admin"], elsewhere)
    assert made.returncode == 0, made.stderr
    again = _run(["clients", "create", "--name", "second", "--role", "admin"], elsewhere)
    assert again.returncode == 0, again.stderr  # an existing hub needs no --init


def test_version_and_help_show_every_default(tmp_path: Path) -> None:
    import argparse

    from app.cli import build_parser

    version = _run(["--version"], tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("supervision-hub ")
    assert version.stdout.split()[1][0].isdigit()
    serve_help = _run(["serve", "--help"], tmp_path).stdout
    assert "(default: 127.0.0.1)" in serve_help and "(default: 8080)" in serve_help

    def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
        found = [parser]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    found += parsers(child)
        return found

    for parser in parsers(build_parser()):
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            option = action.option_strings[-1]
            after = text.split(option, 2)[-1]  # usage line first, then the option's own entry
            described = after.split(" --", 1)[0]
            assert "(default:" in described or "(required)" in described, (parser.prog, option, described)


def test_sign_takes_the_secret_from_a_file_or_stdin_never_argv(tmp_path: Path) -> None:
    common = ["--key", "ak_x", "--method", "GET", "--path", "/api/v1/assets", "--sign-method", "HMAC-SHA256"]
    (tmp_path / "secret").write_text("s3cret\n")
    from_file = _run(["sign", "--secret-file", str(tmp_path / "secret"), *common], tmp_path)
    from_stdin = _run(["sign", "--secret-file", "-", *common], tmp_path, stdin="s3cret\n")
    assert from_file.returncode == 0 and from_stdin.returncode == 0, from_file.stderr + from_stdin.stderr
    signed = json.loads(from_file.stdout)
    from app.security.signing import signed_headers

    expected = signed_headers(
        app_key="ak_x",
        secret="s3cret",
        method="GET",
        path="/api/v1/assets",
        sign_method="HMAC-SHA256",
        timestamp_ms=int(signed["X-Timestamp"]),
        nonce=signed["X-Nonce"],
    )
    assert signed == expected  # the file's first line, without its newline, is the secret
    on_argv = _run(["sign", "--secret", "s3cret", *common], tmp_path)
    assert on_argv.returncode == 2 and "--secret-file" in on_argv.stderr and on_argv.stdout == ""


def test_audit_verify_checks_a_seq_range(tmp_path: Path) -> None:
    created = json.loads(
        _run(["clients", "create", "--init", "--name", "r", "--role", "admin"], tmp_path).stdout
    )

    async def requests() -> None:
        app = create_app(Settings(data_dir=tmp_path / "var", _env_file=None))  # type: ignore[call-arg]
        auth = {"Authorization": f"Bearer {created['bearer']}"}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub.test"
        ) as http:
            for _ in range(5):
                assert (await http.get("/api/v1/admin/clients", headers=auth)).status_code == 200
        await app.state.audit_writer.close()
        await app.state.rate_limiter.close()
        await app.state.engine.dispose()

    asyncio.run(requests())
    ranged = _run(["audit", "verify", "--from", "2", "--to", "4"], tmp_path)
    assert ranged.returncode == 0, ranged.stderr
    result = json.loads(ranged.stdout)
    assert (result["from_seq"], result["to_seq"], result["checked"]) == (2, 4, 3)
    assert ranged.stderr == ""  # no progress when stderr is not a terminal
    whole = json.loads(_run(["audit", "verify"], tmp_path).stdout)
    assert whole["ok"] and whole["checked"] >= 5
    backwards = _run(["audit", "verify", "--from", "4", "--to", "2"], tmp_path)
    assert backwards.returncode == 2


def test_long_work_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    import pty

    (tmp_path / "piped").mkdir()
    piped = _run(["migrate"], tmp_path / "piped")
    assert piped.returncode == 0 and "\r" not in piped.stderr
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPHUB_")}
    env.update({"SUPHUB_DATA_DIR": str(tmp_path / "tty" / "var"), "PYTHONPATH": str(ROOT)})
    (tmp_path / "tty").mkdir()
    proc = subprocess.Popen(
        [*CLI, "migrate"], cwd=tmp_path / "tty", env=env, stderr=terminal, stdout=subprocess.DEVNULL
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    assert proc.wait(timeout=60) == 0
    os.close(controller)
    text = shown.decode(errors="replace")
    assert "\r" in text and "migrating" in text


def test_clients_create_refuses_an_empty_database_on_either_backend(backend: str, tmp_path: Path) -> None:
    """An empty, never migrated database (PostgreSQL made by the DBA, or no SQLite file yet)."""
    import uuid

    import asyncpg

    from tests.conftest import PG_ADMIN_DSN, _pg_url

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    name = f"suphub_init_{uuid.uuid4().hex[:8]}"
    url = f"sqlite+aiosqlite:///{tmp_path / 'other' / 'hub.db'}" if backend == "sqlite" else _pg_url(name)
    if backend == "postgres":
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        args = ["clients", "create", "--name", "root", "--role", "admin"]
        refused = _run(args, tmp_path, SUPHUB_DATABASE_URL=url)
        assert refused.returncode == 1 and "--init" in _one_line(refused.stderr)
        made = _run([*args, "--init"], tmp_path, SUPHUB_DATABASE_URL=url)
        assert made.returncode == 0, made.stderr
        assert _run(args, tmp_path, SUPHUB_DATABASE_URL=url).returncode == 0
    finally:
        if backend == "postgres":
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
