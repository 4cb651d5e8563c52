"""``supervision-hub``: serve, migrate, create clients, sign requests (§10)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from app.config import Settings, get_settings
from app.paths import ALEMBIC_INI

log = logging.getLogger("suphub")


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(ALEMBIC_INI.parent / "migrations"))
    config.attributes["configure_logging"] = False
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def migrate(settings: Settings) -> None:
    """``alembic upgrade head`` on the configured database (creating ./var for SQLite)."""
    if settings.is_sqlite:
        from app.datafiles import private_dir, private_sqlite_database

        private_dir(Path(settings.data_dir))
        database = make_url(settings.resolved_database_url).database
        if database and database != ":memory:":
            private_sqlite_database(Path(database), create=True)
    command.upgrade(alembic_config(settings.resolved_database_url), "head")


def _cmd_migrate(args: argparse.Namespace) -> int:
    settings = get_settings()
    migrate(settings)
    print(f"database is at the newest migration ({_safe_url(settings)})", file=sys.stderr)
    return 0


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.api.guards import http_protocol
    from app.errors import ServerKeyError
    from app.main import create_app
    from app.security.keys import load_server_key

    settings = get_settings()
    try:
        load_server_key(settings)
    except ServerKeyError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    migrate(settings)
    print(
        f"Supervision Hub on http://{args.host}:{args.port}  (database: {_safe_url(settings)})",
        file=sys.stderr,
    )
    uvicorn.run(
        create_app(settings, run_jobs=not args.no_scheduler),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        proxy_headers=False,
        # uvicorn has no time limit on request headers of its own: a protocol with one (§14)
        http=http_protocol(settings.request_read_timeout_s),
    )
    return 0


async def _create_client(settings: Settings, spec: Any) -> dict[str, Any]:
    from app.db import create_engine, create_sessionmaker
    from app.security.keys import load_server_key
    from app.services.clients import create_client

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            created = await create_client(session, load_server_key(settings), spec)
            await session.commit()
    finally:
        await engine.dispose()
    return created


def _cmd_clients_create(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from app.errors import AppError
    from app.schemas.common import ClientCreate, ClientCreated

    settings = get_settings()
    migrate(settings)
    try:
        spec = ClientCreate(
            name=args.name,
            role=args.role,
            platforms=args.platform or [],
            regions=args.region or [],
            kinds=args.kind or [],
            require_signature=args.require_signature,
        )
        created = asyncio.run(_create_client(settings, spec))
    except ValidationError as exc:
        print(f"参数错误 (invalid arguments): {exc}", file=sys.stderr)
        return 2
    except AppError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    print(ClientCreated.model_validate(created).model_dump_json())
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    from app.security.signing import signed_headers

    body = Path(args.body).read_bytes() if args.body else b""
    headers = signed_headers(
        app_key=args.key,
        secret=args.secret,
        method=args.method,
        path=args.path,
        query=args.query or "",
        body=body,
        sign_method=args.sign_method,
    )
    print(json.dumps(headers, ensure_ascii=False, indent=2))
    return 0


async def _verify_audit(settings: Settings, new_checkpoint: bool = False) -> dict[str, Any]:
    from app.db import create_engine, create_sessionmaker
    from app.security.audit import renew_head_file, verify_audit
    from app.security.keys import load_server_key

    server_key = load_server_key(settings)  # the chain keys are sealed under it
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            if new_checkpoint:
                return await renew_head_file(session, settings.data_dir, server_key)
            return await verify_audit(session, settings.data_dir, server_key)
    finally:
        await engine.dispose()


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from app.errors import ServerKeyError

    settings = get_settings()
    try:
        result = asyncio.run(_verify_audit(settings, args.new_checkpoint))
    except ServerKeyError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False, default=str))
    if not result["ok"]:
        if result["first_bad_seq"] is None:
            print(f"审计链检查未通过：{result['reason']} (audit chain check failed)", file=sys.stderr)
        else:
            print(
                f"审计链损坏：第一个异常事件 seq={result['first_bad_seq']}：{result['reason']} "
                f"(audit chain broken at seq {result['first_bad_seq']})",
                file=sys.stderr,
            )
        return 1
    return 0


async def _reencrypt(settings: Settings, old: Any, new: Any) -> int:
    from app.db import create_engine, create_sessionmaker, write_session
    from app.security.audit import reseal_chain_keys
    from app.services.clients import reencrypt_secrets

    engine = create_engine(settings)
    try:
        async with write_session(create_sessionmaker(engine)) as session:
            count = await reencrypt_secrets(session, old, new)
            # the audit chain keys too (§9), and a new one for the events from here on
            await reseal_chain_keys(session, old, new)
            return count
    finally:
        await engine.dispose()


def _cmd_keys_rotate(args: argparse.Namespace) -> int:
    """Re-encrypt every stored secret under a new server key (§3)."""
    import secrets as random_secrets

    from app.errors import ServerKeyError
    from app.security.keys import (
        ServerKey,
        _parse_material,
        install_key_file,
        load_server_key,
        stage_key_file,
    )

    settings = get_settings()
    try:
        old = load_server_key(settings)
    except ServerKeyError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    configured = bool(settings.secret_key and settings.secret_key.get_secret_value().strip())
    if args.new_key_file:
        material = _parse_material(Path(args.new_key_file).read_text())
    elif configured:
        print(
            "SUPHUB_SECRET_KEY 由配置提供：请用 --new-key-file 指定新密钥文件 "
            "(the key comes from SUPHUB_SECRET_KEY: give the new key with --new-key-file)",
            file=sys.stderr,
        )
        return 2
    else:
        material = random_secrets.token_bytes(32)
    new = ServerKey(material, (old, *old.others))
    if new.key_id == old.key_id:
        print("新密钥与当前密钥相同 (the new key is the current key)", file=sys.stderr)
        return 2
    migrate(settings)
    if not configured:  # running hubs can open what is re-encrypted from the first commit on
        stage_key_file(Path(settings.data_dir) / "server.key", material)
    count = asyncio.run(_reencrypt(settings, old, new))
    if not configured:
        key_file = Path(settings.data_dir) / "server.key"
        install_key_file(key_file, material, old.key_id)
        advice = (
            f"新密钥已写入 {key_file}，旧密钥保留为 server.key.{old.key_id}.old；运行中的 hub 会自动"
            "改用新密钥，无需重启；请备份新密钥 "
            "(new key written; running hubs pick it up without a restart; back the new key up)"
        )
    else:
        advice = (
            "请将 SUPHUB_SECRET_KEY 改为新密钥，并把旧密钥放入 SUPHUB_EXTRA_SECRET_KEYS，"
            "直到所有进程都已重启；备份新密钥 (set SUPHUB_SECRET_KEY to the new key and keep the old one in "
            "SUPHUB_EXTRA_SECRET_KEYS until every process has restarted; back the new key up)"
        )
    print(json.dumps({"rotated": count, "old_key_id": old.key_id, "new_key_id": new.key_id}))
    print(advice, file=sys.stderr)
    return 0


def _cmd_scheduler(args: argparse.Namespace) -> int:
    from app.collectors.scheduler import run_scheduler

    asyncio.run(run_scheduler(get_settings()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="supervision-hub", description="政务云监管数据汇聚服务 Supervision Hub"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate if needed, then run the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--no-scheduler",
        action="store_true",
        help="do not run the background jobs in-process (run `supervision-hub scheduler` instead)",
    )
    serve.set_defaults(func=_cmd_serve)

    sub.add_parser("migrate", help="alembic upgrade head").set_defaults(func=_cmd_migrate)

    clients = sub.add_parser("clients", help="API clients (keys)")
    clients_sub = clients.add_subparsers(dest="clients_command", required=True)
    create = clients_sub.add_parser("create", help="create a key and print it once as JSON")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=["admin", "regulator", "provider", "integrator"])
    create.add_argument("--platform", action="append", help="bound platform (repeatable)")
    create.add_argument("--region", action="append", help="region code (repeatable)")
    create.add_argument("--kind", action="append", help="readable kind for integrators (repeatable)")
    create.add_argument("--require-signature", action=argparse.BooleanOptionalAction, default=None)
    create.set_defaults(func=_cmd_clients_create)

    keys = sub.add_parser("keys", help="the server key")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    rotate = keys_sub.add_parser("rotate", help="re-encrypt stored secrets under a new server key")
    rotate.add_argument("--new-key-file", help="file holding the new key (64 hex characters)")
    rotate.set_defaults(func=_cmd_keys_rotate)

    audit = sub.add_parser("audit", help="the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_verify = audit_sub.add_parser(
        "verify", help="check the audit chain; exit 1 naming the first bad event"
    )
    audit_verify.add_argument(
        "--new-checkpoint",
        action="store_true",
        help="when the head checkpoint file is missing or unreadable and the chain verifies, write a new one",
    )
    audit_verify.set_defaults(func=_cmd_audit_verify)

    sub.add_parser(
        "scheduler", help="the background jobs (rollups, retention, partitions) as their own process"
    ).set_defaults(func=_cmd_scheduler)

    sign = sub.add_parser("sign", help="print the signature headers of a request (§3)")
    sign.add_argument("--key", required=True)
    sign.add_argument("--secret", required=True)
    sign.add_argument("--method", required=True)
    sign.add_argument("--path", required=True)
    sign.add_argument("--query", default="")
    sign.add_argument("--body", help="file holding the body exactly as it will be sent")
    sign.add_argument("--sign-method", default="HMAC-SM3", choices=["HMAC-SM3", "HMAC-SHA256"])
    sign.set_defaults(func=_cmd_sign)
    return parser


def main(argv: list[str] | None = None) -> int:
    from app import logsafe
    from app.datafiles import UMASK

    logsafe.install()  # client values reach the log escaped (§13), uvicorn's access log included
    os.umask(UMASK)  # the hub's data files are its own (§14): 0600 files, 0700 directories
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
