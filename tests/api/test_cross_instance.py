"""Two hub processes on one database (§11), and secrets kept out of logs and answers (§9).

§11: API processes hold no state that matters between requests — nonces, batch receipts and keys
live in the database, so a second instance sees at once what the first one accepted. Here the
second instance is a second application built with ``create_app(settings)`` (the settings of the
``app`` fixture: both share the database and the server key) behind its own ASGI transport.

§9: secrets never appear in logs, answers (other than at creation or rotation) or errors. Every
log record of every logger at DEBUG is captured while keys are created, rotated, used with bearer
and signed requests, and misused in every way the hub refuses.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from app.config import Settings
from app.main import create_app
from app.security.signing import signed_headers
from tests.helpers import Hub, batch, new_key, signed_push, signed_request, vm

P = "GD-GZ-XI-01"
ROOT = Path(__file__).resolve().parent.parent.parent


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == "0", body
    return body["data"]


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text


@pytest.fixture
async def second(app: Any, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second hub instance on the same database (built after ``app`` emptied it)."""
    other = create_app(settings)
    transport = httpx.ASGITransport(app=other)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        yield client
    for name in ("audit_writer", "rate_limiter"):  # what the app fixture closes, if this hub has it
        worker = getattr(other.state, name, None)
        if worker is not None:
            await worker.close()
    await other.state.engine.dispose()


# --- replays across instances -------------------------------------------------------------------


async def test_a_nonce_accepted_by_one_instance_is_refused_by_the_other(
    hub: Hub, second: httpx.AsyncClient
) -> None:
    await hub.create_platform(P)
    key = await new_key(hub, "provider", platforms=[P])  # requires signatures
    assert _ok(await hub.push("assets", batch(P, "seed-1", [vm("vm-1")])))["accepted"] == 1

    # instance 1 accepts a signed read; the same headers on instance 2 are a replay
    read = signed_headers(
        app_key=key["app_key"], secret=key["secret"], method="GET", path="/api/v1/assets", query="limit=10"
    )
    first = await hub.http.get("/api/v1/assets?limit=10", headers=read)
    assert [a["asset_id"] for a in _ok(first)["items"]] == ["vm-1"]
    _error(await second.get("/api/v1/assets?limit=10", headers=read), 401, "2004")
    _error(await hub.http.get("/api/v1/assets?limit=10", headers=read), 401, "2004")

    # and the other way round: instance 2 accepts a signed push, instance 1 refuses its replay
    content = orjson.dumps(batch(P, "push-1", [vm("vm-2")]))
    push = signed_headers(
        app_key=key["app_key"],
        secret=key["secret"],
        method="POST",
        path="/api/v1/reports/assets",
        body=content,
        sign_method="HMAC-SHA256",
    )
    push["Content-Type"] = "application/json"
    accepted = await second.post("/api/v1/reports/assets", content=content, headers=push)
    assert _ok(accepted)["accepted"] == 1
    _error(await hub.http.post("/api/v1/reports/assets", content=content, headers=push), 401, "2004")
    _error(await second.post("/api/v1/reports/assets", content=content, headers=push), 401, "2004")
    assert [a["asset_id"] for a in await hub.assets()] == ["vm-1", "vm-2"]


async def test_the_same_nonce_sent_to_both_instances_at_once_is_accepted_once(
    hub: Hub, second: httpx.AsyncClient
) -> None:
    import asyncio

    await hub.create_platform(P)
    key = await new_key(hub, "regulator", regions=["440100"])
    headers = signed_headers(
        app_key=key["app_key"], secret=key["secret"], method="GET", path="/api/v1/assets"
    )
    answers = await asyncio.gather(
        hub.http.get("/api/v1/assets", headers=headers), second.get("/api/v1/assets", headers=headers)
    )
    assert sorted(a.status_code for a in answers) == [200, 401], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 401)
    assert refused.json()["code"] == "2004"


