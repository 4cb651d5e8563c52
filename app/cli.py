"""``supervision-hub``: serve, migrate, create clients, sign requests (§10)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from app.config import Settings, get_settings
from app.paths import ALEMBIC_INI

log = logging.getLogger("suphub")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("supervision-hub")
    except PackageNotFoundError:  # run from a tree that was never installed
        return "unknown"


class Progress:
    """One line of progress on a terminal for long work (§13); silent when stderr is not a TTY,
    so logs and pipes get only the result."""

    def __init__(self, what: str, stream: TextIO | None = None) -> None:
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.shown = self.stream.isatty()
        self._written = False

    def update(self, done: int, total: int | None = None, note: str = "") -> None:
        if not self.shown:
            return
        of = f"/{total}" if total is not None else ""
        self.stream.write(f"\r\x1b[K{self.what}: {done}{of} {note}".rstrip())
        self.stream.flush()
        self._written = True

    def finish(self) -> None:
        if self._written:
            self.stream.write("\n")
            self.stream.flush()
            self._written = False


def settings_problem(exc: Exception) -> str:
    """One line naming the variable a configuration error is about (no traceback)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        parts = []
        for error in exc.errors():
            name = "SUPHUB_" + str(error["loc"][0]).upper() if error["loc"] else "SUPHUB_*"
            message = str(error["msg"]).removeprefix("Value error, ")
            parts.append(f"{name}: {message}")
        return "配置错误 (invalid setting): " + "; ".join(parts)
    field = re.search(r'field "([a-z0-9_]+)"', str(exc))
    if field:
        name = "SUPHUB_" + field.group(1).upper()
        return f"配置错误：{name} 的值无法解析 (invalid setting: {name} cannot be parsed)"
    return f"配置错误 (invalid setting): {exc}"


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(ALEMBIC_INI.parent / "migrations"))
    config.attributes["configure_logging"] = False
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def migrate(settings: Settings, progress: Progress | None = None) -> None:
    """``alembic upgrade head`` on the configured database (creating ./var for SQLite); on a
    terminal (``progress``) one revision at a time, each shown as it is applied."""
    if settings.is_sqlite:
        from app.datafiles import private_dir, private_sqlite_database

        private_dir(Path(settings.data_dir))
        database = make_url(settings.resolved_database_url).database
        if database and database != ":memory:":
            private_sqlite_database(Path(database), create=True)
    config = alembic_config(settings.resolved_database_url)
    if progress is None or not progress.shown:
        command.upgrade(config, "head")
        return
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)  # the progress line says what its INFO lines would
    try:
        pending = asyncio.run(_pending_revisions(settings, config))
        for done, revision in enumerate(pending, start=1):
            progress.update(done, len(pending), revision)
            command.upgrade(config, revision)
    finally:
        alembic_log.setLevel(level)
        progress.finish()


async def _pending_revisions(settings: Settings, config: Config) -> list[str]:
    """The revisions ``upgrade head`` would apply, oldest first."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(settings.resolved_database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            current = await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_heads())
    finally:
        await engine.dispose()
    script = ScriptDirectory.from_config(config)
    base: Any = current[0] if current else "base"
    steps = list(script.iterate_revisions("heads", base))
    return [step.revision for step in reversed(steps)]


def _database_is_new(settings: Settings) -> bool:
    """No database yet, or one that was never migrated: what a command run from the wrong
    folder would otherwise create silently (§10)."""
    if settings.is_sqlite:
        database = make_url(settings.resolved_database_url).database
        if not database or database == ":memory:":
            return False
        path = Path(database)
        if not path.exists() or path.stat().st_size == 0:
            return True
    return not asyncio.run(_has_migrations(settings))


async def _has_migrations(settings: Settings) -> bool:
    from sqlalchemy import inspect
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(settings.resolved_database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            found: bool = await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version"))
            return found
    finally:
        await engine.dispose()


def _cmd_migrate(args: argparse.Namespace) -> int:
    settings = get_settings()
    migrate(settings, Progress("迁移 (migrating)"))
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
    for warning in settings.startup_warnings():
        log.warning(warning)
    # the port before anything else runs: a busy one is one line, not the jobs' tracebacks
    sock = _bind(args.host, args.port)
    if sock is None:
        return 1
    log.info("数据目录 (data directory): %s", settings.data_dir)
    migrate(settings)
    print(
        f"Supervision Hub on http://{args.host}:{args.port}  (database: {_safe_url(settings)})",
        file=sys.stderr,
    )
    config = uvicorn.Config(
        create_app(settings, run_jobs=not args.no_scheduler),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        proxy_headers=False,
        # uvicorn has no time limit on request headers of its own: a protocol with one (§14)
        http=http_protocol(settings.request_read_timeout_s),
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0 if server.started else 1


def _bind(host: str, port: int) -> socket.socket | None:
    """A socket bound to ``host:port``, or ``None`` after one line saying why it cannot be."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        print(f"无法监听 {host}:{port}：{exc} (cannot listen on {host}:{port}: {exc})", file=sys.stderr)
        return None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        print(
            f"无法监听 {host}:{port}：{reason}（端口 {port} 可能已被占用） "
            f"(cannot listen on {host}:{port}: {reason}; is port {port} in use?)",
            file=sys.stderr,
        )
        return None
    sock.set_inheritable(True)
    return sock


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
    if not args.init and _database_is_new(settings):
        print(
            f"{_safe_url(settings)} 还没有 hub 的数据库：在 hub 的目录运行（或设置 SUPHUB_DATA_DIR / "
            f"SUPHUB_DATABASE_URL），新建 hub 时加 --init (no hub database at {_safe_url(settings)}, data "
            f"directory {settings.data_dir}: run where the hub runs, or add --init to create a new one)",
            file=sys.stderr,
        )
        return 1
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


