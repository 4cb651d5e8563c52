"""Errors a caller can cause, each with its §2.1 code, and the one handler that renders them.

AppError (code, HTTP status)
├── BadParameter ................ 1001 400  (MethodNotAllowed: 405 with Allow; RequestTimeout: 408)
├── ValidationFailed ............ 1002 422
├── PayloadTooLarge ............. 1003 413
├── UnsupportedMediaType ........ 1004 415
├── QueryTooBroad ............... 1005 400
├── CredentialsMissing .......... 2001 401
├── UnknownKey .................. 2002 401
├── TimestampOutOfWindow ........ 2003 401
├── NonceReused ................. 2004 401
├── SignatureMismatch ........... 2005 401
├── Forbidden ................... 2006 403
├── BatchConflict ............... 3001 409
├── NotFound .................... 3002 404
├── RateLimited ................. 4001 429
├── StorageUnavailable .......... 5001 503
└── InternalError ............... 5000 500  (a bug: must never happen on any input)
"""

from __future__ import annotations

import logging
import socket
import sqlite3
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class JSONAnswer(Response):
    """JSON via orjson (times as RFC 3339 with ``Z``); NaN can never be written."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS, default=str)


class ErrorItem(dict[str, Any]):
    """``{index?, loc, message}`` — the shape shared by error answers and batch receipts."""

    @classmethod
    def of(cls, loc: str, message: str, index: int | None = None) -> ErrorItem:
        item = cls()
        if index is not None:
            item["index"] = index
        # NUL cannot be stored in PostgreSQL text or JSONB; a field name may carry one
        item["loc"] = loc.replace("\x00", "\\u0000")
        item["message"] = message.replace("\x00", "\\u0000")
        return item


class ServerKeyError(RuntimeError):
    """The server key is missing, a placeholder, or cannot open a stored secret (operator's problem)."""


class AppError(Exception):
    """An error with a §2.1 code; rendered as the standard envelope."""

    code: ClassVar[str] = "5000"
    status_code: ClassVar[int] = 500
    default_message: ClassVar[str] = "内部错误 (internal error)"

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: list[ErrorItem] | None = None,
        headers: dict[str, str] | None = None,
        data: Any = None,
    ) -> None:
        self.message = message or self.default_message
        self.errors = errors or []
        self.headers = headers or {}
        self.data = data
        super().__init__(self.message)


class BadParameter(AppError):
    code, status_code, default_message = "1001", 400, "参数错误 (bad parameter)"


class ValidationFailed(AppError):
    code, status_code, default_message = "1002", 422, "校验失败 (validation failed)"


class PayloadTooLarge(AppError):
    code, status_code, default_message = "1003", 413, "请求体过大 (payload too large)"


class UnsupportedMediaType(AppError):
    code, status_code, default_message = "1004", 415, "不支持的媒体类型或内容编码 (unsupported media type)"


class QueryTooBroad(AppError):
    code, status_code, default_message = (
        "1005",
        400,
        "查询范围过大，已超过语句时限，请缩小时间窗口或筛选范围 "
        "(query too broad: cancelled at the statement time limit; narrow the window or filters)",
    )


class CredentialsMissing(AppError):
    code, status_code, default_message = "2001", 401, "缺少认证信息 (credentials missing)"


class UnknownKey(AppError):
    code, status_code, default_message = (
        "2002",
        401,
        "密钥不存在、已停用或已吊销 (unknown, disabled or revoked key)",
    )


class TimestampOutOfWindow(AppError):
    code, status_code, default_message = (
        "2003",
        401,
        "时间戳超出允许范围 (timestamp outside the allowed window)",
    )


class NonceReused(AppError):
    code, status_code, default_message = "2004", 401, "随机数已被使用 (nonce already used)"


class SignatureMismatch(AppError):
    code, status_code, default_message = "2005", 401, "签名或摘要不匹配 (signature or digest mismatch)"


class Forbidden(AppError):
    code, status_code, default_message = (
        "2006",
        403,
        "超出角色或数据范围 (outside the caller's role or scope)",
    )


class BatchConflict(AppError):
    code, status_code, default_message = (
        "3001",
        409,
        "batch_id 已用于不同的请求体 (batch_id reused with a different body)",
    )


class NotFound(AppError):
    code, status_code, default_message = "3002", 404, "对象不存在 (not found)"


class RateLimited(AppError):
    code, status_code, default_message = "4001", 429, "请求过于频繁 (rate limited)"