async def test_a_batch_pushed_through_one_instance_is_a_replay_on_the_other(
    hub: Hub, second: httpx.AsyncClient
) -> None:
    await hub.create_platform(P)
    content = orjson.dumps(batch(P, "batch-1", [vm("vm-1"), vm("vm-2")]))
    admin = {"Content-Type": "application/json", **hub.auth(hub.admin)}

    first = await hub.http.post("/api/v1/reports/assets", content=content, headers=admin)
    receipt = _ok(first)
    assert receipt["accepted"] == 2 and "idempotent-replay" not in first.headers

    replay = await second.post("/api/v1/reports/assets", content=content, headers=admin)
    assert replay.headers.get("idempotent-replay") == "true"
    assert _ok(replay) == receipt
    other_body = orjson.dumps(batch(P, "batch-1", [vm("vm-3")]))
    _error(await second.post("/api/v1/reports/assets", content=other_body, headers=admin), 409, "3001")

    # the same through signed pushes of a provider (fresh nonces, same body): instance 2 first
    key = await new_key(hub, "provider", platforms=[P])
    signed_hub = Hub(second, hub.admin, hub.settings)
    body = batch(P, "batch-2", [vm("vm-4")])
    signed_first = await signed_push(signed_hub, "assets", body, app_key=key["app_key"], secret=key["secret"])
    assert _ok(signed_first)["accepted"] == 1 and "idempotent-replay" not in signed_first.headers
    signed_replay = await signed_push(hub, "assets", body, app_key=key["app_key"], secret=key["secret"])
    assert signed_replay.headers.get("idempotent-replay") == "true"
    assert _ok(signed_replay) == _ok(signed_first)

    assert [a["asset_id"] for a in await hub.assets()] == ["vm-1", "vm-2", "vm-4"]


async def test_key_changes_on_one_instance_hold_at_once_on_the_other(
    hub: Hub, second: httpx.AsyncClient
) -> None:
    await hub.create_platform(P)
    key = await new_key(hub, "regulator", regions=["440100"])
    on_second = {"Authorization": f"Bearer {key['bearer']}"}
    _ok(await second.get("/api/v1/assets", headers=on_second))

    disabled = await hub.http.patch(
        f"/api/v1/admin/clients/{key['app_key']}", json={"status": "disabled"}, headers=hub.auth(hub.admin)
    )
    assert _ok(disabled)["status"] == "disabled"
    _error(await second.get("/api/v1/assets", headers=on_second), 401, "2002")

    enabled = await second.patch(
        f"/api/v1/admin/clients/{key['app_key']}", json={"status": "active"}, headers=hub.auth(hub.admin)
    )
    assert _ok(enabled)["status"] == "active"
    _ok(await hub.get("/api/v1/assets", key["bearer"]))

    revoked = await second.delete(f"/api/v1/admin/clients/{key['app_key']}", headers=hub.auth(hub.admin))
    assert _ok(revoked)["status"] == "revoked"
    _error(await hub.get("/api/v1/assets", key["bearer"]), 401, "2002")


async def test_two_instances_append_to_one_audit_chain(hub: Hub, second: httpx.AsyncClient) -> None:
    """§9 with §11: events of both instances land in one unbroken chain."""
    await hub.create_platform(P)
    admin = hub.auth(hub.admin)
    for n in range(5):
        _ok(await hub.push("assets", batch(P, f"one-{n}", [vm(f"a-{n}")])))
        answer = await second.post(
            "/api/v1/reports/assets", json=batch(P, f"two-{n}", [vm(f"b-{n}")]), headers=admin
        )
        _ok(answer)
        _ok(await second.get("/api/v1/assets", headers=admin))
    for client in (hub.http, second):
        verify = _ok(await client.get("/api/v1/admin/audit/verify", headers=admin))
        assert verify["ok"] is True, verify
    events = _ok(await hub.get("/api/v1/admin/audit", limit=1000))["items"]
    pushes = [e for e in events if e["method"] == "POST" and e["path"] == "/api/v1/reports/assets"]
    assert len(pushes) == 10
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] - len(seqs), -1)), "the chain has gaps or repeats"


# --- secrets never in logs or answers -----------------------------------------------------------


class _Secrets:
    """Every secret and bearer token the hub has shown, and the answer that was allowed to show it."""

    def __init__(self, admin_bearer: str) -> None:
        self.values: set[str] = {admin_bearer, admin_bearer.split(".", 1)[1]}
        self.owner: dict[str, int] = {}  # secret → id() of the answer that showed it

    def add(self, response: httpx.Response) -> dict[str, Any]:
        data: dict[str, Any] = response.json()["data"]
        for name in ("secret", "bearer"):
            self.values.add(data[name])
            self.owner[data[name]] = id(response)
        return data

    def found_in(self, text: str) -> list[str]:
        return sorted(s for s in self.values if s in text)


def _all_loggers_at_debug(caplog: pytest.LogCaptureFixture) -> list[logging.Logger]:
    """DEBUG for the root and every logger there is; non-propagating ones get the capture handler."""
    caplog.set_level(logging.DEBUG)
    extra: list[logging.Logger] = []
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger):
            continue
        caplog.set_level(logging.DEBUG, logger=name)
        if not logger.propagate:
            logger.addHandler(caplog.handler)
            extra.append(logger)
    return extra