def _read_secret(source: str) -> str:
    """The first line of a file, or of stdin for ``-`` (a secret never goes on the command line,
    where ``ps`` and shell histories show it)."""
    if source == "-":
        return sys.stdin.readline().rstrip("\r\n")
    text = Path(source).read_text(encoding="utf-8")
    return text.splitlines()[0].strip() if text.strip() else ""


def _cmd_sign(args: argparse.Namespace) -> int:
    from app.security.signing import signed_headers

    if args.secret is not None:
        print(
            "--secret 已取消：密钥不应出现在命令行上，请用 --secret-file FILE（或 - 从标准输入读取） "
            "(--secret is refused: the secret would show in ps and shell history; "
            "use --secret-file FILE or -)",
            file=sys.stderr,
        )
        return 2
    if not args.secret_file:
        print("需要 --secret-file FILE 或 - (--secret-file FILE or - is required)", file=sys.stderr)
        return 2
    try:
        secret = _read_secret(args.secret_file)
    except OSError as exc:
        print(f"无法读取密钥文件 (cannot read the secret file): {exc}", file=sys.stderr)
        return 2
    if not secret:
        print("密钥为空 (the secret is empty)", file=sys.stderr)
        return 2
    body = Path(args.body).read_bytes() if args.body else b""
    headers = signed_headers(
        app_key=args.key,
        secret=secret,
        method=args.method,
        path=args.path,
        query=args.query or "",
        body=body,
        sign_method=args.sign_method,
    )
    print(json.dumps(headers, ensure_ascii=False, indent=2))
    return 0