class StorageUnavailable(AppError):
    code, status_code, default_message = (
        "5001",
        503,
        "存储暂不可用，未接收任何数据，请稍后重试 (storage unavailable; nothing was accepted)",
    )

    def __init__(self, message: str | None = None, *, retry_after_s: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class InternalError(AppError):
    code, status_code = "5000", 500


class RequestTimeout(BadParameter):
    """A body that stopped arriving (§14): ``1001``, sent as 408 so clients and proxies see why."""

    status_code = 408
    default_message = "请求体未在时限内送达，连接已关闭 (request body not received in time; closed)"


class MethodNotAllowed(BadParameter):
    """A method the path does not answer: ``1001`` (the closest §2.1 code), sent as 405 with
    ``Allow`` naming every method of the path, so a client (or a scanner) learns what to use."""

    status_code = 405

    @classmethod
    def at(cls, request: Request, allow_of_route: str | None = None) -> MethodNotAllowed:
        """``allow_of_route``: what the refusing route said, for a path no API route serves (a mount)."""
        allow = ", ".join(allowed_methods(request.app, request.scope)) or allow_of_route or "GET"
        error = cls(f"该接口不支持 {request.method} 方法 (method not allowed; use {allow})")
        error.headers = {"Allow": allow}
        return error


def allowed_methods(app: Any, scope: Any) -> list[str]:
    """Every method some route of ``app`` answers at the scope's path, sorted.

    The router answers 405 from the first route whose path matched, so its ``Allow`` named that
    one route's methods: ``Allow: POST`` on ``/admin/platforms``, which answers GET too.
    """
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root) :]
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        regex, route_methods = getattr(route, "path_regex", None), route.methods
        if regex is not None and route_methods and regex.match(path):
            methods |= route_methods
    return sorted(methods)


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "")


def envelope(
    request_id: str, code: str = "0", message: str = "ok", data: Any = None, **extra: Any
) -> dict[str, Any]:
    """The §2.1 envelope around ``data`` (or around ``errors`` for a failure)."""
    body: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if data is not None or code == "0":
        body["data"] = data
    body.update(extra)
    return body


def error_response(request: Request, error: AppError) -> Response:
    body = envelope(request_id_of(request), error.code, error.message, error.data)
    if error.errors:
        body["errors"] = list(error.errors)
    return JSONAnswer(body, status_code=error.status_code, headers=error.headers)


def _loc_to_str(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return error_response(request, exc)


async def _request_validation(request: Request, exc: Exception) -> Response:
    """FastAPI's own parameter validation: query / path problems are 1001, body problems 1002."""
    assert isinstance(exc, RequestValidationError)
    items: list[ErrorItem] = []
    in_body = False
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if loc and loc[0] == "body":
            in_body = True
            loc = loc[1:]
        elif loc and loc[0] in {"query", "path", "header"}:
            loc = loc[1:]
        message = str(err.get("msg", "")).removeprefix("Value error, ")
        items.append(ErrorItem.of(_loc_to_str(loc) or "body", message))
    cls: type[AppError] = ValidationFailed if in_body else BadParameter
    return error_response(request, cls(errors=items))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(request, NotFound("接口不存在 (no such endpoint)"))
    if exc.status_code == 405:
        return error_response(request, MethodNotAllowed.at(request, (exc.headers or {}).get("Allow")))
    if exc.status_code == 400:
        # FastAPI's own reading of a JSON body gave up (nested deeper than Python's parser
        # goes): a body that is not usable JSON is 422 1002 (§2.1: the status matches the code)
        return error_response(
            request,
            ValidationFailed(
                "请求体不是可解析的 JSON（嵌套过深？）(the body could not be parsed: nested too deeply?)",
                errors=[ErrorItem.of("body", str(exc.detail))],
            ),
        )
    err2 = AppError(str(exc.detail))
    response = error_response(request, err2)
    response.status_code = exc.status_code
    return response


async def _database_error(request: Request, exc: Exception) -> Response:
    """A database that cannot be reached, hangs or cancels a statement: 503 ``5001`` / 400 ``1005``."""
    error = storage_error(exc)
    if error is None:
        return await _unexpected(request, exc)
    _log_storage_error(request, error, exc)
    return error_response(request, error)


def _log_storage_error(request: Request, error: AppError, exc: BaseException) -> None:
    log.warning("%s in %s %s: %s", error.code, request.method, request.url.path, describe_storage_error(exc))


async def _unexpected(request: Request, exc: Exception) -> Response:
    # the last resort (outside every middleware): a storage failure that got this far is still a 503
    error = storage_error(exc)
    if error is not None:
        _log_storage_error(request, error, exc)
        return error_response(request, error)
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return error_response(request, InternalError())


async def _server_key_error(request: Request, exc: Exception) -> Response:
    """The configured server keys cannot open a stored secret: the operator must fix the keys."""
    log.error("server key problem: %s", exc)
    return error_response(request, StorageUnavailable(str(exc), retry_after_s=60))


#: SQLSTATE classes and codes of a server that is down, starting, stopping or out of resources
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "58")
_UNAVAILABLE_SQLSTATES = frozenset(
    {
        "57P01",  # admin_shutdown: "terminating connection due to administrator command"
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: "the database system is starting up / shutting down"
        "57P05",  # idle_session_timeout
        "25006",  # read_only_sql_transaction: a primary that became a replica (failover)
    }
)
_QUERY_CANCELED = "57014"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc``, the driver error SQLAlchemy wrapped, and what caused each (the asyncpg original)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 8:
        chain.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
    return chain