def _record_texts(record: logging.LogRecord) -> list[str]:
    texts = [str(record.msg), repr(record.args), record.exc_text or "", record.stack_info or ""]
    try:
        texts.append(record.getMessage())
    except Exception as exc:  # a record that cannot be formatted still must not hold a secret
        texts.append(repr(exc))
    texts.extend(repr(v) for k, v in vars(record).items() if k not in {"msg", "args"})
    return texts


def _secrets_shown(
    answers: list[httpx.Response],
    secrets: _Secrets,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> list[str]:
    """Where a secret shows up: answers other than the one that created it, logs, stdout/stderr."""
    problems: list[str] = []
    for response in answers:
        allowed = {s for s, owner in secrets.owner.items() if owner == id(response)}
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        shown = [s for s in secrets.found_in(f"{response.text}\n{headers}") if s not in allowed]
        # a bearer token holds its secret: the owner of the token may show both
        shown = [s for s in shown if not any(s in a for a in allowed)]
        if shown:
            problems.append(f"answer {response.request.method} {response.request.url} shows {shown}")
    for record in caplog.records:
        for text in _record_texts(record):
            if found := secrets.found_in(text):
                problems.append(
                    f"log record {record.name}:{record.levelname} {record.getMessage()[:160]!r} holds {found}"
                )
                break
    if found := secrets.found_in(caplog.text):
        problems.append(f"the formatted log holds {found}")
    captured = capsys.readouterr()
    if found := secrets.found_in(captured.out + captured.err):
        problems.append(f"stdout/stderr holds {found}")
    return problems


def _cli(args: list[str], cwd: Path, settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPHUB_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "SUPHUB_DATABASE_URL": settings.database_url,
            "SUPHUB_DATA_DIR": str(settings.data_dir),  # the same server key as the app
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _flush_audit(app: Any) -> None:
    writer = getattr(app.state, "audit_writer", None)
    if writer is not None:
        await writer.flush()


def _keep_answers(hub: Hub) -> list[httpx.Response]:
    """Every answer the test client receives from now on, read in full."""
    answers: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        answers.append(response)

    hub.http.event_hooks = {"request": [], "response": [keep]}
    return answers


async def test_secrets_never_appear_in_logs_or_answers(
    hub: Hub,
    app: Any,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    extra_handlers = _all_loggers_at_debug(caplog)
    answers = _keep_answers(hub)
    secrets = _Secrets(hub.admin)
    admin = hub.auth(hub.admin)
    try:
        await hub.create_platform(P)

        # keys: created and rotated (the only answers that may show a secret)
        async def create(**body: Any) -> dict[str, Any]:
            response = await hub.http.post("/api/v1/admin/clients", json=body, headers=admin)
            assert response.status_code == 201, response.text
            return secrets.add(response)

        signer = await create(name="signer", role="provider", platforms=[P])
        pusher = await create(name="pusher", role="provider", platforms=[P], require_signature=False)
        reader = await create(name="reader", role="regulator", regions=["440100"])
        old_signer = dict(signer)
        rotated = await hub.http.post(f"/api/v1/admin/clients/{signer['app_key']}/rotate", headers=admin)
        assert rotated.status_code == 200, rotated.text
        signer = secrets.add(rotated)
        rotated_reader = await hub.http.post(
            f"/api/v1/admin/clients/{reader['app_key']}/rotate", headers=admin
        )
        assert rotated_reader.status_code == 200, rotated_reader.text
        old_reader, reader = reader, secrets.add(rotated_reader)

        # use them: bearer and signed, with the new secret and (still valid) the old one
        _ok(await hub.push("assets", batch(P, "b-1", [vm("vm-1")]), pusher["bearer"]))
        for n, key in enumerate((signer, old_signer)):
            body = batch(P, f"s-{n}", [vm(f"vm-s{n}")])
            _ok(await signed_push(hub, "assets", body, app_key=key["app_key"], secret=key["secret"]))
        _ok(await hub.get("/api/v1/assets", reader["bearer"]))
        _ok(await hub.get("/api/v1/assets", old_reader["bearer"]))
        _ok(
            await signed_request(
                hub, "GET", "/api/v1/assets", app_key=reader["app_key"], secret=reader["secret"], query="q=vm"
            )
        )

        # misuse: each refused, none may echo or log the secret it carried
        other_secret = pusher["secret"]
        _error(await hub.get("/api/v1/assets", f"{reader['app_key']}.{other_secret}"), 401, "2002")
        _error(await hub.get("/api/v1/assets", f"{reader['app_key']}.{reader['secret']}x"), 401, "2002")
        _error(await hub.get("/api/v1/assets", f"ak_nosuchkey000000000.{reader['secret']}"), 401, "2002")
        _error(await hub.get("/api/v1/assets", signer["bearer"]), 401, "2005")  # bearer refused
        basic = {"Authorization": f"Basic {reader['bearer']}"}
        _error(await hub.http.get("/api/v1/assets", headers=basic), 401, "2001")
        bad_sig = await signed_push(
            hub, "assets", batch(P, "x-1", [vm("x")]), app_key=signer["app_key"], secret=other_secret
        )
        _error(bad_sig, 401, "2005")
        tampered = await signed_push(
            hub,
            "assets",
            batch(P, "x-2", [vm("x")]),
            app_key=signer["app_key"],
            secret=signer["secret"],
            signed_body=b'{"tampered": true}',
        )
        _error(tampered, 401, "2005")
        wrong_method = await signed_request(
            hub,
            "GET",
            "/api/v1/assets",
            app_key=reader["app_key"],
            secret=reader["secret"],
            headers={"X-Sign-Method": "HMAC-MD5"},
        )
        _error(wrong_method, 401, "2005")
        # administration after the fact
        listing = await hub.get("/api/v1/admin/clients")
        assert {c["app_key"] for c in _ok(listing)["items"]} >= {
            signer["app_key"],
            pusher["app_key"],
            reader["app_key"],
        }
        _ok(
            await hub.http.patch(
                f"/api/v1/admin/clients/{reader['app_key']}", json={"status": "disabled"}, headers=admin
            )
        )
        _error(await hub.get("/api/v1/assets", reader["bearer"]), 401, "2002")
        _ok(await hub.http.delete(f"/api/v1/admin/clients/{reader['app_key']}", headers=admin))
        _error(await hub.get("/api/v1/assets", reader["bearer"]), 401, "2002")
        _ok(await hub.get("/api/v1/admin/clients"))
        _ok(await hub.get("/api/v1/admin/audit", limit=1000))

        # the command line: the secret on stdout only
        cli = _cli(
            ["clients", "create", "--name", "cli", "--role", "regulator", "--region", "440100"],
            tmp_path,
            settings,
        )
        assert cli.returncode == 0, cli.stderr
        created = json.loads(cli.stdout)
        assert created["secret"] and created["bearer"].endswith(created["secret"])
        assert created["secret"] not in cli.stderr
        secrets.values |= {created["secret"], created["bearer"]}
        _ok(await hub.get("/api/v1/assets", created["bearer"]))  # the CLI's key works on the hub
        assert created["app_key"] in (await hub.get("/api/v1/admin/clients")).text
        await _flush_audit(app)
    finally:
        for logger in extra_handlers:
            logger.removeHandler(caplog.handler)

    problems = _secrets_shown(answers, secrets, caplog, capsys)
    if found := secrets.found_in(cli.stderr):
        problems.append(f"the CLI's stderr holds {found}")
    assert len(answers) > 20 and len(caplog.records) > 0
    assert not problems, "\n".join(problems)


async def test_a_secret_sent_in_place_of_the_key_id_is_neither_logged_nor_audited(
    hub: Hub,
    app: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A client that sends its secret where the key id goes (``Bearer <secret>``, the secret in
    ``X-App-Key``) is refused with 2002 — and the secret must not be kept anywhere: not in the
    audit trail (whose answers the admins read), not in a log record."""
    extra_handlers = _all_loggers_at_debug(caplog)
    answers = _keep_answers(hub)
    secrets = _Secrets(hub.admin)
    try:
        await hub.create_platform(P)
        response = await hub.http.post(
            "/api/v1/admin/clients",
            json={"name": "pusher", "role": "provider", "platforms": [P], "require_signature": False},
            headers=hub.auth(hub.admin),
        )
        assert response.status_code == 201, response.text
        key = secrets.add(response)
        _ok(await hub.push("assets", batch(P, "b-1", [vm("vm-1")]), key["bearer"]))

        _error(await hub.get("/api/v1/assets", key["secret"]), 401, "2002")  # "Bearer <secret>"
        _error(await hub.get("/api/v1/assets", f"{key['secret']}.{key['secret']}"), 401, "2002")
        signed = await signed_request(
            hub,
            "GET",
            "/api/v1/assets",
            app_key=key["app_key"],
            secret=key["secret"],
            headers={"X-App-Key": key["secret"]},
        )
        _error(signed, 401, "2002")
        await _flush_audit(app)
        audit = await hub.get("/api/v1/admin/audit", limit=1000)
        assert audit.status_code in {200, 404}, audit.text
    finally:
        for logger in extra_handlers:
            logger.removeHandler(caplog.handler)
    problems = _secrets_shown(answers, secrets, caplog, capsys)
    assert not problems, "\n".join(problems)