async def _verify_audit(
    settings: Settings,
    new_checkpoint: bool = False,
    from_seq: int | None = None,
    to_seq: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    from app.db import create_engine, create_sessionmaker
    from app.security.audit import renew_head_file, verify_audit
    from app.security.keys import load_server_key

    server_key = load_server_key(settings)  # the chain keys are sealed under it
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            if new_checkpoint:
                return await renew_head_file(session, settings.data_dir, server_key)
            return await verify_audit(
                session, settings.data_dir, server_key, from_seq, to_seq, progress=progress
            )
    finally:
        await engine.dispose()


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from app.errors import ServerKeyError

    settings = get_settings()
    if args.from_seq is not None and args.to_seq is not None and args.from_seq > args.to_seq:
        print("--from 大于 --to (--from is after --to)", file=sys.stderr)
        return 2
    if args.new_checkpoint and (args.from_seq is not None or args.to_seq is not None):
        print(
            "--new-checkpoint 检查整条链，不能与 --from/--to 同用 (it checks the whole chain)",
            file=sys.stderr,
        )
        return 2
    progress = Progress("审计链检查 (verifying the audit chain)")
    try:
        result = asyncio.run(
            _verify_audit(settings, args.new_checkpoint, args.from_seq, args.to_seq, progress.update)
        )
    except ServerKeyError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        progress.finish()
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
    progress = Progress("密钥轮换 (rotating the server key)")
    if progress.shown:  # the progress line stands for alembic's INFO lines
        logging.getLogger("alembic").setLevel(logging.WARNING)
    progress.update(1, 3, "迁移 (migrating)")
    migrate(settings)
    if not configured:  # running hubs can open what is re-encrypted from the first commit on
        stage_key_file(Path(settings.data_dir) / "server.key", material)
    progress.update(2, 3, "重新加密 (re-encrypting stored secrets)")
    count = asyncio.run(_reencrypt(settings, old, new))
    progress.update(3, 3, "完成 (done)")
    progress.finish()
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

    settings = get_settings()
    for warning in settings.startup_warnings():
        log.warning(warning)
    log.info("数据目录 (data directory): %s", settings.data_dir)
    asyncio.run(run_scheduler(settings))
    return 0


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, or says it is required (§10)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        if action.help == argparse.SUPPRESS or not action.option_strings or "%(default)" in help_text:
            return action.help
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            return action.help
        if action.required:
            return f"{help_text} (required)".strip()
        if action.default is None:
            return f"{help_text} (default: none)".strip()
        return f"{help_text} (default: %(default)s)".strip()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="supervision-hub",
        description="政务云监管数据汇聚服务 Supervision Hub",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(parent: Any, name: str, help_text: str) -> argparse.ArgumentParser:
        made: argparse.ArgumentParser = parent.add_parser(
            name, help=help_text, description=help_text, formatter_class=_HelpFormatter
        )
        return made

    serve = command(sub, "serve", "migrate if needed, then run the API")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on")
    serve.add_argument("--log-level", default="info", help="uvicorn's log level")
    serve.add_argument(
        "--no-scheduler",
        action="store_true",
        help="do not run the background jobs in-process (run `supervision-hub scheduler` instead)",
    )
    serve.set_defaults(func=_cmd_serve)

    command(sub, "migrate", "alembic upgrade head").set_defaults(func=_cmd_migrate)

    clients = command(sub, "clients", "API clients (keys)")
    clients_sub = clients.add_subparsers(dest="clients_command", required=True)
    create = command(clients_sub, "create", "create a key and print it once as JSON")
    create.add_argument("--name", required=True, help="the client's name")
    create.add_argument(
        "--role", required=True, choices=["admin", "regulator", "provider", "integrator"], help="its role"
    )
    create.add_argument("--platform", action="append", help="bound platform (repeatable)")
    create.add_argument("--region", action="append", help="region code (repeatable)")
    create.add_argument("--kind", action="append", help="readable kind for integrators (repeatable)")
    create.add_argument(
        "--require-signature",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="signed requests only (none: required for providers)",
    )
    create.add_argument(
        "--init",
        action="store_true",
        help="create the database when there is none yet (a new hub)",
    )
    create.set_defaults(func=_cmd_clients_create)

    keys = command(sub, "keys", "the server key")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    rotate = command(keys_sub, "rotate", "re-encrypt stored secrets under a new server key")
    rotate.add_argument(
        "--new-key-file", help="file holding the new key (64 hex characters); none: a random key"
    )
    rotate.set_defaults(func=_cmd_keys_rotate)

    audit = command(sub, "audit", "the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_verify = command(audit_sub, "verify", "check the audit chain; exit 1 naming the first bad event")
    audit_verify.add_argument(
        "--from", dest="from_seq", type=_positive, help="first seq to check (none: the oldest kept)"
    )
    audit_verify.add_argument(
        "--to", dest="to_seq", type=_positive, help="last seq to check (none: the newest)"
    )
    audit_verify.add_argument(
        "--new-checkpoint",
        action="store_true",
        help="when the head checkpoint file is missing or unreadable and the chain verifies, write a new one",
    )
    audit_verify.set_defaults(func=_cmd_audit_verify)

    command(
        sub, "scheduler", "the background jobs (rollups, retention, partitions) as their own process"
    ).set_defaults(func=_cmd_scheduler)

    sign = command(sub, "sign", "print the signature headers of a request (§3)")
    sign.add_argument("--key", required=True, help="the app key (X-App-Key)")
    sign.add_argument(
        "--secret-file", help="file whose first line is the secret, or - for stdin (never the command line)"
    )
    sign.add_argument("--secret", help=argparse.SUPPRESS)  # refused with a pointer to --secret-file
    sign.add_argument("--method", required=True, help="HTTP method")
    sign.add_argument("--path", required=True, help="request path")
    sign.add_argument("--query", default="", help="query string, without '?'")
    sign.add_argument("--body", help="file holding the body exactly as it will be sent (none: empty)")
    sign.add_argument(
        "--sign-method", default="HMAC-SM3", choices=["HMAC-SM3", "HMAC-SHA256"], help="signature algorithm"
    )
    sign.set_defaults(func=_cmd_sign)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from app import logsafe
    from app.config import UnknownSettingError
    from app.datafiles import UMASK

    logsafe.install()  # client values reach the log escaped (§13), uvicorn's access log included
    os.umask(UMASK)  # the hub's data files are its own (§14): 0600 files, 0700 directories
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    try:  # the configuration first: a misspelt or invalid setting is one line, exit 1 (§10)
        get_settings()
    except (UnknownSettingError, ValidationError, SettingsError) as exc:
        print(settings_problem(exc), file=sys.stderr)
        return 1
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