def _is_asyncpg_connection_error(exc: BaseException) -> bool:
    """asyncpg's client-side errors about the connection itself ("connection is closed",
    "another operation is in progress", "connection was closed in the middle of operation");
    not its ``DataError`` (a parameter the driver cannot encode — a bug or bad input, never 503)."""
    module = type(exc).__module__ or ""
    if not module.startswith("asyncpg") or isinstance(exc, ValueError):
        return False
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"ConnectionDoesNotExistError", "InterfaceError", "InternalClientError"}) and (
        "PostgresError" not in names
    )


def storage_error(exc: BaseException) -> AppError | None:
    """The §2.1 answer to a failure of the database, or None when ``exc`` is not one (a bug).

    A statement the database cancelled at the statement time limit (§13) is 400 ``1005``:
    retrying the same query will not help. Everything that says the store cannot answer now —
    refused or broken connections, a server starting or stopping, a client-side time limit on a
    hung server, a pool exhausted past ``SUPHUB_DB_POOL_TIMEOUT_S``, SQLite's lock timeout — is
    503 ``5001`` with ``Retry-After``.
    """
    if isinstance(exc, AppError):
        return exc if isinstance(exc, StorageUnavailable | QueryTooBroad) else None
    if isinstance(exc, PoolTimeoutError):
        return StorageUnavailable("数据库连接池已满，请稍后重试 (no database connection free; retry later)")
    chain = _causes(exc)
    for cause in chain:
        sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if not isinstance(sqlstate, str):
            continue
        if sqlstate == _QUERY_CANCELED:
            if "statement timeout" in str(cause):
                return QueryTooBroad()
            return StorageUnavailable()
        if sqlstate in _UNAVAILABLE_SQLSTATES or sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES:
            return StorageUnavailable()
    for cause in chain:
        if isinstance(cause, sqlite3.OperationalError) and str(cause) == "interrupted":
            # the progress handler of app.db stopped a statement past its time limit
            return QueryTooBroad()
    for cause in chain:
        if isinstance(cause, TimeoutError | ConnectionError | socket.gaierror):
            return StorageUnavailable()
        if _is_asyncpg_connection_error(cause):
            return StorageUnavailable()
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return StorageUnavailable()
    if isinstance(exc, OperationalError):
        # SQLite: "database is locked" past the busy timeout, "unable to open database file", I/O
        return StorageUnavailable()
    if isinstance(exc, InterfaceError) and not any(isinstance(c, ValueError) for c in chain):
        return StorageUnavailable()
    return None


def is_storage_unavailable(exc: BaseException) -> bool:
    """Connection failures, hung servers, pool exhaustion and SQLite lock timeouts: retry later."""
    return isinstance(storage_error(exc), StorageUnavailable)


def describe_storage_error(exc: BaseException) -> str:
    """One log line about a storage failure: the driver's error class and first line, escaped."""
    cause = _causes(exc)[-1]
    first = (str(cause).splitlines() or [""])[0][:200]
    return f"{type(exc).__name__} ({type(cause).__name__}: {first!r})"


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    # every driver error (IntegrityError included) goes through storage_error: not one is a 500
    # unless it is a bug, and those are still logged with their traceback by _unexpected
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeoutError, _database_error)
    app.add_exception_handler(ConnectionError, _database_error)
    app.add_exception_handler(TimeoutError, _database_error)
    app.add_exception_handler(socket.gaierror, _database_error)
    for driver_error in _asyncpg_errors():
        app.add_exception_handler(driver_error, _database_error)
    app.add_exception_handler(ServerKeyError, _server_key_error)
    app.add_exception_handler(Exception, _unexpected)


def _asyncpg_errors() -> tuple[type[Exception], ...]:
    """asyncpg's base errors, which a connection attempt may raise unwrapped by SQLAlchemy."""
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return ()
    return (asyncpg.PostgresError, asyncpg.InterfaceError)
